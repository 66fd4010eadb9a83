"""What the guard decides: the causes to step aside and the decision the worker follows."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class PauseKind(enum.StrEnum):
    """Why the worker steps aside; the tray picks its words and actions by kind (a StrEnum: it reads and
    prints as its value)."""
    MANUAL = "manual"  # the owner paused it (tray, `homefarm pause`)
    GAME = "game"
    GPU = "gpu"  # another program keeps the GPU busy
    FULLSCREEN = "fullscreen"
    ACTIVE = "active"  # the owner uses keyboard or mouse
    SCHEDULE = "schedule"
    THERMAL = "thermal"  # too hot, or drawing too much power
    DISK = "disk"  # too little free space for a job
    HOLD_OFF = "hold-off"  # every cause is gone; resuming after the hold-off
    UPDATE = "update"  # the server needs a newer homefarm


@dataclass(frozen=True)
class Cause:
    kind: PauseKind
    reason: str  # "eldenring.exe is running"
    until: dt.datetime | None = None  # known end (manual, schedule)
    sticky: bool = True  # needs the hold-off before resuming (a game can come back after a loading screen)
    program: str = ""  # the program that caused it ("eldenring.exe"), so the owner can say "never for this"


@dataclass(frozen=True)
class PauseDecision:
    paused: bool = False
    reason: str = ""  # "Paused: eldenring.exe is running", "Resuming in 42 s"
    causes: tuple[Cause, ...] = ()
    resume_at: float | None = None  # time.time() when the hold-off ends

    def __str__(self) -> str:
        return self.reason or ("paused" if self.paused else "running")

