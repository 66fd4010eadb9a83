"""The worker protocol v1: every message the server and the worker exchange, and its validation.

The reference server validates a job when it is submitted and the worker validates it again when it
is claimed, both with these functions, so the two cannot drift apart. A bad value raises
``ValidationError`` whose ``field`` is the dotted path of the culprit (``render.samples``), which the
server returns in its 422 and the worker puts in the reason it fails a job with.

docs/protocol.md describes the same messages for people; docs/worker-api.yaml for machines.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from worker_app import constants as C

API_PREFIX = "/api/v1"
WORKER_PREFIX = "/api/worker/v1"
PROTOCOL_VERSION = 1

ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")
DEVICES = ("AUTO", "GPU", "CPU")
FORMATS = ("PNG", "JPEG", "OPEN_EXR", "FFMPEG")
SCENE_TYPES = ("blend", "zip")
JOB_STATES = ("queued", "leased", "done", "failed", "canceled")
STAGES = ("downloading", "rendering", "uploading")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_FRAME_PART = re.compile(r"^(-?\d+)(?:-(-?\d+))?$")


class ValidationError(ValueError):
    """A message that breaks the protocol; ``field`` names the offending value."""

    def __init__(self, field_path: str, message: str):
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"error": "invalid", "field": self.field, "message": self.message}


# ---------------------------------------------------------------------------------------------
# Small checkers. Each takes the value and the dotted path used in the error.

def _object(value: Any, path: str, required: set[str], optional: set[str]) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(path or "body", "must be a JSON object")
    for key in value:
        if key not in required and key not in optional:
            raise ValidationError(_join(path, key), "unknown field")
    for key in sorted(required):
        if key not in value:
            raise ValidationError(_join(path, key), "is required")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _str(value: Any, path: str, *, max_len: int = 1024, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, "must be a string")
    if not value and not allow_empty:
        raise ValidationError(path, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(path, f"must be at most {max_len} characters")
    if "\x00" in value:
        raise ValidationError(path, "must not contain NUL characters")
    return value


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(path, "must be an integer")
    if not lo <= value <= hi:
        raise ValidationError(path, f"must be between {lo} and {hi}")
    return value


def _number(value: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(path, "must be a finite number")
    if not lo <= value <= hi:
        raise ValidationError(path, f"must be between {lo:g} and {hi:g}")
    return float(value)


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(path, f"must be one of {', '.join(choices)}")
    return value


def _optional_str(data: dict, key: str, path: str, **kw) -> str | None:
    value = data.get(key)
    return None if value is None else _str(value, _join(path, key), **kw)


def check_sha256(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValidationError(path, "must be 64 lowercase hexadecimal characters (a SHA-256)")
    return value


def check_output_name(name: Any, path: str = "name") -> str:
    """An output's file name: one plain path component that is safe on Windows, macOS and Linux."""
    if not isinstance(name, str) or not _OUTPUT_NAME.match(name):
        raise ValidationError(path, "must be 1-128 characters of letters, digits, '.', '_' or '-', "
                                    "starting with a letter or digit")
    if name.endswith(".") or name.split(".")[0].upper() in WINDOWS_RESERVED:
        raise ValidationError(path, f"{name!r} is not a valid file name on Windows")
    return name


def parse_frames(text: Any, path: str = "render.frames") -> list[int]:
    """Parses a frame list such as ``1-10,15`` into sorted, distinct frame numbers."""
    _str(text, path, max_len=4096)
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = _FRAME_PART.match(part)
        if not match:
            raise ValidationError(path, f"{part!r} is not a frame or a range such as 1-10")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        for number in (start, end):
            if not 0 <= number <= C.MAX_FRAME_NUMBER:
                raise ValidationError(path, f"frame {number} is outside 0-{C.MAX_FRAME_NUMBER}")
        if end < start:
            raise ValidationError(path, f"range {part!r} ends before it starts")
        if end - start + 1 + len(frames) > C.MAX_FRAMES:
            raise ValidationError(path, f"more than {C.MAX_FRAMES} frames in one job")
        frames.update(range(start, end + 1))
    return sorted(frames)


# ---------------------------------------------------------------------------------------------
# The job spec.

_VERSION = re.compile(r"^\d{1,3}(\.\d{1,3}){0,2}$")
MAX_OVERRIDES = 256


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _vector(value: Any, path: str, size: int, lo: float, hi: float, sizes: tuple[int, ...] = ()) -> list:
    allowed = sizes or (size,)
    if not isinstance(value, list) or len(value) not in allowed:
        raise ValidationError(path, f"must be a list of {' or '.join(map(str, allowed))} numbers")
    return [_number(v, f"{path}[{i}]", lo, hi) for i, v in enumerate(value)]


def _named(data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        raise ValidationError(path, "must be an object keyed by name")
    if len(data) > MAX_OVERRIDES:
        raise ValidationError(path, f"must have at most {MAX_OVERRIDES} entries")
    for name in data:
        _str(name, f"{path}.{name}", max_len=255)
    return data


def parse_overrides(data: Any, path: str = "overrides") -> dict:
    """Template parameters: declarative changes the bundled script makes to the scene before rendering.

    Everything here is data; the script looks names up in the .blend and fails the job with the name
    of anything that is not there.
    """
    if data is None:
        return {}
    _object(data, path, set(), {"objects", "materials", "texts", "images", "collections"})
    out: dict = {}
    for name, obj in _named(data.get("objects", {}), f"{path}.objects").items():
        p = f"{path}.objects.{name}"
        _object(obj, p, set(), {"location", "rotation", "scale", "visible"})
        entry = {}
        for key in ("location", "rotation", "scale"):
            if key in obj:
                entry[key] = _vector(obj[key], f"{p}.{key}", 3, -1e6, 1e6)
        if "visible" in obj:
            entry["visible"] = _bool(obj["visible"], f"{p}.visible")
        out.setdefault("objects", {})[name] = entry
    for name, mat in _named(data.get("materials", {}), f"{path}.materials").items():
        p = f"{path}.materials.{name}"
        _object(mat, p, set(), set(MATERIAL_INPUTS))
        entry = {}
        for key in ("base_color", "emission"):
            if key in mat:
                entry[key] = _vector(mat[key], f"{p}.{key}", 4, 0.0, 1.0, sizes=(3, 4))
        for key in ("metallic", "roughness"):
            if key in mat:
                entry[key] = _number(mat[key], f"{p}.{key}", 0.0, 1.0)
        if "emission_strength" in mat:
            entry["emission_strength"] = _number(mat["emission_strength"], f"{p}.emission_strength", 0.0, 1e6)
        out.setdefault("materials", {})[name] = entry
    for name, body in _named(data.get("texts", {}), f"{path}.texts").items():
        out.setdefault("texts", {})[name] = _str(body, f"{path}.texts.{name}", max_len=10_000, allow_empty=True)
    for name, asset in _named(data.get("images", {}), f"{path}.images").items():
        p = f"{path}.images.{name}"
        image = SceneAsset.parse(asset, p)
        if image.type != "blend" or image.blend:
            raise ValidationError(f"{p}.type", "an image is a single file")
        out.setdefault("images", {})[name] = {"url": image.url, "sha256": image.sha256, "size": image.size}
    for name, coll in _named(data.get("collections", {}), f"{path}.collections").items():
        p = f"{path}.collections.{name}"
        _object(coll, p, {"visible"}, set())
        out.setdefault("collections", {})[name] = {"visible": _bool(coll["visible"], f"{p}.visible")}
    return out


# Principled BSDF inputs a job may set, and their socket names across Blender versions.
MATERIAL_INPUTS = {
    "base_color": ("Base Color",),
    "metallic": ("Metallic",),
    "roughness": ("Roughness",),
    "emission": ("Emission Color", "Emission"),  # "Emission" before 4.0
    "emission_strength": ("Emission Strength",),
}


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(path, "must be true or false")
    return value

@dataclass(frozen=True)
class SceneAsset:
    url: str
    sha256: str
    size: int
    type: str = "blend"
    blend: str | None = None  # the .blend inside a zip

    @classmethod
    def parse(cls, data: Any, path: str = "scene") -> SceneAsset:
        _object(data, path, {"url", "sha256", "size"}, {"type", "blend"})
        url = _str(data["url"], _join(path, "url"), max_len=4096)
        if not (url.startswith(("http://", "https://")) or url.startswith("/")):
            raise ValidationError(_join(path, "url"), "must be an http(s) URL or a path on the job server")
        kind = _choice(data.get("type", "blend"), _join(path, "type"), SCENE_TYPES)
        blend = _optional_str(data, "blend", path, max_len=1024)
        if kind == "zip" and not blend:
            raise ValidationError(_join(path, "blend"), "is required for a zip scene: the .blend to open")
        if kind == "blend" and blend:
            raise ValidationError(_join(path, "blend"), "is only for zip scenes")
        if blend and not blend.lower().endswith(".blend"):
            raise ValidationError(_join(path, "blend"), "must name a .blend file")
        return cls(url=url, sha256=check_sha256(data["sha256"], _join(path, "sha256")),
                   size=_int(data["size"], _join(path, "size"), 1, C.MAX_SCENE_SIZE),
                   type=kind, blend=blend)


@dataclass(frozen=True)
class RenderSettings:
    engine: str = "CYCLES"
    device: str = "AUTO"
    samples: int | None = None
    resolution: tuple[int, int] | None = None
    resolution_percentage: int = 100
    frames: str = "1"
    format: str = "PNG"
    camera: str | None = None
    scene: str | None = None

    FIELDS = {"engine", "device", "samples", "resolution", "resolution_percentage", "frames",
              "format", "camera", "scene"}

    @classmethod
    def parse(cls, data: Any, path: str = "render") -> RenderSettings:
        data = {} if data is None else data
        _object(data, path, set(), cls.FIELDS)
        resolution = data.get("resolution")
        if resolution is not None:
            if not isinstance(resolution, list) or len(resolution) != 2:
                raise ValidationError(_join(path, "resolution"), "must be [width, height]")
            resolution = (_int(resolution[0], _join(path, "resolution[0]"), 1, C.MAX_RESOLUTION),
                          _int(resolution[1], _join(path, "resolution[1]"), 1, C.MAX_RESOLUTION))
        samples = data.get("samples")
        frames = data.get("frames", "1")
        if isinstance(frames, int) and not isinstance(frames, bool):
            frames = str(frames)
        parse_frames(frames, _join(path, "frames"))
        return cls(
            engine=_choice(data.get("engine", "CYCLES"), _join(path, "engine"), ENGINES),
            device=_choice(data.get("device", "AUTO"), _join(path, "device"), DEVICES),
            samples=None if samples is None else _int(samples, _join(path, "samples"), 1, C.MAX_SAMPLES),
            resolution=resolution,
            resolution_percentage=_int(data.get("resolution_percentage", 100),
                                       _join(path, "resolution_percentage"), 1, 100),
            frames=frames,
            format=_choice(data.get("format", "PNG"), _join(path, "format"), FORMATS),
            camera=_optional_str(data, "camera", path, max_len=255),
            scene=_optional_str(data, "scene", path, max_len=255),
        )

    def frame_list(self) -> list[int]:
        return parse_frames(self.frames)

    def to_json(self) -> dict:
        out = asdict(self)
        out["resolution"] = list(self.resolution) if self.resolution else None
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Timeouts:
    total_s: float = C.JOB_TIMEOUT_DEFAULT
    silence_s: float = C.SILENCE_TIMEOUT_DEFAULT

    @classmethod
    def parse(cls, data: Any, path: str = "timeouts") -> Timeouts:
        data = {} if data is None else data
        _object(data, path, set(), {"total_s", "silence_s"})
        return cls(
            total_s=_number(data.get("total_s", C.JOB_TIMEOUT_DEFAULT), _join(path, "total_s"),
                            1, C.MAX_JOB_TIMEOUT),
            silence_s=_number(data.get("silence_s", C.SILENCE_TIMEOUT_DEFAULT),
                              _join(path, "silence_s"), 1, C.MAX_JOB_TIMEOUT),
        )


@dataclass(frozen=True)
class JobSpec:
    scene: SceneAsset
    render: RenderSettings = field(default_factory=RenderSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    priority: int = 0
    max_attempts: int = 3
    tag: str | None = None  # the web app's own reference, echoed back in listings
    overrides: dict = field(default_factory=dict)
    min_blender_version: str | None = None

    @classmethod
    def parse(cls, data: Any) -> JobSpec:
        _object(data, "", {"scene"}, {"render", "timeouts", "priority", "max_attempts", "tag", "overrides",
                                      "blender"})
        blender = data.get("blender") or {}
        _object(blender, "blender", set(), {"min_version"})
        min_version = _optional_str(blender, "min_version", "blender", max_len=16)
        if min_version is not None and not _VERSION.match(min_version):
            raise ValidationError("blender.min_version", "must be a version such as 4.2 or 4.2.1")
        spec = cls(
            scene=SceneAsset.parse(data["scene"]),
            render=RenderSettings.parse(data.get("render")),
            timeouts=Timeouts.parse(data.get("timeouts")),
            priority=_int(data.get("priority", 0), "priority", -1000, 1000),
            max_attempts=_int(data.get("max_attempts", 3), "max_attempts", 1, 100),
            tag=_optional_str(data, "tag", "", max_len=255),
            overrides=parse_overrides(data.get("overrides")),
            min_blender_version=min_version,
        )
        if spec.render.format == "FFMPEG":
            frames = spec.render.frame_list()
            if frames != list(range(frames[0], frames[-1] + 1)):
                raise ValidationError("render.frames", "FFMPEG output needs one contiguous range")
        return spec

    def to_json(self) -> dict:
        scene = {k: v for k, v in asdict(self.scene).items() if v is not None}
        out = {"scene": scene, "render": self.render.to_json(), "timeouts": asdict(self.timeouts),
               "priority": self.priority, "max_attempts": self.max_attempts}
        if self.tag is not None:
            out["tag"] = self.tag
        if self.overrides:
            out["overrides"] = self.overrides
        if self.min_blender_version:
            out["blender"] = {"min_version": self.min_blender_version}
        return out


# ---------------------------------------------------------------------------------------------
# Worker messages.

@dataclass(frozen=True)
class Hello:
    name: str
    os: str
    app_version: str
    blender: list[dict] = field(default_factory=list)  # [{"version": "4.2.1", "path": "..."}]
    gpus: list[dict] = field(default_factory=list)  # [{"name": "...", "vram_bytes": 0}]
    devices: list[str] = field(default_factory=list)  # render devices: "CPU", "CUDA", "OPTIX", ...

    @classmethod
    def parse(cls, data: Any) -> Hello:
        _object(data, "", {"name", "os", "app_version"}, {"blender", "gpus", "devices"})
        blender = _list(data.get("blender", []), "blender", 32)
        for i, item in enumerate(blender):
            _object(item, f"blender[{i}]", {"version"}, {"path"})
            _str(item["version"], f"blender[{i}].version", max_len=64)
        gpus = _list(data.get("gpus", []), "gpus", 64)
        for i, item in enumerate(gpus):
            _object(item, f"gpus[{i}]", {"name"}, {"vram_bytes", "uuid"})
            _str(item["name"], f"gpus[{i}].name", max_len=255)
        devices = _list(data.get("devices", []), "devices", 32)
        for i, item in enumerate(devices):
            _str(item, f"devices[{i}]", max_len=32)
        return cls(name=_str(data["name"], "name", max_len=128), os=_str(data["os"], "os", max_len=128),
                   app_version=_str(data["app_version"], "app_version", max_len=64),
                   blender=blender, gpus=gpus, devices=devices)

    def to_json(self) -> dict:
        return asdict(self)


def _list(value: Any, path: str, max_items: int) -> list:
    if not isinstance(value, list):
        raise ValidationError(path, "must be a list")
    if len(value) > max_items:
        raise ValidationError(path, f"must have at most {max_items} items")
    return value


@dataclass(frozen=True)
class Lease:
    """A claimed job: the worker may work on it while it renews the lease in time."""
    job_id: str
    lease_id: str
    ttl_s: float
    attempt: int
    spec: dict  # raw: the worker validates it itself and fails the job naming a bad field
    outputs: dict[str, str] = field(default_factory=dict)  # name -> sha256 the server already holds

    @classmethod
    def parse(cls, data: Any) -> Lease:
        _object(data, "", {"job_id", "lease_id", "ttl_s", "attempt", "spec"}, {"expires_at", "outputs"})
        outputs = {}
        for i, item in enumerate(_list(data.get("outputs", []), "outputs", C.MAX_FRAMES + 16)):
            _object(item, f"outputs[{i}]", {"name", "sha256"}, {"size"})
            outputs[check_output_name(item["name"], f"outputs[{i}].name")] = check_sha256(
                item["sha256"], f"outputs[{i}].sha256")
        return cls(job_id=_str(data["job_id"], "job_id", max_len=64),
                   lease_id=_str(data["lease_id"], "lease_id", max_len=128),
                   ttl_s=_number(data["ttl_s"], "ttl_s", 1, 86400),
                   attempt=_int(data["attempt"], "attempt", 1, 1000),
                   spec=data["spec"] if isinstance(data["spec"], dict) else {},
                   outputs=outputs)


@dataclass
class Progress:
    """What a heartbeat reports; every field is optional."""
    stage: str | None = None
    frame: int | None = None
    frames_done: int | None = None
    frame_count: int | None = None
    sample: int | None = None
    samples: int | None = None
    percent: float | None = None
    eta_s: float | None = None
    gpu: dict | None = None
    message: str | None = None

    FIELDS = ("stage", "frame", "frames_done", "frame_count", "sample", "samples", "percent",
              "eta_s", "gpu", "message")

    @classmethod
    def parse(cls, data: Any, path: str = "progress") -> Progress:
        data = {} if data is None else data
        _object(data, path, set(), set(cls.FIELDS))
        out = cls()
        if data.get("stage") is not None:
            out.stage = _choice(data["stage"], _join(path, "stage"), STAGES)
        for key in ("frame", "frames_done", "frame_count", "sample", "samples"):
            if data.get(key) is not None:
                setattr(out, key, _int(data[key], _join(path, key), -C.MAX_FRAME_NUMBER, 2**31))
        if data.get("percent") is not None:
            out.percent = _number(data["percent"], _join(path, "percent"), 0, 100)
        if data.get("eta_s") is not None:
            out.eta_s = _number(data["eta_s"], _join(path, "eta_s"), 0, 10 * C.MAX_JOB_TIMEOUT)
        if data.get("gpu") is not None:
            if not isinstance(data["gpu"], dict) or len(data["gpu"]) > 32:
                raise ValidationError(_join(path, "gpu"), "must be an object of figures")
            out.gpu = data["gpu"]
        out.message = _optional_str(data, "message", path, max_len=1024)
        return out

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_lease_call(data: Any, extra_required: set[str] = frozenset(),
                     extra_optional: set[str] = frozenset()) -> dict:
    """The body of heartbeat/complete/fail/release: a lease id and the call's own fields."""
    _object(data, "", {"lease_id"} | set(extra_required), set(extra_optional))
    _str(data["lease_id"], "lease_id", max_len=128)
    return data


def parse_heartbeat(data: Any) -> Progress:
    parse_lease_call(data, extra_optional={"progress"})
    return Progress.parse(data.get("progress"))


def parse_fail(data: Any) -> dict:
    parse_lease_call(data, {"reason"}, {"log_tail", "retryable"})
    _str(data["reason"], "reason", max_len=4096)
    tail = data.get("log_tail", "")
    _str(tail, "log_tail", max_len=64 * 1024, allow_empty=True)
    retryable = data.get("retryable", False)
    if not isinstance(retryable, bool):
        raise ValidationError("retryable", "must be true or false")
    return {"reason": data["reason"], "log_tail": tail, "retryable": retryable}


def parse_release(data: Any) -> str:
    parse_lease_call(data, extra_optional={"reason"})
    return _optional_str(data, "reason", "", max_len=1024) or "released by the worker"


def parse_complete(data: Any) -> dict:
    parse_lease_call(data, {"outputs"}, {"stats"})
    outputs = _list(data["outputs"], "outputs", C.MAX_FRAMES + 16)
    for i, name in enumerate(outputs):
        check_output_name(name, f"outputs[{i}]")
    stats = data.get("stats", {})
    if not isinstance(stats, dict) or len(stats) > 64:
        raise ValidationError("stats", "must be an object of at most 64 figures")
    for key, value in stats.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError(f"stats.{key}", "must be a number or a string")
    return {"outputs": outputs, "stats": stats}
