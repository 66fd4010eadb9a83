"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real server, a real worker
and Blender: signing in, the farm live through the event stream, a job's page, cancel, a failure's reason,
text that stays text, changes that need the page's CSRF token; screenshots in tests/artifacts/."""

import time
import uuid

import pytest
import requests

from support.browser import ARTIFACTS, chromium
from support.engines import need
from support.harness import FAST_RENDER, Served, wait_until
from support.running import Running, blender_processes
from worker_app.server import JobServer

XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
SLOW = {**FAST_RENDER, "samples": 256, "resolution": [160, 90], "frames": "1-4"}


@pytest.fixture
def farm(tmp_path, blender):
    server = JobServer(tmp_path / "server").start()
    served = Served(server)
    served.dashboard_token = server.store.create_token("dashboard", "test")
    running = Running(served, blender, tmp_path, max_jobs=10, claim_wait=2)
    try:
        yield served, running
    finally:
        running.worker.stop()
        server.stop()


def sign_in(page, served, token=None):
    page.goto(served.url + "/dashboard/")
    page.fill("#token", token or served.dashboard_token)
    page.click("button[type=submit]")


def test_sign_in_refuses_a_wrong_token_and_the_farm_shows_the_worker_waiting(farm):
    served, running = farm
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, served, token="hfd_wrong")
        assert "not one this server knows" in page.inner_text("[role=alert]")
        assert page.context.cookies() == [] or all(c["name"] != "hf_dashboard" for c in page.context.cookies())
        sign_in(page, served, token=served.worker_token)  # a worker's token is not for the dashboard
        assert "not one this server knows" in page.inner_text("[role=alert]")
        sign_in(page, served)
        page.wait_for_selector("article.worker")
        assert page.inner_text("article.worker .state") == "waiting"
        assert page.inner_text("#live") == "live"


def test_a_job_renders_live_on_the_page_and_its_text_stays_text(farm, tmp_path):
    served, running = farm
    errors = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("dialog", lambda dialog: (errors.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_in(page, served)
        page.wait_for_selector("article.worker")
        page.evaluate("window.__sameDocument = true")
        job = served.submit(SLOW, tag=XSS)
        # The worker card turns to rendering and its bar moves, through the event stream: no reload.
        page.wait_for_selector("article.worker .state.rendering", timeout=60_000)
        # (Polled from here: the page's CSP forbids the eval that Playwright's wait_for_function uses.)
        wait_until(lambda: page.evaluate("document.querySelector('article.worker progress')?.value || 0") > 0,
                   timeout=60, what="the bar to move")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-1280-light.png"))
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=str(ARTIFACTS / "dashboard-1280-dark.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "dashboard-390-dark.png"), full_page=True)
        page.emulate_media(color_scheme="light")
        page.screenshot(path=str(ARTIFACTS / "dashboard-390-light.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})
        assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
        wait_until(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job done")
        page.goto(f"{served.url}/dashboard/#/job/{job['id']}")
        page.wait_for_selector(".outputs img")
        wait_until(lambda: page.evaluate("[...document.querySelectorAll('.outputs img')]"
                                         ".every(i => i.complete && i.naturalWidth > 0)"), timeout=30, what="thumbnails")
        assert page.locator(".outputs img").count() == 4
        assert page.inner_text(".tag") == XSS
        assert page.locator("img[src=x]").count() == 0 and page.evaluate("window.__pwned") is None
        page.screenshot(path=str(ARTIFACTS / "dashboard-job-1280-light.png"), full_page=True)
        page.goto(f"{served.url}/dashboard/#/jobs")
        page.wait_for_selector("tr[data-job]")
        page.screenshot(path=str(ARTIFACTS / "dashboard-jobs-1280-light.png"), full_page=True)
        assert XSS in page.inner_text("tbody")
        assert page.evaluate("window.__pwned") is None
        page.goto(f"{served.url}/dashboard/#/")
        page.wait_for_selector(".chart svg rect.done")
        card = page.inner_text("article.worker")
        assert "1 job today" in card, card
        assert "1 done, 0 failed" in page.inner_text(".chart") and page.locator(".chart svg rect.render").count() == 1
        page.screenshot(path=str(ARTIFACTS / "dashboard-farm-after-1280-light.png"), full_page=True)
    assert errors == [], errors


def test_cancel_from_the_page_stops_blender_and_a_failure_shows_its_reason(farm):
    served, running = farm
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, served)
        # Blender fails it (the override names an object the scene lacks, and the name is markup).
        failing = served.submit(FAST_RENDER, overrides={"objects": {XSS: {"visible": False}}})
        wait_until(lambda: served.app.job(failing["id"])["state"] == "failed", timeout=90, what="the failure")
        page.goto(f"{served.url}/dashboard/#/job/{failing['id']}")
        page.wait_for_selector(".reason")
        assert XSS in page.inner_text(".reason") and page.locator("img[src=x]").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert page.inner_text("pre.log").strip(), "Blender's last lines are shown"
        long = served.submit({**SLOW, "frames": "1-40"})
        wait_until(lambda: served.app.job(long["id"])["state"] == "leased" and blender_processes(running.jobs_dir),
                   timeout=60, what="Blender rendering")
        page.goto(f"{served.url}/dashboard/#/job/{long['id']}")
        page.click("text=Cancel")
        page.wait_for_selector("h1 .state.canceled", timeout=30_000)
        wait_until(lambda: not blender_processes(running.jobs_dir), timeout=30, what="Blender gone from the worker")


@pytest.fixture(params=["folder", "s3", "s3-refused"])
def dropping(request, tmp_path, blender, monkeypatch):
    """A farm whose scenes live in a folder, in S3 (the page sends them straight there), or in S3 whose CORS
    rules refuse the page (it sends them through the server)."""
    storage_url = None
    refused = request.param == "s3-refused"
    if request.param != "folder":
        store = request.getfixturevalue("seaweed")
        for key, value in store.env().items():
            monkeypatch.setenv(key, value)
        storage_url = store.url(f"t-{uuid.uuid4().hex[:12]}")
    if refused:
        client = _bucket_client()
        client.put_bucket_cors(Bucket="renders", CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": ["https://web-app.example"], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}]})
    server = JobServer(tmp_path / "server", storage_url=storage_url).start()
    served = Served(server)
    served.dashboard_token = server.store.create_token("dashboard", "test")
    running = Running(served, blender, tmp_path, max_jobs=5, claim_wait=2)
    try:
        yield served, running, request.param
    finally:
        running.worker.stop()
        server.stop()
        if refused:
            client.delete_bucket_cors(Bucket="renders")


def _bucket_client():
    import os

    import boto3
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def test_a_scene_dropped_on_the_page_goes_where_the_apis_bytes_go_and_is_rendered(dropping):
    """Through the server with a folder; straight to S3 in checked parts, or through the server where the
    bucket refuses the page; then rendered, its timeline and a search finding it."""
    from worker_app.demo import sample_scene

    served, running, kind = dropping
    sent = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda r: sent.append((r.method, r.url)))
        sign_in(page, served)
        page.goto(served.url + "/dashboard/#/jobs")
        page.set_input_files("#scene-file", str(sample_scene()))
        page.fill("#frames", "1-2")
        page.fill("#samples", "4")
        page.fill("#width", "96")
        page.fill("#height", "54")
        page.select_option("#device", "CPU")
        page.fill("#tag", "from the page")
        page.click("text=Render")
        page.wait_for_selector("h1 .state", timeout=30_000)
        job_id = page.url.rsplit("/", 1)[1]
        wait_until(lambda: served.app.job(job_id)["state"] == "done", timeout=120, what="the dropped scene rendered")
        page.wait_for_selector(".outputs img", timeout=30_000)
        assert page.locator(".outputs img").count() == 2 and page.inner_text(".tag") == "from the page"
        wait_until(lambda: page.evaluate("document.querySelector('.outputs img').naturalWidth") == 96, timeout=10,
                   what="the thumbnail drawn (from S3, through the page's CSP)")
        timeline = page.inner_text(".timeline")
        assert "Submitted" in timeline and f"Attempt 1 by {running.worker.settings.name}" in timeline
        assert "done · 2 of 2 frames · 2 outputs uploaded" in timeline
        spec = served.app.job(job_id)["spec"]
        assert spec["render"]["resolution"] == [96, 54] and spec["scene"]["sha256"]
        through_server = [url for method, url in sent if method == "POST" and url.endswith("/dashboard/api/assets")]
        straight = [url for method, url in sent if method == "PUT" and not url.startswith(served.url)]
        if kind == "s3":
            assert straight and not through_server, "the scene went straight to storage"
        else:
            assert through_server and not straight or kind == "s3-refused", sent
        if kind == "s3-refused":
            assert through_server, "refused by the bucket, the scene went through the server"
        page.goto(served.url + "/dashboard/#/jobs?" + "q=FROM+THE")
        page.wait_for_selector(f"tr[data-job='{job_id}']")
        assert page.locator("tbody tr").count() == 1
        page.fill("#text-filter", "no such words")
        page.press("#text-filter", "Enter")
        page.wait_for_selector("text=No job matches.")


def test_a_pause_from_the_cli_shows_on_the_page_within_two_seconds(tmp_path, blender):
    """`homefarm pause` on the PC: the worker's guard sees it, the worker tells the server, the page says so."""
    from support.harness import run_cli
    from worker_app import guard as G

    server = JobServer(tmp_path / "server").start()
    served = Served(server)
    token = server.store.create_token("dashboard", "test")
    guard = G.Guard([G.ManualPause(tmp_path / "home" / "data" / "pause.json")], interval=0.25).start()
    running = Running(served, blender, tmp_path, max_jobs=10, claim_wait=2, guard=guard)
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(served.url + "/dashboard/")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("article.worker .state.waiting", timeout=30_000)
            paused = run_cli(tmp_path, "pause", "30m")
            assert paused.returncode == 0, paused.stderr
            asked = time.monotonic()
            page.wait_for_selector("article.worker .state.paused", timeout=10_000)
            assert time.monotonic() - asked < 2.0
            assert page.inner_text("article.worker .state").startswith("paused (you paused it), until")
            assert run_cli(tmp_path, "resume").returncode == 0
            page.wait_for_selector("article.worker .state.waiting", timeout=10_000)
    finally:
        running.worker.stop()
        guard.stop()
        server.stop()


def test_a_worker_held_from_the_page_stops_claiming_and_its_owner_is_told(farm):
    from support.harness import wait_until as wait
    from worker_app.tray import status

    served, running = farm
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, served)
        page.wait_for_selector("article.worker .state.waiting", timeout=30_000)
        page.get_by_role("button", name="Hold until released").click()
        page.wait_for_selector("article.worker .state.held")
        assert page.inner_text("article.worker .state") == "held from here until released"
        wait(lambda: running.worker.snapshot.held, timeout=30, what="the worker to hear of the hold")
        assert status.job_line(running.worker.snapshot) == "Held by the server until it is released from its dashboard"
        job = served.submit(FAST_RENDER)
        time.sleep(3)
        assert served.app.job(job["id"])["state"] == "queued", "a held worker claims nothing"
        page.get_by_role("button", name="Release", exact=True).click()
        page.wait_for_selector("article.worker .state:not(.held)")
        # Released: the worker hears it at its next claim, within its recheck (30 s).
        wait(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job after the release")
        assert not running.worker.snapshot.held


def test_a_change_without_the_pages_csrf_token_is_refused(farm):
    served, running = farm
    job = served.submit(FAST_RENDER, scene={"url": "/api/worker/v1/assets/" + "e" * 64, "sha256": "e" * 64,
                                            "size": 1}, max_attempts=1)
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, served)
        page.wait_for_selector("#view h1")
        cookie = next(c for c in page.context.cookies() if c["name"] == "hf_dashboard")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        # What another site's page could send with the cookie: no CSRF token.
        status = page.evaluate(f"fetch('api/jobs/{job['id']}/cancel', {{method: 'POST'}}).then(r => r.status)")
        assert status == 403
        forged = requests.post(f"{served.url}/dashboard/api/jobs/{job['id']}/cancel", timeout=5,
                               cookies={"hf_dashboard": cookie["value"]}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        headers = requests.get(f"{served.url}/dashboard/", cookies={"hf_dashboard": cookie["value"]}, timeout=5).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"] and "unsafe-inline" not in \
            headers["Content-Security-Policy"]
    assert served.app.job(job["id"])["state"] != "canceled" or time.sleep(0) is None


def test_behind_nginx_under_a_path_with_no_serious_accessibility_problem(farm):
    """The pages through nginx mounting the server under /render, as on a web app's own domain; axe-core (the
    TypeScript client's dev package) finds no serious or critical violation on the farm, the jobs and a job."""
    from support.engines import Nginx
    from support.harness import ROOT

    served, running = farm
    axe = ROOT / "clients" / "typescript" / "node_modules" / "axe-core" / "axe.min.js"
    if not axe.exists():
        need(None, "axe-core", "make test (npm ci in clients/typescript)")
    job = served.submit(FAST_RENDER, tag="a tag")
    wait_until(lambda: served.app.job(job["id"])["state"] == "done", timeout=120, what="the job done")
    proxy = Nginx.start(served.url.removeprefix("http://"), prefix="/render")
    try:
        base = proxy.url + "/render"
        with chromium() as browser:
            # axe is injected as a script, which the dashboard's own CSP refuses: this context lets it in.
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(base + "/dashboard/")
            assert page.url == base + "/dashboard/sign-in", "the redirect kept the proxy's path"
            page.add_script_tag(content=axe.read_text(encoding="utf-8"))
            assert page.evaluate("axe.run().then(r => r.violations.filter(v => ['serious', 'critical']"
                                 ".includes(v.impact)).map(v => v.id))") == [], "the sign-in page"
            page.fill("#token", served.dashboard_token)
            page.click("button[type=submit]")
            page.wait_for_selector("article.worker")
            wait_until(lambda: page.inner_text("#live") == "live", timeout=15, what="the event stream through nginx")
            for route, ready in (("#/", "article.worker"), ("#/jobs", "tr[data-job]"),
                                 (f"#/job/{job['id']}", ".outputs img")):
                page.goto(base + "/dashboard/" + route)
                page.wait_for_selector(ready)
                page.add_script_tag(content=axe.read_text(encoding="utf-8"))
                found = page.evaluate("axe.run().then(r => r.violations.filter(v => ['serious', 'critical']"
                                      ".includes(v.impact)).map(v => v.id + ': ' + v.nodes.length))")
                assert found == [], f"{route}: {found}"
    finally:
        proxy.stop()
