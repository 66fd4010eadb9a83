"""When to step aside: the pause detectors (``detectors``, ``manual``, ``schedule``) combined with a hold-off.

Each detector answers ``check(now)`` with a ``Cause`` (why to pause, in words a person reads in the tray)
or None. The ``Guard`` runs them on its own thread and publishes a ``PauseDecision``: paused while any
cause holds, and, for causes that come and go (a game's loading screens), until every one has been gone
for ``hold_off_s``. Nothing here imports Qt; the worker and the tray only read the decisions.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from worker_app.guard.causes import PauseDecision
from worker_app.periodic import Periodic

log = logging.getLogger("homefarm.guard")

@dataclass
class Guard(Periodic):
    """Runs the detectors every ``interval`` seconds and publishes a PauseDecision when it changes."""
    detectors: list = field(default_factory=list)
    hold_off_s: float = 60.0
    interval: float = 1.0
    on_change: object = None
    clock: object = time.time
    now: object = dt.datetime.now

    thread_name = "guard"

    def __post_init__(self):
        self._periodic_init()
        self.decision = PauseDecision()
        self._listeners = [self.on_change] if self.on_change else []
        self._last_sticky: float | None = None
        self._last_sticky_reason = ""
        self._changed = threading.Condition()
        self._owner_resumed = threading.Event()

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def tick(self) -> None:
        if self._owner_resumed.is_set():
            self._owner_resumed.clear()
            self.resume_now()
        self.evaluate()

    def check_now(self, owner_resumed: bool = False) -> None:
        """From any thread (the tray's command): the detectors run now on the guard's own thread, the one
        writer of its decision, so that a pause the owner chose takes effect at once; ``owner_resumed`` drops
        the hold-off first. A guard not running (a one-off check) decides on the caller's thread."""
        if owner_resumed:
            self._owner_resumed.set()
        if self.running:
            self.poke()
        else:
            self.tick()

    def evaluate(self) -> PauseDecision:
        """Runs every detector once and returns (and publishes) the decision."""
        now = self.now()
        causes = []
        for detector in self.detectors:
            try:
                cause = detector.check(now)
            except Exception:  # one broken detector must not stop the others
                log.exception("pause detector %s failed", type(detector).__name__)
                continue
            if cause is not None:
                causes.append(cause)
        t = self.clock()
        if any(c.sticky for c in causes):
            self._last_sticky = t
            self._last_sticky_reason = next(c.reason for c in causes if c.sticky)
        if causes:
            decision = PauseDecision(True, "Paused: " + "; ".join(c.reason for c in causes), tuple(causes))
        elif self._last_sticky is not None and t - self._last_sticky < self.hold_off_s:
            resume_at = self._last_sticky + self.hold_off_s
            decision = PauseDecision(True, f"Resuming in {resume_at - t:.0f} s ({self._last_sticky_reason} "
                                           "no more)", (), resume_at)
        else:
            self._last_sticky = None
            decision = PauseDecision(False, "")
        self._publish(decision)
        return decision

    def resume_now(self) -> None:
        """The owner said resume: drop the hold-off (causes still present keep the pause)."""
        self._last_sticky = None

    def _publish(self, decision: PauseDecision) -> None:
        old = self.decision
        self.decision = decision
        changed = (old.paused != decision.paused or [c.reason for c in old.causes] !=
                   [c.reason for c in decision.causes] or (old.resume_at is None) != (decision.resume_at is None))
        if changed:
            log.info("%s", decision.reason or "running")
            with self._changed:
                self._changed.notify_all()
            for listener in self._listeners:
                try:
                    listener(decision)
                except Exception:
                    log.exception("pause listener failed")

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)
