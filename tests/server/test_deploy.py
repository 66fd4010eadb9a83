"""The job server as its owner deploys it: behind a proxy that cuts idle responses, stopped by SIGTERM, and
killed and replaced by a new instance on the same PostgreSQL database, with a real worker and Blender."""

import hashlib
import os
import shutil
import signal
import socket
import threading
import time

import pytest
import requests

from support.harness import FAST_RENDER, Remote, Served, posix_only, wait_until
from support.engines import Nginx, free_port
from support.running import Running, job_rows, kill_mid_render, stop_everything
from support.server_process import start_server
from worker_app import protocol as P
from worker_app.client import WorkerClient
from worker_app.core import LinkProblem, State
from worker_app.server import JobServer

SCENE = {"url": "/a", "sha256": "a" * 64, "size": 1}
FRAMES = {**FAST_RENDER, "samples": 64, "resolution": [96, 54], "frames": "1-3"}


def claim_in_background(client: WorkerClient, worker_id: str, wait: float) -> tuple[threading.Thread, dict]:
    """Starts a waiting claim on its own thread; the dict gets its lease (or None) and when it came back."""
    got = {}

    def claim():
        got["lease"] = client.claim(worker_id, wait)
        got["at"] = time.monotonic()

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.5)  # the claim is waiting at the server now
    return thread, got


def test_behind_a_proxy_that_cuts_idle_polls_at_20_s(served, blender, tmp_path):
    """nginx cuts a response that has sent nothing for 20 s, as a CDN does at 30 s: the worker waits a shade
    less than that after the first cut (no 504 storm), and a job still reaches it in milliseconds."""
    proxy = Nginx.start(served.url.removeprefix("http://"), read_timeout=20)
    direct = served.app
    served.url = proxy.url  # the worker speaks to the proxy only
    running = Running(served, blender, tmp_path, max_jobs=2, claim_wait=20)
    try:
        time.sleep(47)  # two cycles of idle polls, and more
        picked_up = []
        for _ in range(2):
            job = served.submit(FAST_RENDER)
            submitted = time.monotonic()
            wait_until(lambda: direct.job(job["id"])["state"] != "queued", timeout=10, step=0.002)
            picked_up.append(time.monotonic() - submitted)
            wait_until(lambda: direct.job(job["id"])["state"] == "done", timeout=60, what="the job done")
            assert direct.job(job["id"])["attempts"] == 1
        running.finish(30)
        statuses = proxy.statuses()
    finally:
        running.worker.stop()
        proxy.stop()
    print(f"pick-up through nginx: {[round(s * 1000) for s in picked_up]} ms; statuses: {statuses}")
    assert statuses.count(504) <= 1, f"a 504 storm: {statuses}"
    # Idle polls end in 204 (or one 504, the first cut): at least two in 47 s shows the worker kept polling.
    assert statuses.count(204) + statuses.count(504) >= 2, f"the worker stopped polling: {statuses}"
    assert State.BACKING_OFF not in running.states
    assert max(picked_up) < 1.0


def test_a_claim_whose_client_left_takes_no_job(served):
    """A proxy dropped the poll (or the worker went): the job is not leased to a claim nobody will read."""
    client = served.worker_client()
    worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
    body = f'{{"worker_id": "{worker_id}"}}'.encode()
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /api/worker/v1/jobs/claim?wait=20 HTTP/1.1\r\nHost: x\r\n"
                     + f"Authorization: Bearer {served.worker_token}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)
    time.sleep(0.3)
    job = served.app.submit({"scene": SCENE})
    time.sleep(0.5)
    assert served.app.job(job["id"])["state"] == "queued", "a job went to a claim whose client had left"
    lease = client.claim(worker_id, 1)
    assert lease.job_id == job["id"] and lease.attempt == 1


@posix_only("SIGTERM")
def test_sigterm_answers_waiting_claims_at_once_and_exits(tmp_path):
    server = start_server(tmp_path / "server")
    client = WorkerClient(server.url, server.worker_token)
    worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
    thread, answered = claim_in_background(client, worker_id, 20)
    assert requests.get(f"{server.url}/api/ready", timeout=5).json() == {"ok": True}
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    thread.join(10)
    assert answered["lease"] is None and answered["at"] - sent < 2.0, "the waiting claim was held"
    assert server.proc.wait(10) == 0


def test_ready_says_when_the_database_is_gone(tmp_path):
    from support.engines import Engine
    engine = Engine.start("postgresql")
    server = JobServer(tmp_path / "server", db_url=engine.new_database()).start()
    try:
        assert requests.get(f"{server.url}/api/ready", timeout=5).status_code == 200
        engine.kill()
        ready = requests.get(f"{server.url}/api/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["message"] == "the database does not answer"
        assert requests.get(f"{server.url}/api/health", timeout=5).status_code == 200
        jobs = requests.get(f"{server.url}/api/v1/jobs", timeout=30, headers={"Authorization": "Bearer hfa_x"})
        assert jobs.status_code == 503 and "cannot reach its database" in jobs.json()["message"]
    finally:
        server.stop()
        engine.stop()


@posix_only("SIGKILL")
def test_a_spot_instance_replaced_mid_render_loses_nothing(blender, tmp_path, postgresql_engine, seaweed):
    """The spot instance is reclaimed mid-render: SIGKILL, its disk gone, a new one on the same address, behind
    a proxy that mounts it under /render; its state is in PostgreSQL and its files in S3 (SeaweedFS)."""
    db_url = postgresql_engine.new_database()
    storage = seaweed.url(f"spot-{os.urandom(4).hex()}")
    port = free_port()
    args = ["--db", db_url, "--storage", storage]

    def instance(name: str):
        env = {**os.environ, "HOMEFARM_HOME": str(tmp_path / name), **seaweed.env()}
        return start_server(tmp_path / name, env=env, extra_args=args, port=port)

    first = instance("instance-1")
    proxy = Nginx.start(f"127.0.0.1:{port}", prefix="/render")
    base = proxy.url + "/render"
    remote = Remote(base, first.app_token, first.worker_token)
    scene = remote.upload_scene()
    jobs = [remote.submit(FRAMES, scene=scene) for _ in range(3)]
    running = Running(remote, blender, tmp_path, max_jobs=3)
    second = None
    try:
        # The worker finds the server gone (an upload, a heartbeat or the report fails) and keeps its results.
        kill_mid_render(running, first)
        shutil.rmtree(tmp_path / "instance-1")
        assert running.worker.snapshot.state != State.STOPPED
        second = instance("instance-2")
        assert second.app_token is None, "the new instance made new tokens: every PC would sign in again"
        for job in jobs:
            wait_until(lambda: remote.app.job(job["id"])["state"] in ("done", "failed"), timeout=180,
                       what=f"job {job['id']} finished")
        running.finish(60)
        # Every output, of jobs done before and after the kill, comes back byte for byte through the proxy.
        for job in jobs:
            view = remote.app.job(job["id"])
            assert [o["name"] for o in view["outputs"]] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
            for output in view["outputs"]:
                got = remote.app.download_output(job["id"], output["name"], tmp_path / "got" / output["name"])
                assert hashlib.sha256(got.read_bytes()).hexdigest() == output["sha256"]
                assert got.stat().st_size == output["size"] and got.read_bytes()[:4] == b"\x89PNG"
        # No render byte went through the instance: the worker planned and committed, storage took the bytes.
        requests_seen = (proxy.root / "access.log").read_text()
        assert "/outputs/frame_0001.png/commit" in requests_seen
        assert "PUT /render/api/worker/v1/jobs/" not in requests_seen
    finally:
        stop_everything(running, (first, second), proxy)
    assert [report.outcome.value for report in running.reports] == ["done"] * 3
    assert LinkProblem.UNAUTHORIZED not in running.links, "the worker was asked to sign in again"
    assert job_rows(db_url) == [("done", 1)] * 3, "each job done exactly once, on its first attempt"


@pytest.mark.parametrize("engine, within", [("postgresql", 0.5), ("mariadb", 2.5)])
def test_two_server_processes_wake_each_others_claims(request, tmp_path, engine, within):
    """A job submitted to one server process reaches a worker waiting on another; a worker's cancel sent to one
    ends its claim waiting on the other. PostgreSQL tells at once (NOTIFY); MariaDB is polled, here each
    second (a minute by default: docs/server.md, "What idle costs")."""
    db_url = request.getfixturevalue(f"{engine}_engine").new_database()
    first = JobServer(tmp_path / "a", db_url=db_url, claim_poll=1.0).start()
    second = JobServer(tmp_path / "b", db_url=db_url, claim_poll=1.0).start()
    try:
        served = Served(first)
        waiter = WorkerClient(second.url, served.worker_token)
        worker_id = waiter.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
        thread, got = claim_in_background(waiter, worker_id, 20)
        job = served.app.submit({"scene": SCENE})
        submitted = time.monotonic()
        thread.join(10)
        assert got["lease"].job_id == job["id"] and got["at"] - submitted < within

        thread, got = claim_in_background(waiter, worker_id, 20)
        canceled_at = time.monotonic()
        served.worker_client().cancel_claim(worker_id)  # through the first process
        thread.join(10)
        assert got["lease"] is None and got["at"] - canceled_at < within
    finally:
        second.stop()
        first.stop()
