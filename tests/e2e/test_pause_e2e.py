"""Pausing for the owner with the real Blender and a real server: the policies, the hold-off, no claims."""

import secrets
import threading
import time

import psutil
import pytest

from support.harness import FAST_RENDER, wait_until
from support import game_standin
from support.running import SLOW_RENDER, blender_processes
from worker_app import guard as G
from worker_app.core import Folders, Settings, State, Worker

pytestmark = pytest.mark.blender


# A name of this test run's own: process names are machine-wide, and another run must not see our game.
GAME = f"fg{secrets.token_hex(3)}.exe"


@pytest.fixture
def start_game(tmp_path):
    """Starts a harmless program under a game's name (tests/game_standin.py); always ended afterwards."""
    started = []

    def start():
        started.append(game_standin.start_game(tmp_path, GAME))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def worker_ended(worker) -> threading.Event:
    """Set when the worker's current job ends."""
    event = threading.Event()
    previous = worker.on_job_end
    worker.on_job_end = lambda report: (previous(report), event.set())
    return event


def guarded_worker(served, blender, tmp_path, policy="requeue", hold_off=2.0, max_jobs=1):
    holder = {}
    detector = G.GameDetector(names=[GAME], own_pids=lambda: holder["w"].own_pids())
    guard = G.Guard([detector], hold_off_s=hold_off, interval=0.2)
    ended = []
    worker = Worker(served.worker_client(), blender, Folders(tmp_path / "jobs", tmp_path / "cache"),
                    Settings(device="CPU", claim_wait=20, max_jobs=max_jobs, pause_policy=policy),
                    make_client=served.worker_client, guard=guard, on_job_end=ended.append)
    holder["w"] = worker
    guard.evaluate()
    guard.start()
    return worker, guard, ended


def test_requeue_stops_blender_releases_the_job_and_resumes_after_the_hold_off(quick_served, blender, tmp_path,
                                                                               start_game):
    job = quick_served.submit({**SLOW_RENDER, "frames": "1"})
    worker, guard, ended = guarded_worker(quick_served, blender, tmp_path, hold_off=2.0, max_jobs=2)
    thread = worker.start_thread()
    try:
        wait_until(lambda: worker.snapshot.state == State.RENDERING and blender_processes(tmp_path / "jobs"))
        game = start_game()
        started = time.monotonic()
        wait_until(lambda: not blender_processes(tmp_path / "jobs"))
        gone = time.monotonic() - started
        wait_until(lambda: quick_served.app.job(job["id"])["state"] == "queued" and ended)
        assert gone < 5, f"Blender took {gone:.1f} s to go"
        assert ended[0].outcome == "released" and f"{GAME} is running" in ended[0].reason
        wait_until(lambda: worker.snapshot.state == State.PAUSED)
        pause = worker.snapshot.pause
        assert pause.kind == "game" and pause.reason == f"Paused: {GAME} is running"

        # While paused nothing is claimed, not even a new job.
        claims, claimed = [], threading.Event()
        original = quick_served.server.store.claim
        quick_served.server.store.claim = lambda *a, **k: (claims.append(time.monotonic()), claimed.set(),
                                                           original(*a, **k))[2]
        quick = quick_served.submit(FAST_RENDER)
        assert not claimed.wait(1.5), "a claim while paused"
        assert quick_served.app.job(quick["id"])["state"] == "queued"

        game.kill()
        game.wait()
        ended_at = time.monotonic()
        wait_until(lambda: claims)
        assert claims[0] - ended_at >= 1.8, "resumed before the hold-off"
        # The released job is the oldest in the queue: it is claimed again and rendered from the start.
        wait_until(lambda: quick_served.app.job(job["id"])["state"] == "leased")
        assert quick_served.app.job(job["id"])["attempts"] == 1, "a release does not count as an attempt"
    finally:
        worker.stop()
        guard.stop()
        thread.join(30)
    assert blender_processes(tmp_path / "jobs") == []


def test_suspend_freezes_blender_and_carries_on(served, blender, tmp_path, start_game):
    job = served.submit({**FAST_RENDER, "samples": 2000, "resolution": [96, 54]})
    worker, guard, ended = guarded_worker(served, blender, tmp_path, policy="suspend", hold_off=0.5)
    job_ended = worker_ended(worker)
    thread = worker.start_thread()

    def all_stopped():
        found = blender_processes(tmp_path / "jobs")
        return bool(found) and all(p.status() == psutil.STATUS_STOPPED for p in found)
    try:
        wait_until(lambda: worker.snapshot.state == State.RENDERING and blender_processes(tmp_path / "jobs"))
        game = start_game()
        wait_until(all_stopped, what="Blender suspended")
        assert not job_ended.wait(1.0), "the job ended while Blender was suspended"
        assert served.app.job(job["id"])["state"] == "leased"
        game.kill()
        game.wait()
        wait_until(lambda: ended, timeout=120)
        assert ended[0].outcome == "done", ended[0].reason
        assert served.app.job(job["id"])["state"] == "done"
    finally:
        worker.stop()
        guard.stop()
        thread.join(30)


def test_finish_lets_the_job_end_then_claims_nothing(served, blender, tmp_path, start_game):
    first = served.submit({**FAST_RENDER, "samples": 300, "resolution": [96, 54]})
    second = served.submit(FAST_RENDER)
    worker, guard, ended = guarded_worker(served, blender, tmp_path, policy="finish", max_jobs=2)
    thread = worker.start_thread()
    game = None
    try:
        wait_until(lambda: worker.snapshot.state == State.RENDERING)
        game = start_game()
        wait_until(lambda: ended, timeout=120)
        assert ended[0].outcome == "done"
        claimed = threading.Event()
        original = served.server.store.claim
        served.server.store.claim = lambda *a, **k: (claimed.set(), original(*a, **k))[1]
        assert not claimed.wait(1.0), "a claim while paused"
        assert served.app.job(second["id"])["state"] == "queued"
        assert worker.snapshot.state == State.PAUSED
    finally:
        if game:
            game.kill()
            game.wait()
        worker.stop()
        guard.stop()
        thread.join(30)
    assert served.app.job(first["id"])["state"] == "done"
