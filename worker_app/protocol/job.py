"""The job a web app submits: the scene, the render settings, template overrides, timeouts.

The reference server validates a job when it is submitted and the worker validates it again when it is
claimed, both with ``JobSpec.parse``, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from worker_app.protocol import limits
from worker_app.blender_scripts import contract as K
from worker_app.protocol.fields import (DEVICES, ENGINES, FORMATS, MAX_OVERRIDES, SCENE_TYPES, VERSION_PATTERN,
                                        ValidationError, check_bool, check_choice, check_int, check_number,
                                        check_object, check_sha256, check_str, join, optional_str, parse_frames)

def _vector(value: Any, path: str, size: int, lo: float, hi: float, sizes: tuple[int, ...] = ()) -> list[Any]:
    allowed = sizes or (size,)
    if not isinstance(value, list) or len(value) not in allowed:
        raise ValidationError(path, f"must be a list of {' or '.join(map(str, allowed))} numbers")
    return [check_number(v, f"{path}[{i}]", lo, hi) for i, v in enumerate(value)]


def _named(data: Any, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError(path, "must be an object keyed by name")
    if len(data) > MAX_OVERRIDES:
        raise ValidationError(path, f"must have at most {MAX_OVERRIDES} entries")
    for name in data:
        check_str(name, f"{path}.{name}", max_len=255)
    return data


def parse_overrides(data: Any, path: str = "overrides") -> dict[str, Any]:
    """Template parameters: declarative changes the bundled script makes to the scene before rendering.

    Everything here is data; the script looks names up in the .blend and fails the job with the name
    of anything that is not there.
    """
    if data is None:
        return {}
    check_object(data, path, set(), {"objects", "materials", "texts", "images", "collections"})
    out: dict[str, Any] = {}
    for name, obj in _named(data.get("objects", {}), f"{path}.objects").items():
        p = f"{path}.objects.{name}"
        check_object(obj, p, set(), {"location", "rotation", "scale", "visible"})
        entry: dict[str, Any] = {}
        for key in ("location", "rotation", "scale"):
            if key in obj:
                entry[key] = _vector(obj[key], f"{p}.{key}", 3, -1e6, 1e6)
        if "visible" in obj:
            entry["visible"] = check_bool(obj["visible"], f"{p}.visible")
        out.setdefault("objects", {})[name] = entry
    for name, mat in _named(data.get("materials", {}), f"{path}.materials").items():
        p = f"{path}.materials.{name}"
        check_object(mat, p, set(), set(MATERIAL_INPUTS))
        entry = {}
        for key in ("base_color", "emission"):
            if key in mat:
                entry[key] = _vector(mat[key], f"{p}.{key}", 4, 0.0, 1.0, sizes=(3, 4))
        for key in ("metallic", "roughness"):
            if key in mat:
                entry[key] = check_number(mat[key], f"{p}.{key}", 0.0, 1.0)
        if "emission_strength" in mat:
            entry["emission_strength"] = check_number(mat["emission_strength"], f"{p}.emission_strength", 0.0, 1e6)
        out.setdefault("materials", {})[name] = entry
    for name, body in _named(data.get("texts", {}), f"{path}.texts").items():
        out.setdefault("texts", {})[name] = check_str(body, f"{path}.texts.{name}", max_len=10_000, allow_empty=True)
    for name, asset in _named(data.get("images", {}), f"{path}.images").items():
        p = f"{path}.images.{name}"
        image = SceneAsset.parse(asset, p)
        if image.type != "blend" or image.blend:
            raise ValidationError(f"{p}.type", "an image is a single file")
        out.setdefault("images", {})[name] = {"url": image.url, "sha256": image.sha256, "size": image.size}
    for name, coll in _named(data.get("collections", {}), f"{path}.collections").items():
        p = f"{path}.collections.{name}"
        check_object(coll, p, {"visible"}, set())
        out.setdefault("collections", {})[name] = {"visible": check_bool(coll["visible"], f"{p}.visible")}
    return out


# Principled BSDF inputs a job may set, and their socket names across Blender versions.
MATERIAL_INPUTS = K.MATERIAL_INPUTS



@dataclass(frozen=True)
class SceneAsset:
    url: str
    sha256: str
    size: int
    type: str = "blend"
    blend: str | None = None  # the .blend inside a zip

    @classmethod
    def parse(cls, data: Any, path: str = "scene") -> SceneAsset:
        check_object(data, path, {"url", "sha256", "size"}, {"type", "blend"})
        url = check_str(data["url"], join(path, "url"), max_len=4096)
        if not (url.startswith(("http://", "https://")) or url.startswith("/")):
            raise ValidationError(join(path, "url"), "must be an http(s) URL or a path on the job server")
        kind = check_choice(data.get("type", "blend"), join(path, "type"), SCENE_TYPES)
        blend = optional_str(data, "blend", path, max_len=1024)
        if kind == "zip" and not blend:
            raise ValidationError(join(path, "blend"), "is required for a zip scene: the .blend to open")
        if kind == "blend" and blend:
            raise ValidationError(join(path, "blend"), "is only for zip scenes")
        if blend and not blend.lower().endswith(".blend"):
            raise ValidationError(join(path, "blend"), "must name a .blend file")
        return cls(url=url, sha256=check_sha256(data["sha256"], join(path, "sha256")),
                   size=check_int(data["size"], join(path, "size"), 1, limits.MAX_SCENE_SIZE),
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
    denoise: bool | None = None  # None: as the scene says, where this Blender can denoise

    FIELDS = {"engine", "device", "samples", "resolution", "resolution_percentage", "frames",
              "format", "camera", "scene", "denoise"}

    @classmethod
    def parse(cls, data: Any, path: str = "render") -> RenderSettings:
        data = {} if data is None else data
        check_object(data, path, set(), cls.FIELDS)
        resolution = data.get("resolution")
        if resolution is not None:
            if not isinstance(resolution, list) or len(resolution) != 2:
                raise ValidationError(join(path, "resolution"), "must be [width, height]")
            resolution = (check_int(resolution[0], join(path, "resolution[0]"), 1, limits.MAX_RESOLUTION),
                          check_int(resolution[1], join(path, "resolution[1]"), 1, limits.MAX_RESOLUTION))
        samples = data.get("samples")
        frames = data.get("frames", "1")
        if isinstance(frames, int) and not isinstance(frames, bool):
            frames = str(frames)
        parse_frames(frames, join(path, "frames"))
        return cls(
            engine=check_choice(data.get("engine", "CYCLES"), join(path, "engine"), ENGINES),
            device=check_choice(data.get("device", "AUTO"), join(path, "device"), DEVICES),
            samples=None if samples is None else check_int(samples, join(path, "samples"), 1, limits.MAX_SAMPLES),
            resolution=resolution,
            resolution_percentage=check_int(data.get("resolution_percentage", 100),
                                       join(path, "resolution_percentage"), 1, 100),
            frames=frames,
            format=check_choice(data.get("format", "PNG"), join(path, "format"), FORMATS),
            camera=optional_str(data, "camera", path, max_len=255),
            scene=optional_str(data, "scene", path, max_len=255),
            denoise=None if data.get("denoise") is None else check_bool(data["denoise"], join(path, "denoise")),
        )

    def frame_list(self) -> list[int]:
        return parse_frames(self.frames)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolution"] = list(self.resolution) if self.resolution else None
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Timeouts:
    total_s: float = limits.JOB_TIMEOUT_DEFAULT
    silence_s: float = limits.SILENCE_TIMEOUT_DEFAULT

    @classmethod
    def parse(cls, data: Any, path: str = "timeouts") -> Timeouts:
        data = {} if data is None else data
        check_object(data, path, set(), {"total_s", "silence_s"})
        return cls(
            total_s=check_number(data.get("total_s", limits.JOB_TIMEOUT_DEFAULT), join(path, "total_s"),
                            1, limits.MAX_JOB_TIMEOUT),
            silence_s=check_number(data.get("silence_s", limits.SILENCE_TIMEOUT_DEFAULT),
                              join(path, "silence_s"), 1, limits.MAX_JOB_TIMEOUT),
        )


@dataclass(frozen=True)
class JobSpec:
    scene: SceneAsset
    render: RenderSettings = field(default_factory=RenderSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    priority: int = 0
    max_attempts: int = 3
    tag: str | None = None  # the web app's own reference, echoed back in listings
    overrides: dict[str, Any] = field(default_factory=dict)
    min_blender_version: str | None = None
    strict: bool = False  # a missing library, image, font, cache or clip fails the job instead of a warning
    webhook_url: str | None = None  # told of the job's end, besides the server's own webhook

    @classmethod
    def parse(cls, data: Any) -> JobSpec:
        check_object(data, "", {"scene"}, {"render", "timeouts", "priority", "max_attempts", "tag", "overrides",
                                      "blender", "strict", "webhook_url"})
        blender = data.get("blender") or {}
        check_object(blender, "blender", set(), {"min_version"})
        min_version = optional_str(blender, "min_version", "blender", max_len=16)
        if min_version is not None and not VERSION_PATTERN.match(min_version):
            raise ValidationError("blender.min_version", "must be a version such as 4.2 or 4.2.1")
        spec = cls(
            scene=SceneAsset.parse(data["scene"]),
            render=RenderSettings.parse(data.get("render")),
            timeouts=Timeouts.parse(data.get("timeouts")),
            priority=check_int(data.get("priority", 0), "priority", -1000, 1000),
            max_attempts=check_int(data.get("max_attempts", 3), "max_attempts", 1, 100),
            tag=optional_str(data, "tag", "", max_len=255),
            overrides=parse_overrides(data.get("overrides")),
            min_blender_version=min_version,
            strict=check_bool(data.get("strict", False), "strict"),
            webhook_url=_webhook_url(data.get("webhook_url")),
        )
        if spec.render.format == "FFMPEG":
            frames = spec.render.frame_list()
            if frames != list(range(frames[0], frames[-1] + 1)):
                raise ValidationError("render.frames", "FFMPEG output needs one contiguous range")
        return spec

    def to_json(self) -> dict[str, Any]:
        scene = {k: v for k, v in asdict(self.scene).items() if v is not None}
        out = {"scene": scene, "render": self.render.to_json(), "timeouts": asdict(self.timeouts),
               "priority": self.priority, "max_attempts": self.max_attempts}
        if self.tag is not None:
            out["tag"] = self.tag
        if self.overrides:
            out["overrides"] = self.overrides
        if self.min_blender_version:
            out["blender"] = {"min_version": self.min_blender_version}
        if self.strict:
            out["strict"] = True
        if self.webhook_url:
            out["webhook_url"] = self.webhook_url
        return out


def _webhook_url(value: Any) -> str | None:
    if value is None:
        return None
    url = check_str(value, "webhook_url", max_len=2048)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ValidationError("webhook_url", "must be an http or https URL without credentials, "
                                             "such as https://app.example.com/hooks/render")
    return url


# ---------------------------------------------------------------------------------------------
# Worker messages.

