"""The reference server on loopback, through real HTTP: long polls, leases, outputs, auth, validation."""

import hashlib
import threading
import time

import pytest
import requests

from worker_app import protocol as P
from worker_app.app_client import AppError
from worker_app.client import LeaseLost, Rejected, Unauthorized, WorkerClient
from worker_app.server import JobServer

SCENE = {"url": "/api/worker/v1/assets/" + "b" * 64, "sha256": "b" * 64, "size": 10}


def hello(client: WorkerClient, name="test-pc") -> str:
    return client.hello(P.Hello(name=name, os="Linux", app_version="0")).worker_id


def test_health_needs_no_token(served):
    assert requests.get(served.url + "/api/health", timeout=5).json()["ok"] is True


def test_tokens_are_required_and_kept_apart(served):
    assert requests.get(served.url + "/api/v1/jobs", timeout=5).status_code == 401
    wrong_kind = requests.get(served.url + "/api/v1/jobs", timeout=5,
                              headers={"Authorization": f"Bearer {served.worker_token}"})
    assert wrong_kind.status_code == 401
    with pytest.raises(Unauthorized):
        WorkerClient(served.url, served.app_token).ping()
    assert served.worker_client().ping()["ok"] is True


def test_tokens_are_stored_only_as_hashes(served, tmp_path):
    db = (tmp_path / "server" / "homefarm-server.sqlite3").read_bytes()
    wal = tmp_path / "server" / "homefarm-server.sqlite3-wal"
    blob = db + (wal.read_bytes() if wal.exists() else b"")
    assert served.worker_token.encode() not in blob
    assert hashlib.sha256(served.worker_token.encode()).hexdigest().encode() in blob


def test_bad_job_gets_422_naming_the_field(served):
    with pytest.raises(AppError) as caught:
        served.app.submit({"scene": SCENE, "render": {"samples": -4}})
    assert caught.value.status == 422
    assert caught.value.body["field"] == "render.samples"
    bad_json = requests.post(served.url + "/api/v1/jobs", data=b"{not json", timeout=5,
                             headers={"Authorization": f"Bearer {served.app_token}"})
    assert bad_json.status_code == 400
    huge = requests.post(served.url + "/api/v1/jobs", data=b" " * (P.MAX_SPEC_BYTES + 1), timeout=5,
                         headers={"Authorization": f"Bearer {served.app_token}"})
    assert huge.status_code == 413
    assert served.app.jobs() == []


def test_claim_returns_204_after_the_wait(served):
    client = served.worker_client()
    worker_id = hello(client)
    started = time.monotonic()
    assert client.claim(worker_id, 0.5) is None
    assert time.monotonic() - started >= 0.45


def test_submit_wakes_a_waiting_claim(served):
    client = served.worker_client()
    worker_id = hello(client)
    got = {}

    def claim():
        got["lease"] = client.claim(worker_id, 20)
        got["at"] = time.monotonic()

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.3)  # let the claim reach the server and wait
    submitted = time.monotonic()
    job = served.app.submit({"scene": SCENE})
    thread.join(10)
    assert got["lease"].job_id == job["id"]
    # Woken by the submission, not by the end of the 20 s wait.
    assert got["at"] - submitted < 5


def test_claim_needs_hello(served):
    with pytest.raises(Rejected) as caught:
        served.worker_client().claim("w_unknown", 0)
    assert caught.value.body["field"] == "worker_id"


def test_priority_then_age(served):
    client = served.worker_client()
    worker_id = hello(client)
    low = served.app.submit({"scene": SCENE})
    high = served.app.submit({"scene": SCENE, "priority": 5})
    assert client.claim(worker_id, 0).job_id == high["id"]
    assert client.claim(worker_id, 0).job_id == low["id"]
    assert client.claim(worker_id, 0) is None


def test_no_job_is_held_by_two_workers(served):
    jobs = {served.app.submit({"scene": SCENE})["id"] for _ in range(20)}
    claimed, lock = [], threading.Lock()

    def worker():
        client = served.worker_client()
        worker_id = hello(client)
        while (lease := client.claim(worker_id, 0)) is not None:
            with lock:
                claimed.append(lease.job_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed) == sorted(jobs)


def test_outputs_complete_and_idempotent_upload(served, tmp_path):
    client = served.worker_client()
    worker_id = hello(client)
    job = served.app.submit({"scene": SCENE})
    lease = client.claim(worker_id, 0)
    out = tmp_path / "frame_0001.png"
    out.write_bytes(b"\x89PNG fake image bytes" * 1000)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    first = client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
    again = client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
    assert first.stored is True and again.stored is False
    with pytest.raises(Rejected) as caught:
        client.upload(lease.job_id, lease.lease_id, "other.png", out, "0" * 64)
    assert caught.value.body["field"] == "X-Content-SHA256"
    with pytest.raises(Rejected) as caught:
        client.complete(lease.job_id, lease.lease_id, ["../x.png"], {})
    assert caught.value.body["field"] == "outputs[0]"
    client.complete(lease.job_id, lease.lease_id, [out.name], {"render_s": 1.5})
    view = served.app.job(job["id"])
    assert view["state"] == "done" and view["stats"] == {"render_s": 1.5}
    assert view["outputs"] == [{"name": out.name, "sha256": sha, "size": out.stat().st_size,
                                "url": f"{served.url}/api/v1/jobs/{job['id']}/outputs/{out.name}"}]
    fetched = served.app.download_output(job["id"], out.name, tmp_path / "fetched.png")
    assert fetched.read_bytes() == out.read_bytes()


def test_complete_refuses_outputs_never_uploaded(served):
    client = served.worker_client()
    worker_id = hello(client)
    served.app.submit({"scene": SCENE})
    lease = client.claim(worker_id, 0)
    with pytest.raises(LeaseLost) as caught:  # 409: conflicts with the job's state
        client.complete(lease.job_id, lease.lease_id, ["frame_0001.png"], {})
    assert "not uploaded" in str(caught.value)


def test_expired_lease_requeues_and_the_stale_lease_is_refused(tmp_path):
    server = JobServer(tmp_path / "s", lease_ttl=1).start()
    try:
        app_token = server.store.create_token("app")
        worker_token = server.store.create_token("worker")
        from worker_app.app_client import AppClient
        app = AppClient(server.url, app_token)
        first, second = WorkerClient(server.url, worker_token), WorkerClient(server.url, worker_token)
        first_id, second_id = hello(first, "a"), hello(second, "b")
        job = app.submit({"scene": SCENE})
        stale = first.claim(first_id, 0)
        # The second worker waits; the first lease runs out after 1 s and the job comes to it.
        fresh = second.claim(second_id, 10)
        assert fresh is not None and fresh.job_id == job["id"] and fresh.lease_id != stale.lease_id
        assert fresh.attempt == 2
        for call in (lambda: first.heartbeat(stale.job_id, stale.lease_id, P.Progress()),
                     lambda: first.complete(stale.job_id, stale.lease_id, [], {}),
                     lambda: first.fail(stale.job_id, stale.lease_id, "x", "", False),
                     lambda: first.release(stale.job_id, stale.lease_id, "x")):
            with pytest.raises(LeaseLost):
                call()
        assert app.job(job["id"])["state"] == "leased"
        assert app.job(job["id"])["worker_id"] == second_id
    finally:
        server.stop()


def test_fail_retryable_requeues_until_attempts_run_out(served):
    client = served.worker_client()
    worker_id = hello(client)
    job = served.app.submit({"scene": SCENE, "max_attempts": 2})
    lease = client.claim(worker_id, 0)
    assert client.fail(lease.job_id, lease.lease_id, "GPU crashed", "tail", True).state == "queued"
    lease = client.claim(worker_id, 0)
    assert client.fail(lease.job_id, lease.lease_id, "GPU crashed again", "tail", True).state == "failed"
    view = served.app.job(job["id"])
    assert view["state"] == "failed" and view["error"] == "GPU crashed again" and view["log_tail"] == "tail"


def test_release_requeues_without_counting_an_attempt(served):
    client = served.worker_client()
    worker_id = hello(client)
    job = served.app.submit({"scene": SCENE, "max_attempts": 1})
    lease = client.claim(worker_id, 0)
    client.release(lease.job_id, lease.lease_id, "the owner started a game")
    assert served.app.job(job["id"])["state"] == "queued"
    assert client.claim(worker_id, 0).attempt == 1


def test_cancel_reaches_the_worker_through_its_heartbeat(served):
    client = served.worker_client()
    worker_id = hello(client)
    job = served.app.submit({"scene": SCENE})
    lease = client.claim(worker_id, 0)
    progress = P.Progress(stage="rendering", percent=12.5, frame=1)
    assert client.heartbeat(lease.job_id, lease.lease_id, progress).cancel is False
    assert served.app.job(job["id"])["progress"]["percent"] == 12.5
    served.app.cancel(job["id"])
    assert client.heartbeat(lease.job_id, lease.lease_id, progress).cancel is True
    with pytest.raises(LeaseLost):
        client.complete(lease.job_id, lease.lease_id, [], {})
    with pytest.raises(AppError) as caught:
        served.app.cancel(job["id"])
    assert caught.value.status == 409


def test_output_names_cannot_escape(served):
    client = served.worker_client()
    worker_id = hello(client)
    served.app.submit({"scene": SCENE})
    lease = client.claim(worker_id, 0)
    for name in ("..%2F..%2Fescape.png", "CON", ".env"):
        response = requests.put(f"{served.url}/api/worker/v1/jobs/{lease.job_id}/outputs/{name}",
                                data=b"x", timeout=5, headers={
                                    "Authorization": f"Bearer {served.worker_token}",
                                    "X-Lease-Id": lease.lease_id,
                                    "X-Content-SHA256": hashlib.sha256(b"x").hexdigest()})
        assert response.status_code == 422, name
    assert not list((served.server.data_dir).glob("**/escape.png"))


def test_a_waiting_claim_can_be_ended_by_its_worker(served):
    client = served.worker_client()
    worker_id = hello(client)
    assert client.cancel_claim(worker_id) is False  # nothing waits: nothing to end, nothing remembered
    got = {}

    def claim():
        started = time.monotonic()
        got["lease"] = client.claim(worker_id, 20)
        got["took"] = time.monotonic() - started

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.3)
    assert served.worker_client().cancel_claim(worker_id) is True
    thread.join(10)
    assert got["lease"] is None and got["took"] < 5
    served.app.submit({"scene": SCENE})
    assert client.claim(worker_id, 0) is not None  # the next claim is not affected


def _worker_with(served, version: str) -> tuple[WorkerClient, str]:
    client = served.worker_client()
    worker_id = client.hello(P.Hello(name=f"pc-{version}", os="Linux", app_version="0",
                                     blender=[{"version": version, "path": "/b"}])).worker_id
    return client, worker_id


def test_a_job_for_a_newer_blender_goes_to_a_worker_that_has_it(served):
    old, old_id = _worker_with(served, "3.4.1")
    new, new_id = _worker_with(served, "4.5.0")
    job = served.app.submit({"scene": SCENE, "blender": {"min_version": "4.2"}})
    assert old.claim(old_id, 0.3) is None, "offered to a worker whose Blender is too old"
    lease = new.claim(new_id, 1)
    assert lease is not None and lease.job_id == job["id"]


def test_a_scene_saved_by_a_newer_blender_is_offered_again_to_a_worker_that_has_it(served):
    old, old_id = _worker_with(served, "3.4.1")
    job = served.app.submit({"scene": SCENE})
    lease = old.claim(old_id, 1)
    # With no worker that has Blender 4.5, the job fails with the reason, after one attempt.
    reason = "scene: saved by Blender 4.5; this PC has 3.4.1"
    assert old.report(lease.job_id, lease.lease_id, P.FailReport(reason, needs_blender="4.5")).state == "failed"
    view = served.app.job(job["id"])
    assert view["error"] == reason and view["attempts"] == 1

    new, new_id = _worker_with(served, "4.5.1")
    job = served.app.submit({"scene": SCENE})
    lease = old.claim(old_id, 1)
    assert old.report(lease.job_id, lease.lease_id, P.FailReport(reason, needs_blender="4.5")).state == "queued"
    view = served.app.job(job["id"])
    assert view["state"] == "queued" and view["attempts"] == 0
    assert view["error"] == reason + "; waiting for a worker with Blender 4.5 or newer"
    assert old.claim(old_id, 0.3) is None
    assert new.claim(new_id, 1).job_id == job["id"]


def test_warnings_of_a_done_job_are_kept_and_shown(served, tmp_path):
    client = served.worker_client()
    worker_id = hello(client)
    job = served.app.submit({"scene": SCENE})
    lease = client.claim(worker_id, 1)
    warnings = [{"kind": "image", "path": "//tex/wood.png", "name": "wood"},
                {"kind": "redirected", "path": "/abs/", "message": "File Output node 'Out': into the job"}]
    client.report(lease.job_id, lease.lease_id, P.CompleteReport([], {}, warnings))
    assert served.app.job(job["id"])["warnings"] == warnings
    with pytest.raises(Rejected, match="warnings\\[0\\].kind"):
        job = served.app.submit({"scene": SCENE})
        lease = client.claim(worker_id, 1)
        client.report(lease.job_id, lease.lease_id, P.CompleteReport([], {}, [{"kind": "virus", "path": ""}]))


def test_a_claim_whose_answer_never_arrived_frees_the_job_soon(tmp_path):
    """A proxy lost the claim's answer: the first lease is short, the worker's first heartbeat extends it."""
    server = JobServer(tmp_path / "server", lease_ttl=8).start()  # heartbeats every 2 s: first lease 6 s
    try:
        from support.harness import Served
        served = Served(server)
        client = served.worker_client()
        worker_id = hello(client)
        job = served.app.submit({"scene": SCENE})
        lost = client.claim(worker_id, 1)  # the answer that "never reached" a worker
        assert lost.ttl_s == 6
        kept_job = served.app.submit({"scene": SCENE})
        kept = client.claim(worker_id, 1)
        assert client.heartbeat(kept.job_id, kept.lease_id, P.Progress()).ttl_s == 8  # extended to the full lease
        time.sleep(6.5)
        assert served.app.job(job["id"])["state"] == "queued", "the lost claim held the job past its short lease"
        assert served.app.job(kept_job["id"])["state"] == "leased"
    finally:
        server.stop()


def test_a_worker_getting_the_blender_keeps_the_job_and_gets_it_after_its_hello_again_under_its_id(served):
    """`blender.auto_install = "ask"`: no worker has Blender 4.5 yet, but this one is asking its owner to install
    it; the job waits for it, its attempt uncounted, and is offered to it once it says hello again with 4.5."""
    old, old_id = _worker_with(served, "3.4.1")
    job = served.app.submit({"scene": SCENE})
    lease = old.claim(old_id, 1)
    reason = "scene: saved by Blender 4.5; this PC has 3.4.1; its owner is asked to install it"
    failed = P.FailReport(reason, needs_blender="4.5", installing_blender=True)
    assert failed.to_json()["installing_blender"] is True
    assert old.report(lease.job_id, lease.lease_id, failed).state == "queued"
    view = served.app.job(job["id"])
    assert view["state"] == "queued" and view["attempts"] == 0
    assert old.claim(old_id, 0.3) is None, "not offered again until the worker has it"
    again = old.hello(P.Hello(name="pc-3.4.1", os="Linux", app_version="0", worker_id=old_id,
                              blender=[{"version": "3.4.1"}, {"version": "4.5.3"}]))
    assert again.worker_id == old_id, "a hello again keeps the worker's id: one card on the dashboard"
    assert old.claim(old_id, 1).job_id == job["id"]
    other = old.hello(P.Hello(name="another PC", os="Linux", app_version="0", worker_id=old_id))
    assert other.worker_id != old_id, "an id is kept only under the name it was given to"
