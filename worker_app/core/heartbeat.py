"""The heartbeat: renews a job's lease and reports its progress on its own thread and HTTP session."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from worker_app import constants as C
from worker_app import protocol as P
from worker_app.client import LeaseLost, NotFound, Rejected, Unauthorized, Unreachable, WorkerClient
from worker_app.core.events import LeaseEnded
from worker_app.core.state import Outcome

log = logging.getLogger("homefarm.worker")


class Heartbeat:
    """Renews the lease every ``interval`` seconds; a lost or canceled lease is posted to the loop once."""

    def __init__(self, client: WorkerClient, lease: P.Lease, interval: float, post: Callable[[object], None]):
        self.client = client
        self.lease = lease
        self.interval = interval
        self.post = post
        self.progress = P.Progress(stage="downloading")  # replaced (never mutated) by the loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{lease.job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=C.READ_TIMEOUT + C.CONNECT_TIMEOUT)

    def _loop(self) -> None:
        # The first beat goes at once: it tells the server the claim's answer arrived (a server gives a
        # short first lease, so that a claim whose answer a proxy lost does not hold the job for long).
        job_id = self.lease.job_id
        while not self._stop.is_set():
            try:
                reply = self.client.heartbeat(job_id, self.lease.lease_id, self.progress)
            except LeaseLost as error:
                self.post(LeaseEnded(job_id, *lease_lost(error)))
                return
            except (Unreachable, Rejected, NotFound, Unauthorized) as error:
                log.warning("heartbeat for job %s failed: %s", job_id, error)
            else:
                if reply.cancel:
                    self.post(LeaseEnded(job_id, Outcome.CANCELED, "the job was canceled on the server"))
                    return
            self._stop.wait(self.interval)


def lease_lost(error: LeaseLost) -> tuple[Outcome, str]:
    """A 409 told apart: the web app canceled the job, or the server gave the lease to someone else."""
    if error.canceled:
        return Outcome.CANCELED, "the job was canceled on the server"
    return Outcome.LOST, f"the lease was lost: {error}"
