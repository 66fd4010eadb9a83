"""What the worker is doing, as typed, immutable facts: the one thing the tray, the CLI and the notifications read.

Only the worker loop (``core/loop.py``) makes snapshots; every other thread posts events to it. A reader
looks at fields (``snapshot.link.problem``, ``snapshot.pause.kind``), never into a message's words.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker_app.guard.causes import PauseKind
from worker_app.protocol.fields import version_tuple

if TYPE_CHECKING:
    from worker_app import protocol as P


class State(str, enum.Enum):
    CONNECTING = "connecting"
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    RENDERING = "rendering"
    UPLOADING = "uploading"
    BACKING_OFF = "backing off"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


BUSY_STATES = (State.DOWNLOADING, State.RENDERING, State.UPLOADING)

# Where the loop's turn begins: kept results first (uploading, or backing off while the server is away), signing
# on, pausing, waiting in a claim. Any state may go back there once what it did is over.
_LOOP = frozenset({State.CONNECTING, State.WAITING, State.UPLOADING, State.BACKING_OFF, State.PAUSED})
_END = frozenset({State.STOPPING, State.STOPPED})

# The states each state may go to (entering the same state again is always allowed: a new message, a new
# countdown). ``Worker.enter`` is the one way into a state and refuses any other move; docs/architecture.md
# draws this table (tests check that the drawing is this table's).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.STOPPED: _LOOP | _END,  # a start
    State.CONNECTING: _LOOP | _END,
    State.WAITING: _LOOP | _END | {State.DOWNLOADING},  # a claim brought a job
    State.DOWNLOADING: _LOOP | _END | {State.RENDERING},
    State.RENDERING: _LOOP | _END,  # uploading the outputs, or the job ended early
    State.UPLOADING: _LOOP | _END,
    State.BACKING_OFF: _LOOP | _END,
    State.PAUSED: _LOOP | _END,
    State.STOPPING: frozenset({State.STOPPED}),  # nothing new starts once the worker stops
}


def allowed(old: State, new: State) -> bool:
    """Whether the worker may go from ``old`` to ``new``."""
    return new == old or new in TRANSITIONS[old]


def diagram() -> str:
    """The transitions as a Mermaid state diagram, for docs/architecture.md."""
    lines = ["stateDiagram-v2", "    [*] --> stopped"]
    for old, targets in TRANSITIONS.items():
        for new in sorted(targets, key=list(State).index):
            if new != old:
                lines.append(f"    {_node(old)} --> {_node(new)}")
    return "\n".join(lines)


def _node(state: State) -> str:
    return state.value.replace(" ", "_")


class Outcome(str, enum.Enum):
    """How one job's attempt on this PC ended."""
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"  # given back to the queue: a pause, a quit
    LOST = "lost"  # the server gave the lease to someone else
    CANCELED = "canceled"  # the web app canceled the job
    KEPT = "kept"  # rendered; the results wait on disk and go out at the next start


class LinkProblem(str, enum.Enum):
    NONE = ""
    UNREACHABLE = "unreachable"  # network down, server down or failing (5xx)
    UNAUTHORIZED = "unauthorized"  # the token was refused: sign in again


@dataclass(frozen=True)
class Link:
    """How the worker's exchange with the server goes."""
    problem: LinkProblem = LinkProblem.NONE
    since: float | None = None  # time.time() when the problem began; kept through every retry
    retry_at: float | None = None  # time.time() of the next try
    detail: str = ""  # what happened, as a sentence a person reads ("nothing answers at …"); the log has more

    @property
    def online(self) -> bool:
        return self.problem == LinkProblem.NONE


@dataclass(frozen=True)
class Pause:
    """Why the worker steps aside for the owner."""
    kind: PauseKind
    reason: str  # "Paused: eldenring.exe is running", for a person
    until: dt.datetime | None = None  # a known end (manual, schedule)
    resume_at: float | None = None  # time.time() when a hold-off ends
    program: str = ""  # the program that caused a game pause, for "never pause for this program"


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    stage: str = "claimed"  # claimed, downloading, rendering, uploading
    frame: int | None = None
    frames_done: int = 0
    frame_count: int | None = None
    sample: int | None = None
    samples: int | None = None
    percent: float | None = None
    eta_s: float | None = None
    suspended: bool = False  # Blender is suspended while the owner uses the PC


@dataclass(frozen=True)
class Update:
    version: str = ""  # a newer release the server announced, "" if none
    required: bool = False  # this version is older than the server accepts: nothing is claimed

    @classmethod
    def from_hello(cls, reply: P.HelloReply, current: str) -> Update:
        """What the server's hello says of ``current``: a newer release, or a minimum it is below."""
        def newer(version: str | None) -> bool:
            try:
                return isinstance(version, str) and version_tuple(current) < version_tuple(version)
            except ValueError:
                return False
        latest, minimum = reply.latest_worker_version, reply.min_worker_version
        required = newer(minimum)
        shown = minimum if required and not newer(latest) else latest
        return cls(shown if shown and newer(shown) else "", required)


@dataclass(frozen=True)
class LastJob:
    job_id: str
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Immutable: safe to hand to another thread."""
    state: State = State.STOPPED
    message: str = ""  # one line for the log
    job: JobProgress | None = None
    link: Link = Link()
    pause: Pause | None = None
    gpu: dict[str, Any] = field(default_factory=dict)  # the latest figures of the first GPU
    gpu_problem: str = ""  # why there are none, e.g. "no NVIDIA GPU or driver (...)"
    update: Update = Update()
    jobs_done: int = 0
    jobs_failed: int = 0
    last_job: LastJob | None = None
    blender_warm: bool = False  # a warm Blender is open, waiting for the next job (it holds its memory)
    keeping_awake: bool = False  # the OS keeps the PC from sleeping while a job is held (power.keep_awake)
    held: bool = False  # the server's dashboard holds this worker: no job until held_until (None: until released)
    held_until: float | None = None
    blenders_wanted: tuple[str, ...] = ()  # series jobs need that this PC lacks, the owner asked to install them

    @property
    def job_id(self) -> str | None:
        return self.job.job_id if self.job else None

    @property
    def busy(self) -> bool:
        return self.state in BUSY_STATES
