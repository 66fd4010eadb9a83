"""The dashboard: the farm at a glance, served by the job server itself at ``/dashboard/``.

Pages are one HTML shell and one ES module (``server/static``), with no inline script, so the
Content-Security-Policy allows none; the module draws everything with ``textContent``: a tag, a worker's name,
a failure reason or a log tail is text, never markup. Data comes from ``/dashboard/api/…`` as JSON; changes
arrive as Server-Sent Events (``/dashboard/events``) from the store's in-process notifications, with a comment
every 15 s so no proxy or CDN cuts the stream as idle: an open dashboard costs the database nothing while
nothing happens.

Sign-in takes a ``dashboard`` token (``homefarm serve tokens create --kind dashboard``) or the web app's token
and gives a session cookie (HttpOnly, SameSite=Strict, Secure behind https, 12 hours), signed with a key the
server keeps in its database (every process, and the next instance, knows it). The token's hash rides in the
cookie, so revoking the token ends its sessions when the server refuses the token (docs/server.md). Every change carries a CSRF token (an HMAC of the
session) in ``X-CSRF-Token``; failed sign-ins from one address are answered ever more slowly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from worker_app import __version__
from worker_app import protocol as P
from worker_app.server import assets
from worker_app.server.http import PAGES, HttpError, db, job_id_of, read_json, route
from worker_app.server.schema import HELD_FOREVER, hash_token
from worker_app.server.storage import output_key
from worker_app.server.store import BadCursor, Conflict, NotFound
from worker_app.server.store.base import TOUCH_EVERY_S
from worker_app.server.wakeups import call_from_any_thread

if TYPE_CHECKING:
    from worker_app.server.app import JobServer

log = logging.getLogger("homefarm.server")

PREFIX = "/dashboard"
COOKIE = "hf_dashboard"
SESSION_S = 12 * 3600.0
KEEPALIVE_S = 15.0  # under every CDN's idle cut (CloudFront 30 s)
SIGN_IN_KINDS = ("dashboard", "app")
ONLINE_S = 2 * TOUCH_EVERY_S + 60  # a waiting worker's last_seen is written every 5 minutes (idle costs)
PAUSED_ONLINE_S = 6 * 3600.0  # a paused worker claims nothing: it says so when it pauses, and is trusted this long
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{storage}; "
       "connect-src 'self'{storage}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
PREVIEWABLE = (".png", ".jpg", ".jpeg", ".webp", ".gif")


def _static(name: str) -> str:
    return str(resources.files("worker_app.server").joinpath("static", name))


# -- sessions -------------------------------------------------------------------------------------

class Sessions:
    """Signed, stateless session cookies; the failed sign-ins of each address."""

    def __init__(self, server: JobServer):
        self.server = server
        self._key: bytes | None = None
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures, last)

    def key(self) -> bytes:
        if self._key is None:
            self._key = self.server.store.server_key("dashboard-session")
        return self._key

    def make(self, digest: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"d": digest, "exp": time.time() + SESSION_S}).encode())
        return payload.decode() + "." + self._mac(payload)

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.key(), payload, hashlib.sha256).hexdigest()

    def read(self, cookie: str | None) -> str | None:
        """The session's token digest, when the cookie is ours and not expired."""
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(self._mac(payload.encode()), mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("d"), str) or data.get("exp", 0) < time.time():
            return None
        return str(data["d"])

    def csrf(self, cookie: str) -> str:
        return hmac.new(self.key(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()[:40]

    def delay(self, address: str) -> float:
        """How long to wait before answering a sign-in from this address: doubling with each failure."""
        failures, last = self._failures.get(address, (0, 0.0))
        if time.monotonic() - last > 900:
            return 0.0
        return min(0.25 * 2 ** failures, 8.0) if failures else 0.0

    def failed(self, address: str) -> None:
        failures, last = self._failures.get(address, (0, 0.0))
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures[address] = (failures + 1, time.monotonic())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


async def signed_in(server: JobServer, request: Request) -> str:
    """The session's cookie when the request has a live session whose token still exists (HttpError 401
    otherwise); changes must carry its CSRF token too (403)."""
    cookie = request.cookies.get(COOKIE)
    digest = server.sessions.read(cookie)
    if digest is None or cookie is None:
        raise HttpError(401, "unauthorized", "sign in to the dashboard")
    kind = await db(server.store.kind_of_digest, digest)
    if kind not in SIGN_IN_KINDS:
        raise HttpError(401, "unauthorized", "this session's token was revoked; sign in again")
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(given, server.sessions.csrf(cookie)):
            raise HttpError(403, "forbidden", "this change did not come from the dashboard's own page")
    return cookie


def _secured(response: Response, storage: str = "") -> Response:
    """``storage``: the S3 origin the page may send a dropped scene to, and show outputs from (a thumbnail's
    URL redirects to a presigned one there)."""
    response.headers["Content-Security-Policy"] = CSP.format(storage=f" {storage}" if storage else "")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


# -- pages ----------------------------------------------------------------------------------------

@route("GET", "/", auth="none", table=PAGES)
async def root(server: JobServer, request: Request) -> Response:
    return RedirectResponse(server.base_url(request) + PREFIX + "/", 303)


@route("GET", PREFIX, auth="none", table=PAGES)
async def dashboard_bare(server: JobServer, request: Request) -> Response:
    return RedirectResponse(server.base_url(request) + PREFIX + "/", 303)


@route("GET", PREFIX + "/", auth="none", table=PAGES)
async def dashboard(server: JobServer, request: Request) -> Response:
    try:
        cookie = await signed_in(server, request)
    except HttpError:
        return RedirectResponse(server.base_url(request) + PREFIX + "/sign-in", 303)
    page = (await asyncio.to_thread(_read_text, "dashboard.html")).replace(
        "{{csrf}}", server.sessions.csrf(cookie)).replace("{{version}}", __version__).replace(
        "{{storage}}", "direct" if server.storage.direct else "server")
    return _secured(Response(page, media_type="text/html; charset=utf-8"), server.storage.upload_origin)


def _read_text(name: str) -> str:
    with open(_static(name), encoding="utf-8") as handle:
        return handle.read()


@route("GET", PREFIX + "/sign-in", auth="none", table=PAGES)
async def sign_in_page(server: JobServer, request: Request) -> Response:
    page = await asyncio.to_thread(_read_text, "sign-in.html")
    wrong = request.query_params.get("wrong") == "1"
    page = page.replace("{{message}}", "That token is not one this server knows. Try again." if wrong else "")
    return _secured(Response(page, media_type="text/html; charset=utf-8", status_code=401 if wrong else 200))


@route("POST", PREFIX + "/sign-in", auth="none", table=PAGES)
async def sign_in(server: JobServer, request: Request) -> Response:
    address = request.client.host if request.client else ""
    wait = server.sessions.delay(address)
    if wait:
        await asyncio.sleep(wait)
    body = (await request.body())[:4096].decode("utf-8", "replace")
    token = (parse_qs(body).get("token") or [""])[0].strip()
    digest = hash_token(token) if token else ""
    kind = await db(server.store.kind_of_digest, digest) if token else None
    base = server.base_url(request)
    if kind not in SIGN_IN_KINDS:
        server.sessions.failed(address)
        log.warning("dashboard: a failed sign-in from %s", address)
        return RedirectResponse(base + PREFIX + "/sign-in?wrong=1", 303)
    server.sessions.succeeded(address)
    response = RedirectResponse(base + PREFIX + "/", 303)
    response.set_cookie(COOKIE, await db(server.sessions.make, digest), max_age=int(SESSION_S), httponly=True,
                        samesite="strict", secure=base.startswith("https://"), path=_cookie_path(server, request))
    return response


@route("POST", PREFIX + "/sign-out", auth="none", table=PAGES)
async def sign_out(server: JobServer, request: Request) -> Response:
    await signed_in(server, request)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path=_cookie_path(server, request))
    return response


def _cookie_path(server: JobServer, request: Request) -> str:
    base = server.base_url(request)
    path = "/" + base.split("://", 1)[1].split("/", 1)[1] if base.count("/") > 2 else ""
    return path + PREFIX


@route("GET", PREFIX + "/static/{name}", auth="none", table=PAGES)
async def static(server: JobServer, request: Request, name: str) -> Response:
    if name not in ("dashboard.js", "dashboard.css"):
        raise HttpError(404, "not_found", f"no file {name}")
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return _file(_static(name), f"{kind}; charset=utf-8", {"Cache-Control": "no-cache"})


def _file(path: Any, media_type: str, headers: dict[str, str]) -> Response:
    """A file, never sniffed as another type."""
    return FileResponse(path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff", **headers})


# -- data -----------------------------------------------------------------------------------------

@route("GET", PREFIX + "/api/overview", auth="none", table=PAGES)
async def overview(server: JobServer, request: Request) -> Response:
    await signed_in(server, request)
    now = server.store.clock()
    try:  # the browser's midnight, for "today" in its owner's time zone
        today = min(max(float(request.query_params.get("today", "")), now - 2 * 86400), now)
    except ValueError:
        today = now - 86400
    return JSONResponse(await db(_overview, server, today))


def _overview(server: JobServer, today: float) -> dict[str, Any]:
    store = server.store
    now = store.clock()
    running, _ = store.list_jobs("leased", 50)
    days = store.worker_days(today)
    rows = store.list_workers()
    by_worker = {job["worker_id"]: job for job in running}
    workers: dict[str, dict[str, Any]] = {}
    for row in rows:
        if now - (row["last_seen"] or 0) > 7 * 86400 or row["name"] in workers:
            continue  # a worker signs on anew at each start: its newest id stands for it
        job = by_worker.get(row["id"])
        said = row["state"] if isinstance(row["state"], dict) else {}
        online = now - (row["last_seen"] or 0) < ONLINE_S or job is not None or server.wakeups.waiting(row["id"]) or (
            bool(said.get("paused")) and now - (row["last_seen"] or 0) < PAUSED_ONLINE_S)
        info = row["info"] if isinstance(row["info"], dict) else {}
        held = row["held_until"] if row["held_until"] is not None and row["held_until"] > now else None
        state = "rendering" if job else ("offline" if not online else "held" if held else
                                         "paused" if said.get("paused") else "waiting")
        workers[row["name"]] = {
            "name": row["name"], "online": online, "last_seen": row["last_seen"], "state": state,
            "pause_kind": said.get("pause_kind") if said.get("paused") else None,
            "paused_until": said.get("until"), "warm": bool(said.get("warm")),
            "held": held is not None, "held_until": held if held is not None and held < HELD_FOREVER else None,
            "job": _brief(job) if job else None,
            "jobs_today": days.get(row["name"], (0, None))[0], "energy_wh_today": days.get(row["name"], (0, None))[1],
            "program": said.get("program") if said.get("paused") else None,
            "app_version": info.get("app_version"), "os": info.get("os"),
            "outdated": bool(server.latest_worker_version and info.get("app_version")
                             and _older(str(info["app_version"]), server.latest_worker_version)),
            "blender": [b.get("version") for b in info.get("blender", []) if isinstance(b, dict)][:4],
            "gpus": [g.get("name") for g in info.get("gpus", []) if isinstance(g, dict)][:4],
        }
    last = store.last_rendered()
    return {"workers": list(workers.values()), "counts": store.counts(), "running": [_brief(j) for j in running],
            "last": {"job": str(last[0]), "name": last[1], "preview": last[1].lower().endswith(PREVIEWABLE)}
            if last else None, "server_version": __version__, "now": now}


def _older(version: str, than: str) -> bool:
    try:
        return P.version_tuple(version) < P.version_tuple(than)
    except ValueError:
        return False


def _brief(job: dict[str, Any]) -> dict[str, Any]:
    progress = job.get("progress") or {}
    figures = progress.get("gpu") if isinstance(progress, dict) else None
    gpu: dict[str, Any] = figures if isinstance(figures, dict) else {}
    return {"id": job["id"], "state": job["state"], "tag": job.get("tag"), "priority": job.get("priority"),
            "gpu": {k: gpu[k] for k in ("name", "temp_c", "power_w", "load", "vram_used", "vram_total")
                    if isinstance(gpu.get(k), (int, float, str))},
            "attempts": job.get("attempts"), "worker_id": job.get("worker_id"), "error": job.get("error"),
            "updated": job.get("updated"), "created": job.get("created"),
            "progress": {k: progress.get(k) for k in ("stage", "frame", "frames_done", "frame_count", "percent",
                                                      "eta_s", "message")} if isinstance(progress, dict) else {}}


@route("GET", PREFIX + "/api/jobs", auth="none", table=PAGES)
async def jobs_page(server: JobServer, request: Request) -> Response:
    await signed_in(server, request)
    state = request.query_params.get("state") or None
    if state is not None:
        P.check_choice(state, "state", P.JOB_STATES)
    tag = (request.query_params.get("tag") or "").strip()[:200] or None
    worker = (request.query_params.get("worker") or "").strip()[:255] or None
    text = (request.query_params.get("q") or "").strip()[:200] or None
    try:
        found, following = await db(server.store.list_jobs, state, 50, request.query_params.get("cursor") or None,
                                    None, tag, worker, text)
    except BadCursor as error:
        raise HttpError(422, "invalid", error.detail, field=error.field) from None
    return JSONResponse({"jobs": [_brief(job) for job in found], "next_cursor": following})


@route("GET", PREFIX + "/api/jobs/{job_id}", auth="none", table=PAGES)
async def job_page(server: JobServer, request: Request, job_id: str) -> Response:
    await signed_in(server, request)
    job = job_id_of(job_id)
    view = await db(server.store.get, job)
    view["webhooks"] = await db(server.store.webhook_deliveries, job)
    view["timeline"] = await db(server.store.attempts_of, job)
    for output in view["outputs"]:
        output["preview"] = output["name"].lower().endswith(PREVIEWABLE)
    return JSONResponse(view)


@route("GET", PREFIX + "/api/jobs/{job_id}/outputs/{name:path}", auth="none", table=PAGES)
async def job_output(server: JobServer, request: Request, job_id: str, name: str) -> Response:
    await signed_in(server, request)
    job = job_id_of(job_id)
    P.check_output_name(name)
    if await db(server.store.output, job, name) is None:
        raise HttpError(404, "not_found", f"job {job} has no output {name}")
    if server.storage.direct:
        return RedirectResponse(server.storage.download_url(output_key(job, name)), 307)
    path = server.storage.local_path(output_key(job, name))
    if not path.is_file():
        raise HttpError(404, "not_found", f"job {job} has no output {name}")
    kind = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
            "gif": "image/gif"}.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
    return _file(path, kind, {"Content-Security-Policy": "default-src 'none'; sandbox"})


@route("GET", PREFIX + "/api/activity", auth="none", table=PAGES)
async def activity(server: JobServer, request: Request) -> Response:
    """The last 7 days by hour: jobs done and failed, render seconds; and failures by reason."""
    await signed_in(server, request)
    now = server.store.clock()
    start = now - 7 * 86400
    rows = await db(server.store.ended_since, start)
    hours = [{"done": 0, "failed": 0, "render_s": 0.0} for _ in range(7 * 24)]
    reasons: dict[str, int] = {}
    for finished, state, error, stats in rows:
        slot = hours[min(int((finished - start) // 3600), len(hours) - 1)]
        slot[state] += 1
        try:
            slot["render_s"] += float((json.loads(stats) if stats else {}).get("render_s", 0.0))
        except (ValueError, TypeError, AttributeError):
            pass
        if state == "failed":
            reason = (error or "no reason given").split(":", 1)[0][:80]
            reasons[reason] = reasons.get(reason, 0) + 1
    return JSONResponse({"start": start, "hours": hours,
                         "reasons": sorted(reasons.items(), key=lambda item: -item[1])[:8]})


# -- changes --------------------------------------------------------------------------------------

@route("POST", PREFIX + "/api/jobs/{job_id}/cancel", auth="none", table=PAGES)
async def cancel_job(server: JobServer, request: Request, job_id: str) -> Response:
    await signed_in(server, request)
    try:
        return JSONResponse(_brief(await db(server.store.cancel, job_id_of(job_id))))
    except Conflict as error:
        raise HttpError(409, "conflict", str(error)) from None


@route("POST", PREFIX + "/api/jobs/{job_id}/retry", auth="none", table=PAGES)
async def retry_job(server: JobServer, request: Request, job_id: str) -> Response:
    """A failed or canceled job again, as a new job with the same spec."""
    await signed_in(server, request)
    old = await db(server.store.get, job_id_of(job_id))
    if old["state"] not in ("failed", "canceled"):
        raise HttpError(409, "conflict", f"job {job_id} is {old['state']}; only a failed or canceled job is retried")
    spec = P.JobSpec.parse(old["spec"])
    view, _ = await db(server.store.submit_view, spec.to_json(), spec.priority, spec.max_attempts, spec.tag, None)
    return JSONResponse(_brief(view), 201)


@route("POST", PREFIX + "/api/jobs/{job_id}/priority", auth="none", table=PAGES)
async def set_priority(server: JobServer, request: Request, job_id: str) -> Response:
    await signed_in(server, request)
    body = await read_json(request)
    P.check_object(body, "", {"priority"}, set())
    priority = P.check_int(body["priority"], "priority", -1000, 1000)
    try:
        await db(server.store.set_priority, job_id_of(job_id), priority)
    except NotFound as error:
        raise HttpError(404, "not_found", str(error)) from None
    return JSONResponse({"id": job_id, "priority": priority})


@route("POST", PREFIX + "/api/assets", auth="none", table=PAGES)
async def upload_scene(server: JobServer, request: Request) -> Response:
    """A scene dropped on the page, through the server: where the storage is a folder, or the browser could
    not reach S3 itself (the bucket's CORS, a page not served over https)."""
    await signed_in(server, request)
    return JSONResponse(await assets.receive(server, request, None), 201)


@route("POST", PREFIX + "/api/assets/uploads", auth="none", table=PAGES)
async def plan_scene_upload(server: JobServer, request: Request) -> Response:
    """Where the page uploads a scene straight to S3, as the web app's API plans it (docs/protocol.md)."""
    await signed_in(server, request)
    return JSONResponse(await assets.plan(server, request))


@route("POST", PREFIX + "/api/assets/{sha256}/commit", auth="none", table=PAGES)
async def commit_scene_upload(server: JobServer, request: Request, sha256: str) -> Response:
    await signed_in(server, request)
    return JSONResponse(await assets.commit(server, request, sha256, "the dashboard's api/assets"), 201)


@route("POST", PREFIX + "/api/jobs", auth="none", table=PAGES)
async def submit_job(server: JobServer, request: Request) -> Response:
    """A job from the page's form: the same spec, and the same checks, as the web app's API."""
    await signed_in(server, request)
    spec = P.JobSpec.parse(await read_json(request))
    if spec.webhook_url:
        raise HttpError(422, "invalid", "the dashboard submits jobs without webhooks", field="webhook_url")
    view, _ = await db(server.store.submit_view, spec.to_json(), spec.priority, spec.max_attempts, spec.tag, None)
    return JSONResponse(_brief(view), 201)


@route("POST", PREFIX + "/api/workers/{name}/hold", auth="none", table=PAGES)
async def hold_worker(server: JobServer, request: Request, name: str) -> Response:
    """Offers the worker no job for ``minutes`` (null: until released); a render under way finishes. The
    worker learns it at its next claim, and its owner's tray says so."""
    await signed_in(server, request)
    body = await read_json(request)
    P.check_object(body, "", set(), {"minutes"})
    minutes = body.get("minutes")
    until = HELD_FOREVER if minutes is None else server.store.clock() + 60 * P.check_number(
        minutes, "minutes", 1, 7 * 24 * 60)
    ids = await db(server.store.hold_worker, name, until)
    if not ids:
        raise HttpError(404, "not_found", f"no worker called {name}")
    for worker_id in ids:  # a claim waiting now ends, and the next one hears of the hold
        server.wakeups.cancel(worker_id)
    return JSONResponse({"name": name, "held_until": None if until >= HELD_FOREVER else until})


@route("POST", PREFIX + "/api/workers/{name}/release", auth="none", table=PAGES)
async def release_worker(server: JobServer, request: Request, name: str) -> Response:
    await signed_in(server, request)
    if not await db(server.store.hold_worker, name, None):
        raise HttpError(404, "not_found", f"no worker called {name}")
    return JSONResponse({"name": name, "held_until": None})


@route("POST", PREFIX + "/api/jobs/{job_id}/webhooks/again", auth="none", table=PAGES)
async def webhooks_again(server: JobServer, request: Request, job_id: str) -> Response:
    """The job's webhook deliveries that were given up on, sent again now."""
    await signed_in(server, request)
    return JSONResponse({"again": await db(server.store.send_again, job_id_of(job_id))})


@route("GET", PREFIX + "/events", auth="none", table=PAGES)
async def events(server: JobServer, request: Request) -> Response:
    """Server-Sent Events: ``change`` when a job or a worker changed in this process (or, on PostgreSQL, in
    another: its change notice); a comment every 15 s otherwise. A browser that reconnects with a
    ``Last-Event-ID`` older than the last change (or from another server) hears of a change at once."""
    await signed_in(server, request)
    stream = server.dashboard_streams.open(request.headers.get("last-event-id"))
    return StreamingResponse(stream.events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class Streams:
    """The open event streams of this process; told of every change from any thread. Each change has an id,
    this process's own and counting up, that a reconnecting browser sends back."""

    def __init__(self) -> None:
        self._open: set[Stream] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self._boot = base64.urlsafe_b64encode(hashlib.sha256(str(time.time_ns()).encode()).digest()[:6]).decode()
        self._changes = 0

    @property
    def last_id(self) -> str:
        return f"{self._boot}-{self._changes}"

    def open(self, last_event_id: str | None = None) -> Stream:
        self.loop = asyncio.get_running_loop()
        stream = Stream(self)
        self._open.add(stream)
        if last_event_id is not None and last_event_id != self.last_id:
            stream.pending.set()  # it missed a change while away
        return stream

    def changed(self) -> None:
        """From any thread."""
        call_from_any_thread(self.loop, self._tell)

    def _tell(self) -> None:
        self._changes += 1
        for stream in list(self._open):
            stream.pending.set()

    def close(self) -> None:
        """The server stops: every stream ends now (a browser reconnects to the next instance)."""
        self.closing = True
        for stream in list(self._open):
            stream.pending.set()

    @property
    def count(self) -> int:
        return len(self._open)


class Stream:
    def __init__(self, streams: Streams):
        self.streams = streams
        self.pending = asyncio.Event()

    async def events(self) -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            while not self.streams.closing:
                try:
                    await asyncio.wait_for(self.pending.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if self.streams.closing:
                    return
                await asyncio.sleep(0.25)  # changes in a burst (a frame saved, its heartbeat) go as one
                self.pending.clear()
                yield f"id: {self.streams.last_id}\nevent: change\ndata: {{}}\n\n"
        finally:
            self.streams._open.discard(self)
