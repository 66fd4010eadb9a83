"""The web app's side of the server: webhooks, paging, ETags, retention, tokens, a base path."""

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from support.harness import Served, wait_until
from support.engines import Nginx
from worker_app import protocol as P
from worker_app.app_client import AppError
from worker_app.client import WorkerClient
from worker_app.server import JobServer
from worker_app.server.webhooks import verify

SECRET = "whsec_test_secret"
SCENE = {"url": "/api/worker/v1/assets/" + "b" * 64, "sha256": "b" * 64, "size": 10}


class Receiver:
    """A web app's webhook endpoint on loopback that answers 500 to its first ``failures`` deliveries."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.received: list[tuple[dict, bytes, int]] = []  # headers, body, the status answered
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if receiver.failures > 0 else 204
                receiver.failures -= 1
                receiver.received.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hooks/render"

    def delivered(self) -> list[dict]:
        return [json.loads(body) for _, body, status in self.received if status < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    found = Receiver(failures=2)
    yield found
    found.close()


def run_one_job(served: Served, spec: dict, outcome: str = "done") -> str:
    client = served.worker_client()
    worker_id = client.hello(P.Hello(name="pc", os="Linux", app_version="0")).worker_id
    job = served.app.submit(spec)
    lease = client.claim(worker_id, 5)
    if outcome == "done":
        client.complete(lease.job_id, lease.lease_id, [], {"render_s": 1})
    else:
        client.fail(lease.job_id, lease.lease_id, "render.camera: no camera", "", retryable=False)
    return job["id"]


def test_a_job_end_reaches_the_webhook_signed_after_failed_deliveries(tmp_path, receiver):
    server = JobServer(tmp_path / "server", webhook_url=receiver.url, webhook_secret=SECRET,
                       webhook_backoff=0.2).start()
    try:
        served = Served(server)
        job_id = run_one_job(served, {"scene": SCENE, "tag": "order-17"})
        wait_until(lambda: receiver.delivered(), timeout=30, what="the webhook's delivery")
        assert [status for _, _, status in receiver.received] == [500, 500, 204]
        headers, body, _ = receiver.received[-1]
        assert verify(SECRET, headers["Homefarm-Signature"], body)
        assert not verify("another secret", headers["Homefarm-Signature"], body)
        assert not verify(SECRET, headers["Homefarm-Signature"], body + b" ")
        event = json.loads(body)
        assert event["type"] == "job.done" and event["job"] == {**event["job"], "id": job_id, "state": "done",
                                                                 "tag": "order-17"}
        assert headers["Homefarm-Delivery"] == event["id"]
        deliveries = served.app.job(job_id)["webhooks"]
        assert len(deliveries) == 1 and deliveries[0]["attempts"] == 3 and deliveries[0]["delivered"]
        time.sleep(1.5)
        assert len(receiver.received) == 3  # delivered once, then never again
    finally:
        server.stop()


def test_a_pending_delivery_survives_a_restart_and_a_job_may_name_its_own_webhook(tmp_path):
    down = Receiver(failures=10**6)  # the app is down while the first server runs
    own = Receiver()
    try:
        server = JobServer(tmp_path / "server", webhook_url=down.url, webhook_secret=SECRET,
                           webhook_backoff=0.2, webhook_allow_private=True).start()
        served = Served(server)
        job_id = run_one_job(served, {"scene": SCENE, "webhook_url": own.url}, outcome="failed")
        wait_until(lambda: len(down.received) >= 1 and own.delivered(), what="the first attempts")
        server.stop()
        assert own.delivered()[0]["type"] == "job.failed"
        down.failures = 0  # the app is back; a new server process on the same database sends what is owed
        server = JobServer(tmp_path / "server", webhook_url=down.url, webhook_secret=SECRET,
                           webhook_backoff=0.2, webhook_allow_private=True).start()
        try:
            wait_until(lambda: down.delivered(), timeout=30, what="the delivery after the restart")
            assert down.delivered()[0]["job"]["id"] == job_id
            assert len(own.delivered()) == 1
        finally:
            server.stop()
    finally:
        down.close()
        own.close()


def test_a_job_webhook_needs_a_server_secret(served):
    with pytest.raises(AppError) as caught:
        served.app.submit({"scene": SCENE, "webhook_url": "https://app.example.com/hook"})
    assert caught.value.status == 422 and caught.value.body["field"] == "webhook_url"
    with pytest.raises(AppError) as caught:
        served.app.submit({"scene": SCENE, "webhook_url": "file:///etc/passwd"})
    assert caught.value.body["field"] == "webhook_url"


def test_listing_pages_with_a_cursor_and_follows_changes(served):
    ids = [served.app.submit({"scene": SCENE})["id"] for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        page = served.app.jobs_page(limit=3, cursor=cursor)
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3  # newest first, each once
    since = max(job["updated"] for job in served.app.jobs(limit=10))
    time.sleep(0.01)
    served.app.cancel(ids[2])
    served.app.cancel(ids[5])
    changed = served.app.jobs_page(updated_since=since, limit=1)
    assert [job["id"] for job in changed["jobs"]] == [ids[2]]
    rest = served.app.jobs_page(cursor=changed["next_cursor"], limit=1)
    assert [job["id"] for job in rest["jobs"]] == [ids[5]] and rest["next_cursor"] is None
    with pytest.raises(AppError) as caught:
        served.app.jobs_page(cursor="not-a-cursor")
    assert caught.value.status == 422 and caught.value.body["field"] == "cursor"


def test_a_job_status_has_an_etag(served):
    job = served.app.submit({"scene": SCENE})
    url = f"{served.url}{P.API_PREFIX}/jobs/{job['id']}"
    auth = {"Authorization": f"Bearer {served.app_token}"}
    first = requests.get(url, headers=auth, timeout=10)
    tag = first.headers["ETag"]
    same = requests.get(url, headers={**auth, "If-None-Match": tag}, timeout=10)
    assert same.status_code == 304 and same.content == b""
    served.app.cancel(job["id"])
    changed = requests.get(url, headers={**auth, "If-None-Match": tag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != tag and changed.json()["state"] == "canceled"


@pytest.mark.parametrize("outcome", ["canceled", "done"])
def test_retention_deletes_outputs_and_says_so(tmp_path, storage_url, outcome):
    """Outputs of failed and canceled jobs go after a short grace time, every job's after a longer one."""
    keep = dict(keep_failed=0.5, keep_outputs=3600.0) if outcome == "canceled" else \
        dict(keep_failed=3600.0, keep_outputs=0.5)
    other = "done" if outcome == "canceled" else "canceled"
    server = JobServer(tmp_path / "server", storage_url=storage_url, retention_every=0.2, **keep).start()
    try:
        served = Served(server)
        client = served.worker_client()
        worker_id = client.hello(P.Hello(name="pc", os="Linux", app_version="0")).worker_id
        out = tmp_path / "frame_0001.png"
        out.write_bytes(os.urandom(5000))
        sha = hashlib.sha256(out.read_bytes()).hexdigest()

        def job_with_output(end: str) -> str:
            served.app.submit({"scene": SCENE})
            lease = client.claim(worker_id, 5)
            client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
            if end == "canceled":
                served.app.cancel(lease.job_id)
            else:
                client.complete(lease.job_id, lease.lease_id, [out.name], {})
            return lease.job_id

        expiring, kept = job_with_output(outcome), job_with_output(other)
        view = served.app.job(expiring)
        assert view["outputs_expire_at"] == pytest.approx(view["finished"] + 0.5)
        wait_until(lambda: served.app.job(expiring)["outputs_deleted"], timeout=20, what="retention")
        view = served.app.job(expiring)
        assert view["outputs"] == [] and view["outputs_expire_at"] is None
        assert server.storage.stat(f"outputs/{expiring}/{out.name}") is None
        with pytest.raises(AppError):
            served.app.download_output(expiring, out.name, tmp_path / "gone.png")
        time.sleep(0.5)  # two more rounds of retention
        still = served.app.job(kept)
        assert still["outputs_deleted"] is None and [o["name"] for o in still["outputs"]] == [out.name]
        assert server.storage.stat(f"outputs/{kept}/{out.name}") == 5000
    finally:
        server.stop()


def homefarm(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker_app", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_tokens_are_created_listed_and_revoked_from_the_command_line(tmp_path):
    data = str(tmp_path / "server")
    made = homefarm("serve", "--data-dir", data, "tokens", "create", "--kind", "worker", "--label", "studio PC")
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[-1]
    assert token.startswith("hfw_")
    # The server polls each second here (90 s by default) while a claim waits: another worker's, below.
    server = JobServer(tmp_path / "server", claim_poll=1.0).start()
    try:
        ping = f"{server.url}{P.WORKER_PREFIX}/ping"
        assert requests.get(ping, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        other = WorkerClient(server.url, server.store.create_token("worker", "another PC"))
        other_id = other.hello(P.Hello(name="other", os="linux", app_version="0")).worker_id
        waiting = threading.Thread(target=lambda: other.claim(other_id, 20), daemon=True)
        waiting.start()
        listed = homefarm("serve", "--data-dir", data, "tokens", "list").stdout
        assert "worker" in listed and "studio PC" in listed and "last used" in listed and token not in listed
        token_id = listed.split()[0]
        gone = homefarm("serve", "--data-dir", data, "tokens", "revoke", token_id)
        assert gone.returncode == 0 and "revoked worker token" in gone.stdout
        wait_until(lambda: requests.get(ping, headers={"Authorization": f"Bearer {token}"},
                                        timeout=10).status_code == 401, timeout=20, step=0.5,
                   what="the revoked token refused")
        unknown = homefarm("serve", "--data-dir", data, "tokens", "revoke", "abcdef")
        assert unknown.returncode != 0 and "no token abcdef" in unknown.stderr
    finally:
        server.stop()


def test_the_first_start_keeps_its_tokens_out_of_the_log(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "worker_app", "serve", "--port", "0", "--data-dir",
                             str(tmp_path / "server")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("homefarm job server on "):
                break
    finally:
        proc.terminate()
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = "".join(lines) + rest
    path = tmp_path / "server" / "first-start-tokens.txt"
    assert "first-start-tokens.txt" in text and "hfa_" not in text and "hfw_" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "app_token=hfa_" in path.read_text() and "worker_token=hfw_" in path.read_text()


@pytest.mark.parametrize("configured", [True, False])
def test_behind_a_path_prefix_the_worker_gets_urls_that_keep_it(tmp_path, configured):
    server = JobServer(tmp_path / "server", base_path="/render" if configured else "").start()
    proxy = Nginx.start(f"127.0.0.1:{server.port}", prefix="/render", forward_prefix=not configured)
    try:
        served = Served(server)
        base = proxy.url + "/render"
        scene = tmp_path / "scene.blend"
        scene.write_bytes(os.urandom(1000))
        asset = served.app.upload_asset(scene)
        served.app.submit({"scene": asset})
        from worker_app.client import WorkerClient
        client = WorkerClient(base, served.worker_token)
        worker_id = client.hello(P.Hello(name="pc", os="Linux", app_version="0")).worker_id
        lease = client.claim(worker_id, 5)
        assert lease.spec["scene"]["url"].startswith(base + P.WORKER_PREFIX + "/assets/")
        with open(tmp_path / "got", "wb") as out:
            assert client.download(lease.spec["scene"]["url"], out, 2000)[1] == 1000
        # A path the web app gave is resolved under the prefix too, never at the front end's root.
        with open(tmp_path / "got2", "wb") as out:
            assert client.download(asset["url"], out, 2000)[1] == 1000
    finally:
        proxy.stop()
        server.stop()
