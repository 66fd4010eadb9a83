"""What the worker and the server say to each other about a job: sign-on, leases, progress and reports.

The client sends these classes, the outbox keeps them, the server parses them: one definition each way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from worker_app.protocol import limits
from worker_app.protocol.fields import (JOB_STATES, PAUSE_KINDS, PROTOCOL_VERSION, STAGES, VERSION_PATTERN, ValidationError, check_bool,
                                        check_choice,
                                        check_int, check_list, check_number, check_object, check_output_name,
                                        check_sha256, check_str, join, optional_str)

@dataclass(frozen=True)
class Hello:
    name: str
    os: str
    app_version: str
    blender: list[dict[str, Any]] = field(default_factory=list)  # [{"version": "4.2.1", "path": "..."}]
    gpus: list[dict[str, Any]] = field(default_factory=list)  # [{"name": "...", "vram_bytes": 0}]
    devices: list[str] = field(default_factory=list)  # render devices: "CPU", "CUDA", "OPTIX", ...
    worker_id: str | None = None  # the id this worker had: a hello again (a Blender added) keeps it

    @classmethod
    def parse(cls, data: Any) -> Hello:
        check_object(data, "", {"name", "os", "app_version"}, {"blender", "gpus", "devices", "worker_id"})
        blender = check_list(data.get("blender", []), "blender", 32)
        for i, item in enumerate(blender):
            check_object(item, f"blender[{i}]", {"version"}, {"path"})
            check_str(item["version"], f"blender[{i}].version", max_len=64)
        gpus = check_list(data.get("gpus", []), "gpus", 64)
        for i, item in enumerate(gpus):
            check_object(item, f"gpus[{i}]", {"name"}, {"vram_bytes", "uuid"})
            check_str(item["name"], f"gpus[{i}].name", max_len=255)
        devices = check_list(data.get("devices", []), "devices", 32)
        for i, item in enumerate(devices):
            check_str(item, f"devices[{i}]", max_len=32)
        return cls(name=check_str(data["name"], "name", max_len=128), os=check_str(data["os"], "os", max_len=128),
                   app_version=check_str(data["app_version"], "app_version", max_len=64),
                   blender=blender, gpus=gpus, devices=devices,
                   worker_id=optional_str(data, "worker_id", "", max_len=64))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.worker_id:
            out.pop("worker_id")
        return out


@dataclass(frozen=True)
class Lease:
    """A claimed job: the worker may work on it while it renews the lease in time."""
    job_id: str
    lease_id: str
    ttl_s: float
    attempt: int
    spec: dict[str, Any]  # raw: the worker validates it itself and fails the job naming a bad field
    outputs: dict[str, str] = field(default_factory=dict)  # name -> sha256 the server already holds
    expires_at: float | None = None  # the server's clock; the worker goes by ttl_s

    @classmethod
    def parse(cls, data: Any) -> Lease:
        check_object(data, "", {"job_id", "lease_id", "ttl_s", "attempt", "spec"}, {"expires_at", "outputs"})
        outputs = {}
        for i, item in enumerate(check_list(data.get("outputs", []), "outputs", limits.MAX_FRAMES + 16)):
            check_object(item, f"outputs[{i}]", {"name", "sha256"}, {"size"})
            outputs[check_output_name(item["name"], f"outputs[{i}].name")] = check_sha256(
                item["sha256"], f"outputs[{i}].sha256")
        return cls(job_id=check_str(data["job_id"], "job_id", max_len=64),
                   lease_id=check_str(data["lease_id"], "lease_id", max_len=128),
                   ttl_s=check_number(data["ttl_s"], "ttl_s", 1, 86400),
                   attempt=check_int(data["attempt"], "attempt", 1, 1000),
                   spec=data["spec"] if isinstance(data["spec"], dict) else {},
                   outputs=outputs, expires_at=_optional_number(data, "expires_at", 0, 1e12))

    def to_json(self) -> dict[str, Any]:
        """The claim's reply (docs/protocol.md): the outputs stored already as a list of name and SHA-256."""
        out: dict[str, Any] = {"job_id": self.job_id, "lease_id": self.lease_id, "ttl_s": self.ttl_s,
                               "attempt": self.attempt, "spec": self.spec,
                               "outputs": [{"name": name, "sha256": sha} for name, sha in self.outputs.items()]}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


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
    gpu: dict[str, Any] | None = None
    message: str | None = None

    FIELDS = ("stage", "frame", "frames_done", "frame_count", "sample", "samples", "percent",
              "eta_s", "gpu", "message")

    @classmethod
    def parse(cls, data: Any, path: str = "progress") -> Progress:
        data = {} if data is None else data
        check_object(data, path, set(), set(cls.FIELDS))
        out = cls()
        if data.get("stage") is not None:
            out.stage = check_choice(data["stage"], join(path, "stage"), STAGES)
        for key in ("frame", "frames_done", "frame_count", "sample", "samples"):
            if data.get(key) is not None:
                setattr(out, key, check_int(data[key], join(path, key), -limits.MAX_FRAME_NUMBER, 2**31))
        if data.get("percent") is not None:
            out.percent = check_number(data["percent"], join(path, "percent"), 0, 100)
        if data.get("eta_s") is not None:
            out.eta_s = check_number(data["eta_s"], join(path, "eta_s"), 0, 10 * limits.MAX_JOB_TIMEOUT)
        if data.get("gpu") is not None:
            if not isinstance(data["gpu"], dict) or len(data["gpu"]) > 32:
                raise ValidationError(join(path, "gpu"), "must be an object of figures")
            out.gpu = data["gpu"]
        out.message = optional_str(data, "message", path, max_len=1024)
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_lease_call(data: Any, extra_required: frozenset[str] | set[str] = frozenset(),
                     extra_optional: frozenset[str] | set[str] = frozenset()) -> str:
    """The body of heartbeat/complete/fail/release: a lease id and the call's own fields; returns the lease id."""
    check_object(data, "", {"lease_id"} | set(extra_required), set(extra_optional))
    return check_str(data["lease_id"], "lease_id", max_len=128)


def parse_heartbeat(data: Any) -> Progress:
    parse_lease_call(data, extra_optional={"progress"})
    return Progress.parse(data.get("progress"))


# -- replies -------------------------------------------------------------------------------------

def _optional_number(data: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    return None if data.get(key) is None else check_number(data[key], key, lo, hi)


@dataclass(frozen=True)
class HelloReply:
    worker_id: str
    protocol: int = PROTOCOL_VERSION
    server_version: str | None = None
    heartbeat_interval_s: float | None = None
    claim_wait_max_s: float | None = None
    lease_ttl_s: float | None = None
    latest_worker_version: str | None = None  # the newest release, announced in the tray
    min_worker_version: str | None = None  # older workers claim nothing
    # Set when the server keeps outputs in S3: workers upload straight to storage in parts of this size.
    upload_part_size: int | None = None

    @classmethod
    def parse(cls, data: Any) -> HelloReply:
        check_object(data, "", {"worker_id"}, {"protocol", "server_version", "heartbeat_interval_s",
                                               "claim_wait_max_s", "lease_ttl_s", "latest_worker_version",
                                               "min_worker_version", "upload_part_size"})
        part_size = data.get("upload_part_size")
        return cls(worker_id=check_str(data["worker_id"], "worker_id", max_len=64),
                   protocol=int(_optional_number(data, "protocol", 1, 1000) or PROTOCOL_VERSION),
                   server_version=optional_str(data, "server_version", "", max_len=64),
                   heartbeat_interval_s=_optional_number(data, "heartbeat_interval_s", 0.05, 3600),
                   claim_wait_max_s=_optional_number(data, "claim_wait_max_s", 0.05, 3600),
                   lease_ttl_s=_optional_number(data, "lease_ttl_s", 0.05, 86400),
                   latest_worker_version=optional_str(data, "latest_worker_version", "", max_len=32),
                   min_worker_version=optional_str(data, "min_worker_version", "", max_len=32),
                   upload_part_size=None if part_size is None else check_int(part_size, "upload_part_size",
                                                                             5 * 1024**2, 5 * 1024**3))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class WorkerState:
    """What a worker tells the server when it changes, for the dashboard: whether it is paused and why (the
    kind; the program's name only when its owner set ``share.program_names``), until when, and whether it
    keeps a warm Blender."""
    worker_id: str
    paused: bool = False
    pause_kind: str | None = None
    until: float | None = None
    warm: bool = False
    program: str | None = None

    @classmethod
    def parse(cls, data: Any) -> WorkerState:
        check_object(data, "", {"worker_id"}, {"paused", "pause_kind", "until", "warm", "program"})
        kind = data.get("pause_kind")
        return cls(worker_id=check_str(data["worker_id"], "worker_id", max_len=64),
                   paused=check_bool(data.get("paused", False), "paused"),
                   pause_kind=None if kind is None else check_choice(kind, "pause_kind", PAUSE_KINDS),
                   until=_optional_number(data, "until", 0, 1e12),
                   warm=check_bool(data.get("warm", False), "warm"),
                   program=None if data.get("program") is None else check_str(data["program"], "program",
                                                                               max_len=255))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class HeartbeatReply:
    cancel: bool = False  # the web app canceled the job: stop and report nothing more
    ttl_s: float | None = None

    @classmethod
    def parse(cls, data: Any) -> HeartbeatReply:
        check_object(data, "", set(), {"cancel", "ttl_s"})
        return cls(cancel=check_bool(data.get("cancel", False), "cancel"),
                   ttl_s=_optional_number(data, "ttl_s", 0, 86400))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# -- direct uploads: a file straight to the server's S3 storage --------------------------------

MAX_PARTS = 10_000  # S3's limit on a multipart upload


@dataclass(frozen=True)
class UploadPart:
    number: int
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class UploadPlan:
    """The answer to an upload's plan: the presigned PUTs to make (``direct``), that the server has the file
    already (``stored``), or neither: PUT it to the server."""
    direct: bool = False
    stored: bool = False
    upload_id: str | None = None  # None: one plain PUT; else a multipart upload
    part_size: int | None = None
    parts: tuple[UploadPart, ...] = ()
    expires_at: float | None = None

    @classmethod
    def parse(cls, data: Any) -> UploadPlan:
        check_object(data, "", set(), {"direct", "stored", "upload_id", "part_size", "parts", "expires_at",
                                       "name", "sha256", "size", "url"})
        parts = []
        for i, item in enumerate(check_list(data.get("parts") or [], "parts", MAX_PARTS)):
            where = f"parts[{i}]"
            check_object(item, where, {"number", "url"}, {"headers"})
            headers = item.get("headers") or {}
            if not isinstance(headers, dict):
                raise ValidationError(join(where, "headers"), "must be an object")
            parts.append(UploadPart(number=check_int(item["number"], join(where, "number"), 1, MAX_PARTS),
                                    url=check_str(item["url"], join(where, "url"), max_len=8192),
                                    headers={check_str(k, join(where, "headers"), max_len=128):
                                             check_str(v, join(where, "headers"), max_len=1024)
                                             for k, v in headers.items()}))
        upload_id = data.get("upload_id")
        part_size = data.get("part_size")
        return cls(direct=check_bool(data.get("direct", False), "direct"),
                   stored=check_bool(data.get("stored", False), "stored"),
                   upload_id=None if upload_id is None else check_str(upload_id, "upload_id", max_len=1024),
                   part_size=None if part_size is None else check_int(part_size, "part_size", 1, 5 * 1024**3),
                   parts=tuple(parts), expires_at=_optional_number(data, "expires_at", 0, 1e12))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"direct": self.direct}
        if self.stored:
            out["stored"] = True
        if self.direct:
            out.update(upload_id=self.upload_id, part_size=self.part_size,
                       parts=[asdict(part) for part in self.parts])
            if self.expires_at is not None:
                out["expires_at"] = self.expires_at
        return out


# -- reports: a job's final word, kept in the worker's outbox until the server acknowledges it ----

WARNING_KINDS = ("library", "linked", "image", "font", "cache", "clip", "sound", "redirected", "render")
MAX_WARNINGS = 200


def parse_warnings(value: Any, path: str = "warnings") -> list[dict[str, Any]]:
    """What a done job's scene lacked or tried: [{"kind", "path", "name"?, "message"?}]."""
    out = []
    for i, item in enumerate(check_list(value, path, MAX_WARNINGS)):
        p = f"{path}[{i}]"
        check_object(item, p, {"kind", "path"}, {"name", "message"})
        entry = {"kind": check_choice(item["kind"], join(p, "kind"), WARNING_KINDS),
                 "path": check_str(item["path"], join(p, "path"), max_len=1024, allow_empty=True)}
        for key in ("name", "message"):
            if item.get(key) is not None:
                entry[key] = check_str(item[key], join(p, key), max_len=1024, allow_empty=True)
        out.append(entry)
    return out


@dataclass(frozen=True)
class CompleteReport:
    outputs: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # documented in docs/scenes.md
    kind = "complete"

    @classmethod
    def parse(cls, data: Any) -> CompleteReport:
        parse_lease_call(data, {"outputs"}, {"stats", "warnings"})
        outputs = check_list(data["outputs"], "outputs", limits.MAX_FRAMES + 16)
        for i, name in enumerate(outputs):
            check_output_name(name, f"outputs[{i}]")
        stats = data.get("stats", {})
        if not isinstance(stats, dict) or len(stats) > 64:
            raise ValidationError("stats", "must be an object of at most 64 figures")
        for key, value in stats.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValidationError(f"stats.{key}", "must be a number or a string")
        return cls(outputs, stats, parse_warnings(data.get("warnings", [])))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outputs": self.outputs, "stats": self.stats}
        if self.warnings:
            out["warnings"] = self.warnings[:MAX_WARNINGS]
        return out


@dataclass(frozen=True)
class FailReport:
    reason: str
    log_tail: str = ""
    retryable: bool = False  # may another attempt succeed? A broken scene fails everywhere.
    # The scene needs this Blender version or newer (it was saved by it): the server offers the job again,
    # to workers that have it, without counting the attempt.
    needs_blender: str | None = None
    # This worker is getting that Blender (installing it, or asking its owner to): the server keeps the job
    # queued for it even when no worker has that Blender yet.
    installing_blender: bool = False
    kind = "fail"

    @classmethod
    def parse(cls, data: Any) -> FailReport:
        parse_lease_call(data, {"reason"}, {"log_tail", "retryable", "needs_blender", "installing_blender"})
        tail = data.get("log_tail", "")
        check_str(tail, "log_tail", max_len=64 * 1024, allow_empty=True)
        needs = optional_str(data, "needs_blender", "", max_len=16)
        if needs is not None and not VERSION_PATTERN.match(needs):
            raise ValidationError("needs_blender", "must be a version such as 4.2 or 4.2.1")
        return cls(check_str(data["reason"], "reason", max_len=4096), tail,
                   check_bool(data.get("retryable", False), "retryable"), needs,
                   check_bool(data.get("installing_blender", False), "installing_blender") and needs is not None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason[:4096], "log_tail": self.log_tail[-60_000:],
                               "retryable": self.retryable}
        if self.needs_blender:
            out["needs_blender"] = self.needs_blender
            if self.installing_blender:
                out["installing_blender"] = True
        return out


@dataclass(frozen=True)
class ReleaseReport:
    reason: str = "released by the worker"
    kind = "release"

    @classmethod
    def parse(cls, data: Any) -> ReleaseReport:
        parse_lease_call(data, extra_optional={"reason"})
        return cls(optional_str(data, "reason", "", max_len=1024) or "released by the worker")

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason[:1024]}


@dataclass(frozen=True)
class ReportAck:
    """The server's answer to a report: the job's state after it (``queued`` when a failure is retried)."""
    state: str

    @classmethod
    def parse(cls, data: Any) -> ReportAck:
        check_object(data, "", {"state"}, set())
        return cls(check_choice(data["state"], "state", JOB_STATES))

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state}


@dataclass(frozen=True)
class StoredOutput:
    """The server's answer to an output's upload: it holds these bytes (``stored``: false when it had them)."""
    name: str
    sha256: str
    size: int
    stored: bool = True

    @classmethod
    def parse(cls, data: Any) -> StoredOutput:
        check_object(data, "", {"name", "sha256", "size"}, {"stored", "direct"})
        return cls(check_output_name(data["name"], "name"), check_sha256(data["sha256"], "sha256"),
                   check_int(data["size"], "size", 0, 2**63), check_bool(data.get("stored", True), "stored"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UploadRequest:
    """A direct upload's plan or commit call (docs/protocol.md): the file's SHA-256 and size, its parts'
    SHA-256s, the upload's id once begun, and the parts sent already (plan) or their ETags (commit)."""
    sha256: str
    size: int
    parts: list[str] | None
    upload_id: str | None
    etags: dict[int, str] = field(default_factory=dict)
    done: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, body: Any, max_size: int, commit: bool) -> UploadRequest:
        if not isinstance(body, dict):
            raise ValidationError("", "must be a JSON object")
        sha = check_sha256(body.get("sha256"), "sha256")
        size = check_int(body.get("size"), "size", 0, max_size)
        parts = None if body.get("parts") is None and not commit else [
            check_sha256(item, f"parts[{i}]") for i, item in enumerate(check_list(body.get("parts"), "parts",
                                                                                   100_000))]
        upload_id = body.get("upload_id")
        if upload_id is not None:
            upload_id = check_str(upload_id, "upload_id", max_len=1024)
        if not commit:
            done = frozenset(check_int(n, "done", 1, 100_000)
                             for n in check_list(body.get("done") or [], "done", 100_000))
            return cls(sha, size, parts, upload_id, done=done)
        raw = body.get("etags") or {}
        if not isinstance(raw, dict):
            raise ValidationError("etags", "must be an object of part number to ETag")
        etags = {}
        for number, etag in raw.items():
            if not str(number).isdigit():
                raise ValidationError("etags", f"{number!r} is not a part number")
            etags[int(number)] = check_str(etag, f"etags.{number}", max_len=256)
        return cls(sha, size, parts, upload_id, etags=etags)


REPORTS = {cls.kind: cls for cls in (CompleteReport, FailReport, ReleaseReport)}
