"""Fault injection with real processes: a killed worker, a server gone for 30 s, a killed Blender, a frozen
worker past its lease, and 50 workers on one server."""

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from support.harness import FAST_RENDER, TESTS, Served, posix_only, wait_until
from support.server_process import start_server
from support.running import Running, blender_processes
from worker_app import config as config_mod
from worker_app import protocol as P
from worker_app.server import JobServer
from worker_app.core import LinkProblem, State

pytestmark = pytest.mark.blender

# Three frames, each a second or so: long enough to be caught in the middle.
FRAMES = {**FAST_RENDER, "samples": 64, "resolution": [96, 54], "frames": "1-3"}


class WorkerProcess:
    """`homefarm run` as its own process, signed in through a test keyring file."""

    def __init__(self, tmp_path, served: Served, name="worker"):
        self.home = tmp_path / name
        self.env = {**os.environ, "HOMEFARM_HOME": str(self.home), "PYTHONUNBUFFERED": "1",
                    "PYTHON_KEYRING_BACKEND": "support.keyring_file_backend.FileKeyring",
                    "HOMEFARM_TEST_KEYRING": str(tmp_path / f"{name}-keyring.json"),
                    "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        paths = config_mod.Paths(self.home / "config", self.home / "data", self.home / "cache", self.home / "logs")
        config_mod.set_values(paths, {"server.url": served.url, "blender.device": "CPU", "guard.hold_off_s": 0})
        subprocess.run([sys.executable, "-m", "worker_app", "login", "--server", served.url, "--token-stdin"],
                       input=served.worker_token + "\n", env=self.env, check=True, capture_output=True, text=True)
        self.jobs_dir = paths.jobs_dir
        self.proc = None
        self.log = tmp_path / f"{name}.log"

    def start(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "worker_app", "run", *args], env=self.env,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        return self.proc

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def count_completes(served):
    accepted = []
    original = served.server.store.complete

    def counting(job_id, *args, **kwargs):
        original(job_id, *args, **kwargs)
        accepted.append(job_id)

    served.server.store.complete = counting
    return accepted


def outputs_of(served, job_id, folder):
    view = served.app.job(job_id)
    return {o["name"]: served.app.download_output(job_id, o["name"], folder / f"{job_id}-{o['name']}").read_bytes()
            for o in view["outputs"]}


@pytest.fixture
def clean_run(served, blender, tmp_path):
    """The same job rendered without any fault: what every faulty run must end with, byte for byte."""
    job = served.submit(FRAMES)
    Running(served, blender, tmp_path / "clean").finish()
    assert served.app.job(job["id"])["state"] == "done"
    return outputs_of(served, job["id"], tmp_path)


def test_kill_9_mid_render_then_restart(served, blender, tmp_path, clean_run):
    accepted = count_completes(served)
    job = served.submit(FRAMES)
    worker = WorkerProcess(tmp_path, served)
    proc = worker.start()
    try:
        wait_until(lambda: len(served.app.job(job["id"])["outputs"]) >= 1 and blender_processes(worker.jobs_dir),
                   timeout=60, what="frame 1 on the server while frame 2 renders")
        proc.kill()
        proc.wait()
        wait_until(lambda: not blender_processes(worker.jobs_dir), timeout=10, what="Blender to die with the worker")
        worker.start("--max-jobs", "1")
        wait_until(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job done")
        worker.proc.wait(30)
    finally:
        worker.stop()
    assert accepted.count(int(job["id"])) == 1
    assert outputs_of(served, job["id"], tmp_path) == clean_run
    assert "interrupted by a restart; giving it back" in worker.log.read_text()


def test_kill_9_mid_upload_then_restart(served, blender, tmp_path, clean_run):
    accepted = count_completes(served)
    job = served.submit(FRAMES)
    # The server holds the upload of frame 2 for a while: the worker is killed in the middle of it.
    from worker_app.server import app as server_app
    original = server_app.receive_file
    held = threading.Event()

    async def slow_receive(request, tmp_dir, keep, expected_sha, limit):
        if request.url.path.endswith("/frame_0002.png") and not held.is_set():
            held.set()
            await asyncio.sleep(4)
        return await original(request, tmp_dir, keep, expected_sha, limit)

    server_app.receive_file = slow_receive
    worker = WorkerProcess(tmp_path, served)
    try:
        proc = worker.start()
        wait_until(held.is_set, timeout=60, what="the upload of frame 2")
        proc.kill()
        proc.wait()
        time.sleep(4.5)
        worker.start("--max-jobs", "1")
        wait_until(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job done")
    finally:
        server_app.receive_file = original
        worker.stop()
    assert accepted.count(int(job["id"])) == 1
    assert outputs_of(served, job["id"], tmp_path) == clean_run


def test_server_gone_for_30_s_mid_job(blender, tmp_path):
    server = JobServer(tmp_path / "server", lease_ttl=120).start()
    served = Served(server)
    port = server.port
    job = served.submit({**FRAMES, "frames": "1-2"})
    running = Running(served, blender, tmp_path / "w")
    try:
        running.wait_for_state(State.RENDERING)
        server.stop()
        down_at = time.monotonic()
        wait_until(lambda: running.worker.snapshot.link.problem == LinkProblem.UNREACHABLE, timeout=60,
                   what="the worker to notice")
        assert running.worker.snapshot.link.retry_at is not None
        assert running.worker.snapshot.state in (State.RENDERING, State.UPLOADING), "the job's state stays shown"
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        server = JobServer(tmp_path / "server", port=port, lease_ttl=120).start()
        served.server = server
        running.finish(120)
        assert running.reports[0].outcome == "done", running.reports[0].reason
        from worker_app.app_client import AppClient
        app = AppClient(server.url, served.app_token)
        assert app.job(job["id"])["state"] == "done"
        assert len(app.job(job["id"])["outputs"]) == 2
    finally:
        running.worker.stop()
        server.stop()


@posix_only("SIGKILL and signal exit codes")
@pytest.mark.parametrize("warm", [False, True])
def test_blender_killed_by_a_signal_fails_the_job_and_the_worker_goes_on(served, blender, tmp_path, warm):
    """A cold Blender killed under a job fails it; a warm one is given one more try in a fresh process, so it
    is killed twice (test_warm.py has the try that succeeds)."""
    doomed = served.submit({**FRAMES, "samples": 4000}, max_attempts=1)
    after = served.submit(FAST_RENDER)
    running = Running(served, blender, tmp_path, max_jobs=2, warm=warm)
    running.wait_for_state(State.RENDERING)
    killed: set[int] = set()
    for _ in range(2 if warm else 1):
        wait_until(lambda: {p.pid for p in blender_processes(running.jobs_dir)} - killed, timeout=60,
                   what="a Blender to kill")
        time.sleep(0.5)
        for proc in blender_processes(running.jobs_dir):
            killed.add(proc.pid)
            proc.send_signal(signal.SIGKILL)
    running.finish(60)
    view = served.app.job(doomed["id"])
    assert view["state"] == "failed" and view["error"].startswith("Blender crashed (signal 9, SIGKILL)")
    assert served.app.job(after["id"])["state"] == "done"


@posix_only("SIGSTOP freezes the worker")
def test_a_frozen_worker_loses_its_lease_and_its_late_complete_is_refused(blender, tmp_path):
    server = JobServer(tmp_path / "server", lease_ttl=3).start()
    served = Served(server)
    accepted = count_completes(served)
    refused = []
    original = server.store.complete

    def watching(*args, **kwargs):
        try:
            original(*args, **kwargs)
        except Exception as error:
            refused.append(str(error))
            raise
    server.store.complete = watching
    job = served.submit({**FRAMES, "frames": "1", "samples": 400})
    worker = WorkerProcess(tmp_path, served)
    proc = worker.start("--max-jobs", "2")
    try:
        wait_until(lambda: blender_processes(worker.jobs_dir), timeout=60, what="Blender")
        frozen = psutil.Process(proc.pid)
        frozen.suspend()  # SIGSTOP: no heartbeats; its Blender renders on
        wait_until(lambda: served.app.job(job["id"])["state"] == "queued", timeout=30, what="the lease to expire")
        time.sleep(6)  # long enough for the render to end while the worker sleeps
        frozen.resume()
        wait_until(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job done")
        attempts = served.app.job(job["id"])["attempts"]
    finally:
        worker.stop()
        server.stop()
    assert accepted.count(int(job["id"])) == 1
    assert attempts == 2, "the frozen worker's lease expired; the job was leased again to be done"
    log = worker.log.read_text()
    assert "lease" in log and ("lost" in log or "dropped" in log), log[-2000:]


def test_fifty_workers_a_thousand_jobs_each_done_once(tmp_path):
    server = start_server(tmp_path / "server", env={**os.environ, "HOMEFARM_HOME": str(tmp_path / "home")})
    url = server.url
    from worker_app.app_client import AppClient
    from worker_app.client import WorkerClient
    app = AppClient(url, server.app_token)
    scene = {"url": "/api/worker/v1/assets/" + "d" * 64, "sha256": "d" * 64, "size": 1}
    try:
        jobs = {app.submit({"scene": scene})["id"] for _ in range(1000)}
        done, lock, errors = [], threading.Lock(), []
        payload = tmp_path / "frame_0001.png"
        payload.write_bytes(b"output")
        sha = hashlib.sha256(b"output").hexdigest()

        def simulated_worker(n):
            client = WorkerClient(url, server.worker_token)
            try:
                worker_id = client.hello(P.Hello(name=f"sim-{n}", os="test", app_version="0")).worker_id
                while True:
                    lease = client.claim(worker_id, 1)
                    if lease is None:
                        return
                    client.upload(lease.job_id, lease.lease_id, payload.name, payload, sha)
                    client.complete(lease.job_id, lease.lease_id, [payload.name], {})
                    with lock:
                        done.append(lease.job_id)
            except Exception as error:
                errors.append(repr(error))
            finally:
                client.close()

        threads = [threading.Thread(target=simulated_worker, args=(n,)) for n in range(50)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        took = time.monotonic() - started
        assert errors == []
        assert sorted(done) == sorted(jobs), "every job once, none twice"
        assert {j["state"] for j in app.jobs(limit=1000)} == {"done"}
        print(f"50 workers, 1000 jobs: {took:.1f} s, {1000 / took:.0f} jobs/s")
    finally:
        server.stop()
