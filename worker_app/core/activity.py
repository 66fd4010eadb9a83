"""What the worker does, as lines in a log: the same for the tray and for `homefarm run`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from worker_app.core.job import JobReport
    from worker_app.core.state import Snapshot


def activity_log(log: logging.Logger) -> tuple[Callable[[Snapshot], None], Callable[[JobReport], None]]:
    """(on_snapshot, on_job_end) that write what the worker does to ``log``: each change of state (a job
    claimed, rendered, uploaded; a pause) and how each job ended. The tray and `homefarm run` both use them."""
    last: dict[str, object] = {"state": None, "pause": None}

    def on_snapshot(snapshot: Snapshot) -> None:
        if snapshot.state != last["state"] or snapshot.pause != last["pause"]:
            last["state"], last["pause"] = snapshot.state, snapshot.pause
            log.info("%s: %s", snapshot.state.value, snapshot.message)

    def on_job_end(report: JobReport) -> None:
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in report.stages.items())
        energy = f", GPU {report.energy_wh:.3f} Wh" if report.energy_wh is not None else ""
        log.info("job %s %s%s (%s%s)", report.job_id, getattr(report.outcome, "value", report.outcome),
                 f": {report.reason}" if report.reason else "", stages, energy)
    return on_snapshot, on_job_end
