"""Shared by the real-Blender suites: a Worker on its own thread with what it reported, and our Blenders."""

import os
import threading
import time

import psutil

from support.harness import FAST_RENDER, Served
from worker_app.core import Folders, Settings, Worker

SLOW_RENDER = {**FAST_RENDER, "samples": 4000, "resolution": [160, 90]}


def _warm(asked: bool | None) -> bool:
    """A test's choice, else HOMEFARM_TEST_WARM (0: every suite's worker runs a cold Blender per job), else
    homefarm's default (warm)."""
    if asked is not None:
        return asked
    chosen = os.environ.get("HOMEFARM_TEST_WARM")
    return Settings().warm if chosen is None else chosen == "1"


class Running:
    """A Worker on its own thread, with what it reported."""

    def __init__(self, served: Served, blender, tmp_path, max_jobs=1, claim_wait=5, warm=None, guard=None):
        self.reports, self.states, self.links = [], [], []
        self.ended = threading.Event()
        self.jobs_dir = tmp_path / "worker" / "jobs"
        self.worker = Worker(served.worker_client(), blender, Folders(self.jobs_dir, tmp_path / "worker" / "cache"),
                             Settings(device="CPU", claim_wait=claim_wait, max_jobs=max_jobs, warm=_warm(warm)),
                             make_client=served.worker_client, on_snapshot=self._seen, guard=guard,
                             on_job_end=self._ended)
        self.thread = self.worker.start_thread()

    def _seen(self, snapshot):
        self.states.append(snapshot.state)
        self.links.append(snapshot.link.problem)

    def _ended(self, report):
        self.reports.append(report)
        self.ended.set()

    def wait_for_state(self, state, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.snapshot.state == state:
                return
            time.sleep(0.05)
        raise AssertionError(f"worker never reached {state}; it is {self.worker.snapshot}")

    def finish(self, timeout=120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not finish"
        assert self.worker.refused == [], "every state was entered by a move the table allows"


def blender_processes(jobs_dir):
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(jobs_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def kill_mid_render(running: Running, server) -> float:
    """SIGKILLs the server (a ``ServerProcess``) once the worker renders, as a spot interruption does, and
    returns when the worker has found it gone; returns the time of the kill (``time.monotonic()``)."""
    from support.harness import wait_until
    from worker_app.core import LinkProblem, State

    wait_until(lambda: running.worker.snapshot.state == State.RENDERING, timeout=60, what="a render")
    server.proc.kill()
    server.proc.wait(10)
    killed = time.monotonic()
    wait_until(lambda: LinkProblem.UNREACHABLE in running.links, timeout=60, what="the worker to see it gone")
    return killed


def stop_everything(running: Running, servers, proxy) -> None:
    """The worker, every server process still running, and the proxy."""
    running.worker.stop()
    for server in servers:
        if server and server.proc.poll() is None:
            server.stop()
    proxy.stop()


def job_rows(db_url: str) -> list[tuple]:
    """(state, attempts) of every job, in order, read straight from the database."""
    import sqlalchemy as sa

    check = sa.create_engine(db_url)
    with check.connect() as conn:
        rows = [tuple(row) for row in conn.exec_driver_sql("SELECT state, attempts FROM jobs ORDER BY id")]
    check.dispose()
    return rows
