"""Reads Blender's output: the bundled scripts' JSON events, and Blender's own lines, loosely.

Pure functions, tested on real lines (tests/fixtures). A line is either an event from
``blender_scripts/render_job.py`` (``@homefarm {...}``) or one of Blender's own progress lines:

- Cycles, 2.8-4.x:  ``Fra:1 Mem:13.57M (Peak 15.33M) | Time:00:00.57 | ... | Sample 8/8``
- Blender 5.x logs through CLOG, with a time and a category in front and other spacing:
                    ``00:01.140  render           | Fra: 1 | Mem: 360M | Sample 1/16``
- EEVEE:            ``Fra:1 ... | Rendering 12 / 64 samples``
- errors:           ``Error: ...``, and in 5.x ``reports | ERROR Cannot render, no camera``
- every engine:     ``Saved: '/path/frame_0001.png'`` and `` Time: 00:01.23 (Saving: 00:00.18)``
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from worker_app import protocol as P
from worker_app.blender_scripts import contract as K

EVENT_PREFIX = K.EVENT_PREFIX

# Blender 5.x logs through CLOG: "00:01.140  render           | Fra: 1 | Mem: 360M | Sample 1/16".
# The prefix is searched anywhere, since Cycles' statistics thread can interleave it mid-line.
_CLOG = re.compile(r"\d{2}:\d{2}(?::\d{2})?\.\d{3}\s+[\w.]+\s+\|\s?")
_FRAME = re.compile(r"\bFra:\s*(-?\d+)\b")
_CYCLES_SAMPLE = re.compile(r"\|\s*Sample (\d+)\s*/\s*(\d+)")
_EEVEE_SAMPLE = re.compile(r"\bRendering (\d+)\s*/\s*(\d+)(?: samples)?\s*$")
_SAVED = re.compile(r"Saved: '(.+)'")
_TIME = re.compile(r"^\s*Time: ((?:\d+:)?\d+:\d+(?:\.\d+)?)")
# Lines after which Blender cannot render: stop at once with a reason rather than wait for a timeout.
_FATAL = re.compile(r"Unable to open a display|Failed to create (?:a )?(?:GPU|OpenGL|window|EGL)"
                    r"|Unsupported graphics card or driver", re.IGNORECASE)
_OUT_OF_MEMORY = re.compile(r"out of (?:GPU |device )?memory|CUDA_ERROR_OUT_OF_MEMORY|"
                            r"OPTIX_ERROR_OUT_OF_MEMORY|hipErrorOutOfMemory|failed to allocate", re.IGNORECASE)
# The last line of a Python traceback: "RuntimeError: the rig has no bone named 'Hand.L'".
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt)): (.+)$")
_ERROR = re.compile(r"^\s*(?:Error:|ERROR\b:?|\w+ \| ERROR\b)\s*(.*)")


@dataclass(frozen=True)
class Line:
    """What one line of output says; every field but ``text`` may be None."""
    text: str
    event: dict[str, Any] | None = None
    frame: int | None = None
    sample: int | None = None
    samples: int | None = None
    saved: str | None = None
    seconds: float | None = None
    error: str | None = None
    exception: str | None = None  # a Python exception's text, from a traceback's last line
    fatal: str | None = None  # why Blender cannot go on, when the line says so
    out_of_memory: bool = False


def parse_line(text: str) -> Line:
    text = text.rstrip("\r\n")
    if text.startswith(EVENT_PREFIX):
        try:
            event = json.loads(text[len(EVENT_PREFIX):])
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            return Line(text, event=event)
        return Line(text)
    body = text
    clog = _CLOG.search(text)
    if clog:
        body = text[clog.end():]
    frame = _FRAME.search(body)
    sample = _CYCLES_SAMPLE.search(body) or _EEVEE_SAMPLE.search(body)
    saved = _SAVED.search(body)
    took = _TIME.match(body)
    error = _ERROR.match(body)
    exception = _EXCEPTION.match(body.strip())
    return Line(
        text,
        frame=int(frame.group(1)) if frame else None,
        sample=int(sample.group(1)) if sample else None,
        samples=int(sample.group(2)) if sample else None,
        saved=saved.group(1) if saved else None,
        seconds=parse_duration(took.group(1)) if took else None,
        error=(error.group(1).strip() or body) if error else None,
        exception=f"{exception.group(1)}: {exception.group(2)}" if exception else None,
        fatal=(f"Blender cannot start its GPU/display context here (EEVEE and Workbench need one): "
               f"{body.strip()}") if _FATAL.search(body) else None,
        out_of_memory=bool(_OUT_OF_MEMORY.search(body)),
    )


def parse_duration(text: str) -> float:
    """``01:02:03.45`` / ``02:03.45`` → seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


class ProgressTracker:
    """Folds lines into progress over the whole job: frames × samples, with an ETA."""

    def __init__(self, frame_count: int, samples: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.frame_count = max(frame_count, 1)
        self.samples = samples
        self.frames_done = 0
        self.frame: int | None = None
        self.sample = 0
        self.clock = clock
        self.started = clock()
        self.saved: list[str] = []
        self.scene_reused = False  # a warm Blender rendered it on the scene the job before left loaded
        self.errors: list[str] = []  # Blender's own error lines
        self.script_errors: list[str] = []  # error events from the bundled script: the precise cause
        self.job_error = False  # one of them was the job's fault (a field named), not ours or Blender's
        self.exceptions: list[str] = []  # Python exceptions Blender printed
        self.warnings: list[str] = []
        self.missing: list[dict[str, Any]] = []  # {"kind", "path"}: what the scene needs and is not there
        self.redirected: list[dict[str, Any]] = []  # {"what", "from", "to"}: paths pointed into the job's folder
        self.out_of_memory: str | None = None

    def feed(self, line: Line) -> None:
        if line.event is not None:
            self._event(line.event)
            return
        if line.frame is not None:
            self.frame = line.frame
        if line.sample is not None:
            self.sample = line.sample
            self.samples = line.samples or self.samples
        if line.error:
            self.errors.append(line.error)
        if line.exception:
            self.exceptions.append(line.exception)
        if line.out_of_memory and self.out_of_memory is None:
            self.out_of_memory = line.text.strip()[:200]

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == K.JOB_START:
            if isinstance(event.get("samples"), int):
                self.samples = event["samples"]
            self.scene_reused = event.get("reused") is True
            self.started = self.clock()
        elif kind == K.FRAME_START:
            self.frame = event.get("frame")
            self.sample = 0
        elif kind == K.FILE_SAVED and isinstance(event.get("path"), str):
            self.saved.append(event["path"])
        elif kind == K.FRAME_DONE:
            self.frames_done += 1
            self.sample = 0
        elif kind == K.WARNING:
            self.warnings.append(str(event.get("message")))
        elif kind == K.MISSING:
            self.missing.append({"kind": str(event.get("kind")), "path": str(event.get("path"))[:1024]})
        elif kind == K.REDIRECTED:
            self.redirected.append({key: str(event.get(key))[:1024] for key in ("what", "from", "to")})
        elif kind == K.ERROR:
            self.script_errors.append(str(event.get("message")))
            self.job_error = self.job_error or event.get("kind") == "job"

    def progress(self, gpu: dict[str, Any] | None = None) -> P.Progress:
        """This render as the heartbeat reports it and the tray shows it: one progress type from Blender's
        lines to the web app."""
        return P.Progress(stage="rendering", frame=self.frame, frames_done=self.frames_done,
                          frame_count=self.frame_count, sample=self.sample, samples=self.samples,
                          percent=self.percent, eta_s=self.eta_s, gpu=gpu or None)

    @property
    def fraction(self) -> float:
        within = self.sample / self.samples if self.samples else 0.0
        return min(1.0, (self.frames_done + min(within, 1.0)) / self.frame_count)

    @property
    def percent(self) -> float:
        return round(100.0 * self.fraction, 1)

    @property
    def eta_s(self) -> float | None:
        fraction = self.fraction
        if fraction <= 0.0:
            return None
        elapsed: float = self.clock() - self.started
        return round(elapsed * (1 - fraction) / fraction, 1)
