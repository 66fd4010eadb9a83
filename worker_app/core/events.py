"""What other threads tell the worker loop. Each is a small immutable message put on the loop's queue; the
loop alone applies it to the worker's state (``loop.Worker._apply``)."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Any

from worker_app import protocol as P
from worker_app.core.settings import Settings
from worker_app.core.state import Outcome
from worker_app.guard.causes import PauseDecision
from worker_app.system.gpu import GpuSnapshot


@dataclass(frozen=True)
class StopRequested:
    """The CLI, the tray or a signal asked the worker to end."""


@dataclass(frozen=True)
class SettingsChanged:
    """The owner changed the settings (the tray, the config): they apply from the next job on."""
    settings: Settings
    blenders: tuple[Any, ...] = ()


@dataclass(frozen=True)
class BlenderAdded:
    """A Blender was installed (by a job with ``blender.auto_install = "yes"``, or on the owner's word): the jobs
    after it may use it, and the server hears of it."""
    install: Any


@dataclass(frozen=True)
class BlenderWanted:
    """A job needs a Blender series this PC lacks and ``blender.auto_install = "ask"``: the owner is asked."""
    series: str


@dataclass(frozen=True)
class PauseChanged:
    """From the guard's thread."""
    decision: PauseDecision


@dataclass(frozen=True)
class WarmChanged:
    """The warm Blender started or ended (from the thread that did it: a job's, its idle timer)."""
    running: bool


@dataclass(frozen=True)
class AwakeChanged:
    """The OS now keeps the PC awake for a job (True), or no longer (False)."""
    held: bool


@dataclass(frozen=True)
class GpuSampled:
    """From the GPU monitor's thread."""
    snapshot: GpuSnapshot


@dataclass(frozen=True)
class LinkChanged:
    """From the outbox's sender: the server answered again, or could not be reached."""
    online: bool
    unauthorized: bool = False
    detail: str = ""
    retry_at: float | None = None


class SentKind(enum.StrEnum):
    """How a job's results left the outbox."""
    COMPLETE = "complete"  # the final reports, acknowledged by the server
    FAIL = "fail"
    RELEASE = "release"
    LOST = "lost"  # dropped: the server gave the lease to someone else
    CANCELED = "canceled"  # dropped: the web app canceled the job


@dataclass(frozen=True)
class ResultsSent:
    """From the outbox's sender: a job's final report was acknowledged (complete, fail, release) or the job
    was dropped because its lease is gone (lost, canceled)."""
    job_id: str
    kind: SentKind


@dataclass(frozen=True)
class LeaseEnded:
    """From the heartbeat or the outbox: the job is no longer ours; its render stops at once."""
    job_id: str
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class RenderProgress:
    """From Blender's reader: how far the render is."""
    job_id: str
    progress: P.Progress


@dataclass(frozen=True)
class OutputSaved:
    """From Blender's reader: Blender saved a file; it goes into the outbox while the next frame renders."""
    job_id: str
    path: str


@dataclass(eq=False)
class CallDone:
    """A blocking call the loop handed to a helper thread has returned (or raised); ``finished`` is set when
    the loop takes it from the queue."""
    name: str
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
