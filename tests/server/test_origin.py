"""The origin only its CDN reaches, forwarded headers believed only from trusted proxies, and webhooks that go
to public addresses only (worker_app/server/origin.py)."""

import socket

import pytest
import requests

from support.harness import Served
from worker_app import protocol as P
from worker_app.app_client import AppError
from worker_app.server import JobServer
from worker_app.server.origin import OriginCheck, PrivateTarget, check_public_target
from worker_app.server.webhooks import WebhookSender

SCENE = {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 1}
SECRET = "s" * 40


def test_without_the_cdns_secret_only_the_health_checks_answer(tmp_path):
    server = JobServer(tmp_path / "server", origin_secret=SECRET).start()
    try:
        served = Served(server)
        auth = {"Authorization": f"Bearer {served.app_token}"}
        bare = requests.get(server.url + "/api/v1/jobs", headers=auth, timeout=5)
        assert bare.status_code == 403 and bare.json()["error"] == "forbidden"
        wrong = requests.get(server.url + "/api/v1/jobs", headers={**auth, "X-Origin-Verify": SECRET[:-1] + "t"},
                             timeout=5)
        assert wrong.status_code == 403
        right = requests.get(server.url + "/api/v1/jobs", headers={**auth, "X-Origin-Verify": SECRET}, timeout=5)
        assert right.status_code == 200
        for path in ("/api/health", "/api/ready"):
            assert requests.get(server.url + path, timeout=5).status_code == 200, path
        token_less = requests.get(server.url + "/api/worker/v1/ping", timeout=5)
        assert token_less.status_code == 403, "the secret is checked before anything else"
    finally:
        server.stop()


def _scene_url(server: JobServer, served: Served, headers: dict) -> str:
    client = served.worker_client()
    if "X-Origin-Verify" in headers:  # the clients go through the CDN too
        served.app.session.headers["X-Origin-Verify"] = client.session.headers["X-Origin-Verify"] = SECRET
    served.app.submit({"scene": SCENE})
    worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
    reply = requests.post(f"{server.url}{P.WORKER_PREFIX}/jobs/claim?wait=0", json={"worker_id": worker_id},
                          headers={"Authorization": f"Bearer {served.worker_token}", **headers}, timeout=5)
    return reply.json()["spec"]["scene"]["url"]


@pytest.mark.parametrize("allowed, with_secret, believed", [
    ("127.0.0.1,::1", False, True),  # the default: a proxy on this machine
    ("10.0.0.0/8", False, False),  # the caller (loopback) is not a trusted proxy: its headers are ignored
    ("10.0.0.0/8", True, True),  # but the CDN, proven by the secret, is
    ("*", False, True),
])
def test_forwarded_headers_count_only_from_a_trusted_proxy_or_the_cdn(tmp_path, allowed, with_secret, believed):
    server = JobServer(tmp_path / "server", forwarded_allow_ips=allowed,
                       origin_secret=SECRET if with_secret else None).start()
    try:
        served = Served(server)
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "render.example.com"}
        if with_secret:
            headers["X-Origin-Verify"] = SECRET
        url = _scene_url(server, served, headers)
        if believed:
            assert url.startswith("https://render.example.com/api/worker/v1/assets/")
        else:
            assert url.startswith(server.url + "/api/worker/v1/assets/"), url
    finally:
        server.stop()


def test_a_bad_list_of_proxies_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="forwarded-allow-ips: 'proxy.example' is not an address"):
        OriginCheck(None, "127.0.0.1,proxy.example")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://10.1.2.3/hook", "http://192.168.1.5/hook", "http://[::1]/hook",
                                 "http://[fd00::1]/hook", "http://localhost/hook", "http://0.0.0.0/hook"])
def test_a_jobs_webhook_to_a_private_address_is_refused_at_submit(tmp_path, url):
    server = JobServer(tmp_path / "server", webhook_secret="w" * 32).start()
    try:
        served = Served(server)
        with pytest.raises(AppError) as caught:
            served.app.submit({"scene": SCENE, "webhook_url": url})
        assert caught.value.status == 422 and caught.value.body["field"] == "webhook_url"
        assert "public addresses only" in caught.value.body["message"]
        public = served.app.submit({"scene": SCENE, "webhook_url": "http://93.184.216.34/hook"})
        assert public["spec"]["webhook_url"] == "http://93.184.216.34/hook"
    finally:
        server.stop()


def test_a_private_webhook_is_allowed_only_when_the_server_says_so(tmp_path):
    server = JobServer(tmp_path / "server", webhook_secret="w" * 32, webhook_allow_private=True).start()
    try:
        job = Served(server).app.submit({"scene": SCENE, "webhook_url": "http://127.0.0.1:9/hook"})
        assert job["state"] == "queued"
    finally:
        server.stop()


def test_a_name_that_resolves_to_a_private_address_later_is_refused_at_delivery(tmp_path):
    """DNS changed between submit and delivery: the delivery is given up, with the reason, and nothing sent."""
    answers = {"hooks.example.com": "93.184.216.34"}

    def resolve(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    check_public_target("https://hooks.example.com/x", resolve)  # public at submit
    answers["hooks.example.com"] = "169.254.169.254"
    with pytest.raises(PrivateTarget, match="169.254.169.254, which is not a public address"):
        check_public_target("https://hooks.example.com/x", resolve)

    server = JobServer(tmp_path / "server", webhook_secret="w" * 32, webhook_allow_private=True)
    try:
        store = server.store
        job = store.submit({"scene": SCENE, "webhook_url": "http://127.0.0.1:9/hook"}, 0, 1, None)
        worker = store.register_worker("pc", {})
        claimed = store.claim(worker)
        store.fail(job, claimed.lease_id, "broken", "", False)
        sender = WebhookSender(store, "w" * 32, allow_private=False)  # the check at delivery
        assert sender.send_due() is None
        [delivery] = store.webhook_deliveries(job)
        assert delivery["delivered"] is None and delivery["next_attempt"] is None
        assert "not a public address" in delivery["last_error"]
    finally:
        server.sock.close()
        server.store.close()


def test_an_unresolvable_webhook_host_is_refused_with_the_reason():
    with pytest.raises(PrivateTarget, match="could not be resolved"):
        check_public_target("https://no-such-host.invalid/hook")
