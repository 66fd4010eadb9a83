"""Prometheus metrics for ``homefarm serve --metrics``, in the text format (a handful of series, no library).

Counters are this process's since it started; the queue depth is read from the database at each scrape.
"""

from __future__ import annotations

import threading
from typing import Any

from worker_app.protocol import JOB_STATES
from worker_app.server.store import Store


class Metrics:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self.claims = {"job": 0, "empty": 0}
        self.finished_jobs = {"done": 0, "failed": 0}
        self.render_seconds_sum = 0.0
        self.render_seconds_count = 0

    def claimed(self, got_job: bool) -> None:
        with self._lock:
            self.claims["job" if got_job else "empty"] += 1

    def finished(self, state: str, stats: dict[str, Any] | None) -> None:
        with self._lock:
            self.finished_jobs[state] += 1
            seconds = (stats or {}).get("render_s")
            if isinstance(seconds, (int, float)) and seconds >= 0:
                self.render_seconds_sum += seconds
                self.render_seconds_count += 1

    def render(self) -> str:
        counts = self.store.counts()
        with self._lock:
            lines = ["# HELP homefarm_jobs Jobs in the database by state.", "# TYPE homefarm_jobs gauge"]
            lines += [f'homefarm_jobs{{state="{state}"}} {counts.get(state, 0)}' for state in JOB_STATES]
            lines += ["# HELP homefarm_claims_total Claims answered by this process.",
                      "# TYPE homefarm_claims_total counter"]
            lines += [f'homefarm_claims_total{{result="{k}"}} {v}' for k, v in self.claims.items()]
            lines += ["# HELP homefarm_lease_expiries_total Leases this process expired.",
                      "# TYPE homefarm_lease_expiries_total counter",
                      f"homefarm_lease_expiries_total {self.store.expired_total}",
                      "# HELP homefarm_jobs_finished_total Jobs finished through this process.",
                      "# TYPE homefarm_jobs_finished_total counter"]
            lines += [f'homefarm_jobs_finished_total{{state="{k}"}} {v}' for k, v in self.finished_jobs.items()]
            lines += ["# HELP homefarm_render_seconds Render time the workers reported for finished jobs.",
                      "# TYPE homefarm_render_seconds summary",
                      f"homefarm_render_seconds_sum {self.render_seconds_sum:.3f}",
                      f"homefarm_render_seconds_count {self.render_seconds_count}"]
        return "\n".join(lines) + "\n"
