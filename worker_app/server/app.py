"""The job server: the worker API and the web app's API (docs/protocol.md) as Starlette routes on uvicorn."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import signal
import socket
import sys
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any, AsyncIterator, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from worker_app import __version__
from worker_app.protocol import limits
from worker_app import protocol as P
from worker_app.server.http import (HttpError, content_length, db, drain, empty, job_id_of, lease_header, read_json,
                                    receive_file, route, starlette_routes)
from worker_app.server import assets
from worker_app.server.dashboard import Sessions, Streams
from worker_app.server.metrics import Metrics
from worker_app.server.storage import PART_SIZE, asset_key, open_storage, output_key
from worker_app.server.store import KEEP_FAILED_S, KEEP_OUTPUTS_S, BadCursor, Claimed, KeyReused, Store
from worker_app.server.schema import HELD_FOREVER
from worker_app.server.origin import LOOPBACK, OriginCheck, PrivateTarget, check_public_target
from worker_app.server.views import OutputRecord
from worker_app.server.wakeups import POLL_S, Wakeups
from worker_app.server.webhooks import BACKOFF_BASE_S, WebhookSender

log = logging.getLogger("homefarm.server")

MAX_OUTPUT_BYTES = 64 * 1024**3
# After SIGTERM everything ends within this (requests in flight, slow uploads, webhook deliveries): under ECS's
# and Docker's default stop timeout of 30 s (--shutdown-grace).
SHUTDOWN_GRACE_S = 25.0
SHUTDOWN_MARGIN_S = 3.0  # of the grace, what the end of the lifespan (webhooks, wake-ups, the stamp) may take
RETENTION_EVERY_S = 900.0  # retention's rounds: four statements each (docs/server.md, "What idle costs")
BASE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
IDEMPOTENCY_KEEP_S = 24 * 3600.0  # a retry comes within minutes; a key is remembered a day, as payment APIs do
MAX_PAGE = 1000  # jobs in one page of GET /api/v1/jobs
EARLY_CHECK_BYTES = 1024**2  # an output larger than this has its lease checked before its bytes are read


class JobServer:
    """A job server: ``JobServer(data_dir).start()`` serves on a thread; ``serve_forever()`` in this one."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0, lease_ttl: float = limits.LEASE_TTL,
                 claim_wait_max: float = limits.CLAIM_WAIT_MAX, latest_worker_version: str | None = None,
                 min_worker_version: str | None = None, db_url: str | None = None, metrics: bool = False,
                 db_pool: int = 10, storage_url: str | None = None, part_size: int = PART_SIZE,
                 base_path: str = "", webhook_url: str | None = None, webhook_secret: str | None = None,
                 webhook_backoff: float = BACKOFF_BASE_S, keep_failed: float = KEEP_FAILED_S,
                 keep_outputs: float = KEEP_OUTPUTS_S, retention_every: float = RETENTION_EVERY_S,
                 shutdown_grace: float = SHUTDOWN_GRACE_S, claim_poll: float = POLL_S,
                 origin_secret: str | None = None, forwarded_allow_ips: str = LOOPBACK,
                 webhook_allow_private: bool = False):
        self.data_dir = Path(data_dir)
        self.tmp_dir = self.data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.base_path = check_base_path(base_path, "base path")
        if webhook_url and not webhook_secret:
            raise ValueError("webhook: a webhook URL needs a secret to sign with (HOMEFARM_WEBHOOK_SECRET)")
        self.storage = open_storage(storage_url, self.data_dir, part_size)
        self.sock = _bind(host, port)  # before the database, so that a taken port fails first
        self.store = Store(db_url or f"sqlite:///{self.data_dir / 'homefarm-server.sqlite3'}", lease_ttl=lease_ttl,
                           pool_size=db_pool, keep_failed=keep_failed, keep_outputs=keep_outputs,
                           webhook_url=webhook_url)
        self.origin = OriginCheck(origin_secret, forwarded_allow_ips)
        self.webhook_allow_private = webhook_allow_private
        self.webhooks = WebhookSender(self.store, webhook_secret, backoff=webhook_backoff,
                                      allow_private=webhook_allow_private)
        self.shutdown_grace = shutdown_grace
        self.retention_every = retention_every
        self.claim_wait_max = claim_wait_max
        # Told to workers at sign-on: the tray shows "a new version is available", and a worker older
        # than the minimum stops claiming and asks its owner to update.
        self.latest_worker_version = latest_worker_version
        self.min_worker_version = min_worker_version
        self.metrics = Metrics(self.store) if metrics else None
        self.wakeups = Wakeups(self.store, poll_s=claim_poll)
        self.sessions = Sessions(self)
        self.dashboard_streams = Streams()
        self.store.change_listeners.append(self.dashboard_streams.changed)
        self.wakeups.changed_elsewhere.append(self.dashboard_streams.changed)
        self.asgi = Starlette(routes=starlette_routes(self), lifespan=self._lifespan,
                              exception_handlers={HTTPException: _http_exception})  # type: ignore[dict-item]
        config = uvicorn.Config(self.asgi, lifespan="on", log_config=None, access_log=False,
                                timeout_graceful_shutdown=max(int(shutdown_grace - SHUTDOWN_MARGIN_S), 1),
                                timeout_keep_alive=75, server_header=False, date_header=True,
                                proxy_headers=False)  # forwarded headers: OriginCheck decides
        self.uvicorn = _Uvicorn(config, on_exit=self.begin_shutdown)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        try:
            await db(self.store.resume_after_outage)  # before the reaper: leases outlive an outage
        except Exception as error:  # the database is away: the server starts anyway and says not ready
            log.warning("could not check how long no server was alive: %s", error)
        await self.wakeups.start()
        self.webhooks.start()
        retention = self._loop.create_task(self._retention())
        try:
            yield
        finally:
            retention.cancel()
            await self.webhooks.stop()
            await self.wakeups.stop()
            try:
                await asyncio.wait_for(db(self.store.stamp_alive, True), 2.0)  # the outage counts from now
            except Exception as error:
                log.warning("could not note this server's stop: %s", error)

    async def _retention(self) -> None:
        while True:
            try:
                await db(self.apply_retention)
            except Exception as error:  # the database or the store is away: the next round tries again
                log.warning("retention: %s", error)
            await asyncio.sleep(self.retention_every)

    def apply_retention(self) -> int:
        """Deletes the outputs that retention says are due (docs/server.md); returns how many jobs had some."""
        self.store.forget_idempotency_keys(self.store.clock() - IDEMPOTENCY_KEEP_S)
        due = self.store.expired_outputs()
        if due:
            self.storage.delete([output_key(job, name) for job, names in due.items() for name in names])
            self.store.outputs_removed(list(due))
            log.info("retention: deleted the outputs of %d job(s)", len(due))
        return len(due)

    def begin_shutdown(self) -> None:
        """Stops offering jobs and answers every waiting claim now; in-flight requests finish."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.wakeups.close)
                loop.call_soon_threadsafe(self.dashboard_streams.close)
            except RuntimeError:
                pass

    def start(self) -> JobServer:
        self._thread = threading.Thread(target=self.serve_forever, name="homefarm-server", daemon=True)
        self._thread.start()
        while not self.uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("the job server did not start; see its log")
            self._thread.join(0.01)
        return self

    def serve_forever(self) -> None:
        """Serves until SIGTERM or SIGINT (in the main thread) or ``stop()``."""
        if threading.current_thread() is threading.main_thread():
            # uvicorn handles the signal, then raises it again under the handler it found: this one, so the
            # process exits 0 after a graceful shutdown instead of dying of the signal it already handled; and
            # a signal that comes before uvicorn listens (a platform stopping a container as it starts) is not
            # lost: the server starts, then stops at once.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.uvicorn.handle_exit)
        self.uvicorn.run(sockets=[self.sock])
        log.info("stopped")

    def stop(self) -> None:
        self.begin_shutdown()
        self.uvicorn.should_exit = True
        if self._thread:
            self._thread.join(self.shutdown_grace + 5)
        self.sock.close()
        self.store.close()

    def ensure_tokens(self) -> dict[str, str]:
        """On first start, makes one app and one worker token; returns them (shown once)."""
        if self.store.has_tokens():
            return {}
        return {kind: self.store.create_token(kind, "first start") for kind in ("app", "worker")}

    def base_url(self, request: Request) -> str:
        """The server's address as the caller reached it: the proxy's host and scheme, and the path prefix it
        mounts the server under (``--base-path``, or the proxy's X-Forwarded-Prefix)."""
        headers = request.headers if self.origin.believes_forwarded(
            request.client.host if request.client else None, request.headers.get) else {}
        scheme = headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
        host = headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
        prefix = self.base_path or check_base_path(headers.get("x-forwarded-prefix", ""), "X-Forwarded-Prefix")
        return f"{scheme if scheme in ('http', 'https') else 'http'}://{host.split(',')[0].strip()}{prefix}"

    def output_url(self, request: Request, job_id: int, name: str) -> str:
        if self.storage.direct:
            return self.storage.download_url(output_key(job_id, name))
        return f"{self.base_url(request)}{P.API_PREFIX}/jobs/{job_id}/outputs/{name}"

    def scene_url(self, request: Request, url: str) -> str:
        """A scene stored here, as the worker fetches it: a presigned URL with S3, else the server's own URL
        with its prefix. Any other URL is the web app's, passed on as it is."""
        if not url.startswith(P.WORKER_PREFIX + "/assets/"):
            return url
        sha = url.rsplit("/", 1)[1]
        if self.storage.direct:
            return self.storage.download_url(asset_key(sha))
        return self.base_url(request) + url


def check_base_path(value: str, name: str) -> str:
    value = (value or "").strip().rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    if not BASE_PATH.match(value):
        raise HttpError(400, "bad_request", f"{name} must be a path such as /render") if name != "base path" \
            else ValueError(f"base path: {value!r} is not a path such as /render")
    return value


class _Uvicorn(uvicorn.Server):
    """Tells the app of SIGTERM first, so that waiting claims are answered before connections drain."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform == "win32":
        # On Windows SO_REUSEADDR would let another program bind the same port and take our requests: there
        # the port is ours alone.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _http_exception(_request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's own 404 and 405, in the API's JSON shape."""
    if error.status_code == 405:
        return JSONResponse({"error": "method_not_allowed", "message": "that method is not allowed here"}, 405)
    return JSONResponse({"error": "not_found" if error.status_code == 404 else "bad_request",
                         "message": str(error.detail)}, error.status_code)


# -- open ---------------------------------------------------------------------------------------

@route("GET", "/api/health", auth="none")
async def health(server: JobServer, request: Request) -> Response:
    """Liveness: the process answers (the database is not asked)."""
    return JSONResponse({"ok": True, "version": __version__, "protocol": P.PROTOCOL_VERSION})


@route("GET", "/api/ready", auth="none")
async def ready(server: JobServer, request: Request) -> Response:
    """Readiness: the database answers and the server is not shutting down."""
    if server.wakeups.closing:
        return JSONResponse({"ok": False, "message": "shutting down"}, 503)
    try:
        await db(server.store.ping)
    except Exception as error:
        log.warning("not ready: the database does not answer: %s", error)
        return JSONResponse({"ok": False, "message": "the database does not answer"}, 503)
    return JSONResponse({"ok": True})


@route("GET", "/metrics", auth="none")
async def metrics(server: JobServer, request: Request) -> Response:
    if server.metrics is None:
        raise HttpError(404, "not_found", "metrics are off; start the server with --metrics")
    return PlainTextResponse(await db(server.metrics.render), media_type="text/plain; version=0.0.4")


# -- the worker API -----------------------------------------------------------------------------

@route("POST", P.WORKER_PREFIX + "/hello", auth="worker")
async def hello(server: JobServer, request: Request) -> Response:
    hello = P.Hello.parse(await read_json(request))
    worker_id = await db(server.store.register_worker, hello.name, hello.to_json(), hello.worker_id)
    reply = P.HelloReply(worker_id, server_version=__version__, claim_wait_max_s=server.claim_wait_max,
                         lease_ttl_s=server.store.lease_ttl, heartbeat_interval_s=server.store.heartbeat_interval,
                         latest_worker_version=server.latest_worker_version or None,
                         min_worker_version=server.min_worker_version or None,
                         upload_part_size=server.storage.part_size if server.storage.direct else None)
    return JSONResponse(reply.to_json())


@route("GET", P.WORKER_PREFIX + "/ping", auth="worker")
async def ping(server: JobServer, request: Request) -> Response:
    return JSONResponse({"ok": True, "protocol": P.PROTOCOL_VERSION})


async def _worker_of(server: JobServer, request: Request) -> str:
    body = await read_json(request)
    P.check_object(body, "", {"worker_id"}, set())
    return P.check_str(body["worker_id"], "worker_id", max_len=64)


@route("POST", P.WORKER_PREFIX + "/jobs/claim", auth="worker")
async def claim(server: JobServer, request: Request) -> Response:
    worker_id = await _worker_of(server, request)
    if not server.store.worker_seen_lately(worker_id) and not await db(server.store.worker_exists, worker_id):
        raise HttpError(422, "invalid", "unknown worker; POST /hello first", field="worker_id")
    try:
        wait = float(request.query_params.get("wait", limits.CLAIM_WAIT_DEFAULT))
    except ValueError:
        raise HttpError(422, "invalid", "wait must be a number of seconds", field="wait") from None
    wait = min(max(wait, 0.0), server.claim_wait_max)
    held = await db(server.store.held_until, worker_id)
    if held is not None:
        log.debug("claim by %s: held from the dashboard", worker_id)
        return Response(status_code=204, headers={P.HELD_HEADER: "release" if held >= HELD_FOREVER else f"{held:.0f}"})
    claimed = await _wait_for_job(server, request, worker_id, wait)
    if server.metrics:
        server.metrics.claimed(claimed is not None)
    if claimed is None:
        log.debug("claim by %s: no job", worker_id)
        return empty(204)
    log.info("claim by %s: job %s, attempt %d", worker_id, claimed.job_id, claimed.attempt)
    spec = claimed.spec
    if isinstance(spec.get("scene"), dict) and isinstance(spec["scene"].get("url"), str):
        spec["scene"]["url"] = server.scene_url(request, spec["scene"]["url"])
    lease = P.Lease(job_id=str(claimed.job_id), lease_id=claimed.lease_id, ttl_s=server.store.first_lease_ttl,
                    attempt=claimed.attempt, spec=spec, outputs=claimed.outputs, expires_at=claimed.expires)
    return JSONResponse(lease.to_json())


async def _wait_for_job(server: JobServer, request: Request, worker_id: str, wait: float) -> Claimed | None:
    """Claims at once, else waits until woken (a job, a cancel, shutdown), the wait is over or the client left."""
    wakeups = server.wakeups
    if wakeups.closing:
        return None  # shutting down: no more jobs offered
    # A job queued already (a busy farm): taken at once, with no watch on the connection and no waiter.
    claimed = await _claim_if_any(server, worker_id)
    if claimed is not None or wait <= 0:
        return claimed
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        with wakeups.waiter(worker_id) as waiter:
            while not waiter.canceled:
                claimed = await _claim_if_any(server, worker_id)
                if claimed is not None:
                    if gone.done():
                        # Nobody will receive this answer (a proxy cut the poll): the job goes straight back.
                        await db(server.store.release, claimed.job_id, claimed.lease_id,
                                 "the claim's answer could not be delivered")
                        log.info("job %s back in the queue: the claim by %s was gone", claimed.job_id, worker_id)
                        return None
                    return claimed
                remaining = deadline - loop.time()
                if remaining <= 0 or gone.done():
                    return None
                await waiter.wait(remaining, gone)
            return None
    finally:
        gone.cancel()


async def _claim_if_any(server: JobServer, worker_id: str) -> Claimed | None:
    """A claim that asks the database only when a job may have come for this worker since its last empty
    answer (server/wakeups.py): an idle worker's long polls, one after another, cost no statement."""
    wakeups = server.wakeups
    if not wakeups.may_have_work(worker_id) or await db(server.store.held_until, worker_id) is not None:
        return None
    generation = wakeups.generation
    claimed = await db(server.store.claim, worker_id)
    if claimed is None:
        wakeups.found_nothing(worker_id, generation)
    return claimed


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@route("POST", P.WORKER_PREFIX + "/state", auth="worker")
async def worker_state(server: JobServer, request: Request) -> Response:
    """The worker's own state when it changes (paused and why, warm), for the dashboard."""
    state = P.WorkerState.parse(await read_json(request))
    if not await db(server.store.set_worker_state, state.worker_id, state.to_json()):
        raise HttpError(422, "invalid", "unknown worker; POST /hello first", field="worker_id")
    return JSONResponse({"ok": True})


@route("POST", P.WORKER_PREFIX + "/jobs/claim/cancel", auth="worker")
async def cancel_claim(server: JobServer, request: Request) -> Response:
    worker_id = await _worker_of(server, request)
    waiting_here = server.wakeups.waiting(worker_id)
    await db(server.store.cancel_claims, worker_id)  # every server process hears it
    log.info("claims of %s canceled by the worker%s", worker_id, "" if waiting_here else " (none waiting here)")
    return JSONResponse({"canceled": waiting_here})


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/heartbeat", auth="worker")
async def heartbeat(server: JobServer, request: Request, job_id: str) -> Response:
    body = await read_json(request)
    progress = P.parse_heartbeat(body)
    cancel, ttl = await db(server.store.heartbeat, job_id_of(job_id), body["lease_id"], progress.to_json())
    return JSONResponse(P.HeartbeatReply(cancel, ttl).to_json())


@route("PUT", P.WORKER_PREFIX + "/jobs/{job_id}/outputs/{name:path}", auth="worker")
async def put_output(server: JobServer, request: Request, job_id: str, name: str) -> Response:
    job = job_id_of(job_id)
    P.check_output_name(name)
    lease_id = lease_header(request)
    sha = P.check_sha256(request.headers.get("x-content-sha256", ""), "X-Content-SHA256")
    key = output_key(job, name)

    def already_stored(existing: OutputRecord | None) -> bool:
        return existing is not None and existing.sha256 == sha and server.storage.stat(key) == existing.size

    # A large output's lease is checked before its bytes come, so that a lost lease costs no transfer; a small
    # one's in the same trip to a thread that stores it.
    early = content_length(request, MAX_OUTPUT_BYTES) > EARLY_CHECK_BYTES
    if early:
        existing = await db(server.store.upload_target, job, lease_id, name)
        if existing is not None and await db(already_stored, existing):
            await drain(request, MAX_OUTPUT_BYTES)
            return JSONResponse(P.StoredOutput(name, sha, existing.size, stored=False).to_json())
    new = [True]

    def keep(tmp: Path, sha: str) -> None:  # one trip to a thread: the bytes stored, then the output recorded
        if not early and already_stored(server.store.upload_target(job, lease_id, name)):
            new[0] = False  # the same bytes again: nothing to do
            return
        size = tmp.stat().st_size
        server.storage.put_file(key, tmp, sha)
        server.store.add_output(job, lease_id, name, sha, size)

    sha, size = await receive_file(request, server.tmp_dir, keep, sha, MAX_OUTPUT_BYTES)
    return JSONResponse(P.StoredOutput(name, sha, size, stored=new[0]).to_json(), 201 if new[0] else 200)


async def _output_upload_call(request: Request, job_id: str, name: str,
                              commit: bool) -> tuple[int, str, P.UploadRequest]:
    """A direct upload's call for one output: the job, its lease, and the upload's fields."""
    job = job_id_of(job_id)
    P.check_output_name(name)
    body = await read_json(request)
    lease_id = P.check_str(body.get("lease_id"), "lease_id", max_len=64)
    return job, lease_id, P.UploadRequest.parse(body, MAX_OUTPUT_BYTES, commit)


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/outputs/{name:path}/uploads", auth="worker")
async def plan_output_upload(server: JobServer, request: Request, job_id: str, name: str) -> Response:
    """Where to upload an output straight to storage: presigned PUTs for its parts (docs/protocol.md)."""
    job, lease_id, ask = await _output_upload_call(request, job_id, name, commit=False)
    existing = await db(server.store.upload_target, job, lease_id, name)
    if existing and existing.sha256 == ask.sha256:
        stored = P.StoredOutput(name, ask.sha256, existing.size, stored=False)
        return JSONResponse({**P.UploadPlan(stored=True).to_json(), **stored.to_json(), "stored": True})
    if not server.storage.direct or ask.parts is None:
        return JSONResponse(assets.how_to_upload(server))
    plan = await db(server.storage.upload_urls, output_key(job, name), ask.size, ask.parts, ask.upload_id,
                    set(ask.done))
    return JSONResponse(plan.to_json())


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/outputs/{name:path}/commit", auth="worker")
async def commit_output_upload(server: JobServer, request: Request, job_id: str, name: str) -> Response:
    """The upload is in storage: the server checks its size and SHA-256, then counts it."""
    job, lease_id, ask = await _output_upload_call(request, job_id, name, commit=True)
    if not server.storage.direct:
        raise HttpError(422, "invalid", "this server stores outputs itself; PUT them", field="upload_id")
    await db(server.store.check_lease, job, lease_id)
    await db(server.storage.finish_upload, output_key(job, name), ask.sha256, ask.size, ask.parts or [],
             ask.upload_id, ask.etags)
    await db(server.store.add_output, job, lease_id, name, ask.sha256, ask.size)
    return JSONResponse(P.StoredOutput(name, ask.sha256, ask.size).to_json(), 201)


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/complete", auth="worker")
async def complete(server: JobServer, request: Request, job_id: str) -> Response:
    body = await read_json(request)
    done = P.CompleteReport.parse(body)
    await db(server.store.complete, job_id_of(job_id), body["lease_id"], done.outputs, done.stats, done.warnings)
    if server.metrics:
        server.metrics.finished("done", done.stats)
    log.info("job %s done: %d output(s)", job_id, len(done.outputs))
    return JSONResponse(P.ReportAck("done").to_json())


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/fail", auth="worker")
async def fail(server: JobServer, request: Request, job_id: str) -> Response:
    body = await read_json(request)
    failure = P.FailReport.parse(body)
    state = await db(server.store.fail, job_id_of(job_id), body["lease_id"], failure.reason, failure.log_tail,
                     failure.retryable, failure.needs_blender, failure.installing_blender)
    if server.metrics and state == "failed":
        server.metrics.finished("failed", None)
    log.info("job %s failed (%s): %s", job_id, state, failure.reason)
    return JSONResponse(P.ReportAck(state).to_json())


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/release", auth="worker")
async def release(server: JobServer, request: Request, job_id: str) -> Response:
    body = await read_json(request)
    reason = P.ReleaseReport.parse(body).reason
    await db(server.store.release, job_id_of(job_id), body["lease_id"], reason)
    log.info("job %s released: %s", job_id, reason)
    return JSONResponse(P.ReportAck("queued").to_json())


@route("GET", P.WORKER_PREFIX + "/assets/{sha256}", auth="worker")
async def get_asset(server: JobServer, request: Request, sha256: str) -> Response:
    key = asset_key(P.check_sha256(sha256, "sha256"))
    if server.storage.direct:
        return RedirectResponse(server.storage.download_url(key, request.method == "HEAD"), 307)
    path = server.storage.local_path(key)
    if not path.is_file():
        raise HttpError(404, "not_found", f"no asset {sha256}")
    return FileResponse(path, media_type="application/octet-stream")


# -- the web app's API --------------------------------------------------------------------------

@route("POST", P.API_PREFIX + "/jobs", auth="app")
async def submit(server: JobServer, request: Request) -> Response:
    """Queues a job. With an ``Idempotency-Key`` header, a retry of the same request (a serverless function
    that timed out, say) answers 200 with the job the first one made instead of making a second."""
    body = await read_json(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise HttpError(422, "invalid", "an Idempotency-Key is 1 to 255 printable ASCII characters (a UUID, "
                        "say)", field="Idempotency-Key")
    spec = P.JobSpec.parse(body)
    if spec.webhook_url and not server.webhooks.secret:
        raise HttpError(422, "invalid", "this server has no webhook secret to sign with; start it with "
                        "HOMEFARM_WEBHOOK_SECRET set", field="webhook_url")
    if spec.webhook_url and not server.webhook_allow_private:
        try:
            await db(check_public_target, spec.webhook_url)
        except PrivateTarget as error:
            raise HttpError(422, "invalid", f"the webhook's host {error}; webhooks go to public addresses only",
                            field="webhook_url") from None
    keyed = None if key is None else (key, hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest())
    try:
        view, made = await db(server.store.submit_view, spec.to_json(), spec.priority, spec.max_attempts,
                              spec.tag, keyed)
    except KeyReused as error:
        raise HttpError(422, "idempotency_key_reused", str(error), field="Idempotency-Key") from None
    return JSONResponse(view, 201) if made else JSONResponse(view, 200, headers={"Idempotent-Replayed": "true"})


@route("GET", P.API_PREFIX + "/jobs", auth="app")
async def list_jobs(server: JobServer, request: Request) -> Response:
    state = request.query_params.get("state")
    if state is not None:
        P.check_choice(state, "state", P.JOB_STATES)
    try:
        limit = int(request.query_params.get("limit", 100))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise HttpError(422, "invalid", f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit")
    given = request.query_params.get("updated_since")
    try:
        since = float(given) if given is not None else None
    except ValueError:
        raise HttpError(422, "invalid", "updated_since must be a time in seconds since 1970, as a job's "
                        "updated", field="updated_since") from None
    try:
        found, following = await db(server.store.list_jobs, state, limit, request.query_params.get("cursor"),
                                    since)
    except BadCursor as error:
        raise HttpError(422, "invalid", error.detail, field=error.field) from None
    return JSONResponse({"jobs": found, "next_cursor": following})


@route("GET", P.API_PREFIX + "/jobs/{job_id}", auth="app")
async def get_job(server: JobServer, request: Request, job_id: str) -> Response:
    """A job's status, with an ETag: a poller that sends If-None-Match gets 304 until it changes."""
    job = job_id_of(job_id)
    view = await db(server.store.get, job)
    used = server.store.webhook_url or view["spec"].get("webhook_url")
    view["webhooks"] = await db(server.store.webhook_deliveries, job) if used else []
    # The tag is taken before output URLs are added: presigned URLs differ on every request.
    tag = '"' + hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:32] + '"'
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": tag})
    for output in view["outputs"]:
        output["url"] = await db(server.output_url, request, job, output["name"])
    return JSONResponse(view, headers={"ETag": tag, "Cache-Control": "no-cache"})



@route("POST", P.API_PREFIX + "/jobs/{job_id}/cancel", auth="app")
async def cancel(server: JobServer, request: Request, job_id: str) -> Response:
    return JSONResponse(await db(server.store.cancel, job_id_of(job_id)))


@route("GET", P.API_PREFIX + "/jobs/{job_id}/outputs/{name:path}", auth="app")
async def get_output(server: JobServer, request: Request, job_id: str, name: str) -> Response:
    job = job_id_of(job_id)
    P.check_output_name(name)
    found = await db(server.store.output, job, name)
    if found is None:
        raise HttpError(404, "not_found", f"job {job} has no output {name}")
    if server.storage.direct:
        return RedirectResponse(server.storage.download_url(output_key(job, name), request.method == "HEAD"), 307)
    path = server.storage.local_path(output_key(job, name))
    if not path.is_file():
        raise HttpError(404, "not_found", f"job {job} has no output {name}")
    # Starlette answers HEAD and Range requests (206, 416) for a file; the ETag is the output's SHA-256.
    return FileResponse(path, media_type=_content_type(name), headers={"ETag": f'"{found.sha256}"'})


@route("PUT", P.API_PREFIX + "/assets", auth="app")
async def put_asset(server: JobServer, request: Request) -> Response:
    expected = request.headers.get("x-content-sha256")
    if expected is not None:
        P.check_sha256(expected, "X-Content-SHA256")
    return JSONResponse(await assets.receive(server, request, expected), 201)


@route("POST", P.API_PREFIX + "/assets/uploads", auth="app")
async def plan_asset_upload(server: JobServer, request: Request) -> Response:
    """Where the web app uploads a scene straight to storage (S3); ``{"direct": false}``: PUT it here."""
    return JSONResponse(await assets.plan(server, request))


@route("POST", P.API_PREFIX + "/assets/{sha256}/commit", auth="app")
async def commit_asset_upload(server: JobServer, request: Request, sha256: str) -> Response:
    return JSONResponse(await assets.commit(server, request, sha256, "PUT /api/v1/assets"), 201)


@route("GET", P.API_PREFIX + "/workers", auth="app")
async def workers(server: JobServer, request: Request) -> Response:
    return JSONResponse({"workers": await db(server.store.list_workers)})


def _content_type(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "exr": "image/x-exr",
            "mp4": "video/mp4", "mkv": "video/x-matroska"}.get(suffix, "application/octet-stream")
