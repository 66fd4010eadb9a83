"""The protocol's building blocks: constants, the field validators, names, frames and versions.

A bad value raises ``ValidationError`` whose ``field`` is the dotted path of the culprit (``render.samples``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from worker_app.protocol import limits
from worker_app.blender_scripts import contract as K

API_PREFIX = "/api/v1"
WORKER_PREFIX = "/api/worker/v1"
PROTOCOL_VERSION = 1

ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")
DEVICES = ("AUTO", "GPU", "CPU")
FORMATS = K.FILE_FORMATS
SCENE_TYPES = ("blend", "zip")
JOB_STATES = ("queued", "leased", "done", "failed", "canceled")
STAGES = ("downloading", "rendering", "uploading")
# A claim's 204 carries this header while the worker is held from the dashboard: the hold's end (Unix time),
# or "release" when it lasts until released. The worker claims again at the end, or within a minute.
HELD_HEADER = "X-Homefarm-Held-Until"
# Why a worker steps aside, as it tells the server (the worker's guard names the same kinds: a test checks).
PAUSE_KINDS = ("manual", "game", "gpu", "fullscreen", "active", "schedule", "thermal", "disk", "hold-off", "update")

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

def check_object(value: Any, path: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(path or "body", "must be a JSON object")
    for key in value:
        if key not in required and key not in optional:
            raise ValidationError(join(path, key), "unknown field")
    for key in sorted(required):
        if key not in value:
            raise ValidationError(join(path, key), "is required")
    return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_str(value: Any, path: str, *, max_len: int = 1024, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, "must be a string")
    if not value and not allow_empty:
        raise ValidationError(path, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(path, f"must be at most {max_len} characters")
    if "\x00" in value:
        raise ValidationError(path, "must not contain NUL characters")
    return value


def check_int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(path, "must be an integer")
    if not lo <= value <= hi:
        raise ValidationError(path, f"must be between {lo} and {hi}")
    return value


def check_number(value: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(path, "must be a finite number")
    if not lo <= value <= hi:
        raise ValidationError(path, f"must be between {lo:g} and {hi:g}")
    return float(value)


def check_choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(path, f"must be one of {', '.join(choices)}")
    return str(value)


def optional_str(data: dict[str, Any], key: str, path: str, **kw: Any) -> str | None:
    value = data.get(key)
    return None if value is None else check_str(value, join(path, key), **kw)


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
    check_str(text, path, max_len=4096)
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = _FRAME_PART.match(part)
        if not match:
            raise ValidationError(path, f"{part!r} is not a frame or a range such as 1-10")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        for number in (start, end):
            if not 0 <= number <= limits.MAX_FRAME_NUMBER:
                raise ValidationError(path, f"frame {number} is outside 0-{limits.MAX_FRAME_NUMBER}")
        if end < start:
            raise ValidationError(path, f"range {part!r} ends before it starts")
        if end - start + 1 + len(frames) > limits.MAX_FRAMES:
            raise ValidationError(path, f"more than {limits.MAX_FRAMES} frames in one job")
        frames.update(range(start, end + 1))
    return sorted(frames)


# ---------------------------------------------------------------------------------------------
# The job spec.

VERSION_PATTERN = re.compile(r"^\d{1,3}(\.\d{1,3}){0,2}$")
MAX_OVERRIDES = 256


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))




def check_list(value: Any, path: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(path, "must be a list")
    if len(value) > max_items:
        raise ValidationError(path, f"must have at most {max_items} items")
    return value



def check_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(path, "must be true or false")
    return value


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: plain http is allowed only there unless the owner says otherwise."""
    if not host:
        return False
    if host == "localhost" or host == "::1":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)
