"""Which notifications a change of the worker's snapshot deserves. No Qt here: the tray shows them."""

from __future__ import annotations

import time

from worker_app import constants as C
from worker_app.core import LinkProblem, Snapshot


class Notices:
    """Compares each snapshot with the one before; remembers what it already told."""

    def __init__(self, unreachable_after: float = C.UNREACHABLE_NOTICE, clock=time.time):
        self.unreachable_after = unreachable_after
        self.clock = clock
        self._told_unreachable = False
        self._gaming = False

    def changes(self, before: Snapshot, after: Snapshot, *, gaming_notices: bool = True,
                server: str = "the server") -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if after.jobs_failed > before.jobs_failed and after.last_job is not None:
            out.append(("A job failed", f"Job {after.last_job.job_id} failed: {after.last_job.reason}"))
        out += self._pause(after, gaming_notices)
        out += self._unreachable(after, server)
        if after.update.version and after.update != before.update:
            if after.update.required:
                out.append(("Update needed", f"Update needed: homefarm {after.update.version}"))
            else:
                out.append(("A new version is available",
                            f"A new version is available: homefarm {after.update.version}"))
        return out

    def _pause(self, after: Snapshot, gaming_notices: bool) -> list[tuple[str, str]]:
        pause = after.pause
        if pause is not None and pause.kind == "game":
            if not self._gaming:
                self._gaming = True
                if gaming_notices:
                    return [("Paused for your game", pause.reason.removeprefix("Paused: "))]
            return []
        if pause is None and self._gaming:
            self._gaming = False
            if gaming_notices:
                return [("Rendering again", "The game has ended; homefarm takes jobs again.")]
        return []

    def _unreachable(self, after: Snapshot, server: str) -> list[tuple[str, str]]:
        link = after.link
        if link.problem != LinkProblem.UNREACHABLE:
            self._told_unreachable = False
            return []
        if self._told_unreachable or link.since is None or self.clock() - link.since < self.unreachable_after:
            return []
        self._told_unreachable = True
        return [("Server unreachable", f"homefarm cannot reach {server} and keeps trying. Jobs already "
                                       "rendered are kept.")]
