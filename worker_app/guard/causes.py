"""What the guard decides: the causes to step aside and the decision the worker follows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    kind: str  # manual, game, gpu, fullscreen, active, schedule, thermal
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

