"""The job server: the worker API and the web app's API (docs/protocol.md) as Starlette routes on uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse

from worker_app import __version__
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.server.http import (HttpError, db, drain, empty, job_id_of, lease_header, read_json, receive_file,
                                    route, starlette_routes)
from worker_app.server.metrics import Metrics
from worker_app.server.store import Store
from worker_app.server.wakeups import Wakeups

log = logging.getLogger("homefarm.server")

MAX_OUTPUT_BYTES = 64 * 1024**3
MAX_ASSET_BYTES = C.MAX_SCENE_SIZE
SHUTDOWN_GRACE_S = 30  # in-flight requests get this long after SIGTERM, as a container platform allows


class JobServer:
    """A job server: ``JobServer(data_dir).start()`` serves on a thread; ``serve_forever()`` in this one."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0, lease_ttl: float = C.LEASE_TTL,
                 claim_wait_max: float = C.CLAIM_WAIT_MAX, latest_worker_version: str | None = None,
                 min_worker_version: str | None = None, db_url: str | None = None, metrics: bool = False,
                 db_pool: int = 10):
        self.data_dir = Path(data_dir)
        self.outputs_dir = self.data_dir / "outputs"
        self.assets_dir = self.data_dir / "assets"
        self.tmp_dir = self.data_dir / "tmp"
        for folder in (self.outputs_dir, self.assets_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.sock = _bind(host, port)  # first, so that a taken port fails before anything else is made
        self.store = Store(db_url or f"sqlite:///{self.data_dir / 'homefarm-server.sqlite3'}", lease_ttl=lease_ttl,
                           pool_size=db_pool)
        self.claim_wait_max = claim_wait_max
        # Told to workers at sign-on: the tray shows "a new version is available", and a worker older
        # than the minimum stops claiming and asks its owner to update.
        self.latest_worker_version = latest_worker_version
        self.min_worker_version = min_worker_version
        self.metrics = Metrics(self.store) if metrics else None
        self.wakeups = Wakeups(self.store)
        self.asgi = Starlette(routes=starlette_routes(self), lifespan=self._lifespan,
                              exception_handlers={HTTPException: _http_exception})
        config = uvicorn.Config(self.asgi, lifespan="on", log_config=None, access_log=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S, timeout_keep_alive=75,
                                server_header=False, date_header=True)
        self.uvicorn = _Uvicorn(config, on_exit=self.begin_shutdown)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    @asynccontextmanager
    async def _lifespan(self, _app):
        self._loop = asyncio.get_running_loop()
        await self.wakeups.start()
        try:
            yield
        finally:
            await self.wakeups.stop()

    def begin_shutdown(self) -> None:
        """Stops offering jobs and answers every waiting claim now; in-flight requests finish."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.wakeups.close)
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
            # uvicorn handles the signal, then raises it again under the handler it found; the process
            # then exits 0 after a graceful shutdown instead of dying of the signal it already handled.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: None)
        self.uvicorn.run(sockets=[self.sock])
        log.info("stopped")

    def stop(self) -> None:
        self.begin_shutdown()
        self.uvicorn.should_exit = True
        if self._thread:
            self._thread.join(SHUTDOWN_GRACE_S + 5)
        self.sock.close()
        self.store.close()

    def ensure_tokens(self) -> dict[str, str]:
        """On first start, makes one app and one worker token; returns them (shown once)."""
        if self.store.has_tokens():
            return {}
        return {kind: self.store.create_token(kind, "first start") for kind in ("app", "worker")}

    def output_path(self, job_id: int, name: str) -> Path:
        return self.outputs_dir / str(job_id) / P.check_output_name(name)


class _Uvicorn(uvicorn.Server):
    """Tells the app of SIGTERM first, so that waiting claims are answered before connections drain."""

    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
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
async def health(server: JobServer, request: Request):
    """Liveness: the process answers (the database is not asked)."""
    return JSONResponse({"ok": True, "version": __version__, "protocol": P.PROTOCOL_VERSION})


@route("GET", "/api/ready", auth="none")
async def ready(server: JobServer, request: Request):
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
async def metrics(server: JobServer, request: Request):
    if server.metrics is None:
        raise HttpError(404, "not_found", "metrics are off; start the server with --metrics")
    return PlainTextResponse(await db(server.metrics.render), media_type="text/plain; version=0.0.4")


# -- the worker API -----------------------------------------------------------------------------

@route("POST", P.WORKER_PREFIX + "/hello", auth="worker")
async def hello(server: JobServer, request: Request):
    hello = P.Hello.parse(await read_json(request))
    worker_id = await db(server.store.register_worker, hello.name, hello.to_json())
    reply = P.HelloReply(worker_id, server_version=__version__, claim_wait_max_s=server.claim_wait_max,
                         lease_ttl_s=server.store.lease_ttl, heartbeat_interval_s=server.store.heartbeat_interval,
                         latest_worker_version=server.latest_worker_version or None,
                         min_worker_version=server.min_worker_version or None)
    return JSONResponse(reply.to_json())


@route("GET", P.WORKER_PREFIX + "/ping", auth="worker")
async def ping(server: JobServer, request: Request):
    return JSONResponse({"ok": True, "protocol": P.PROTOCOL_VERSION})


async def _worker_of(server: JobServer, request: Request) -> str:
    body = await read_json(request)
    P.check_object(body, "", {"worker_id"}, set())
    return P.check_str(body["worker_id"], "worker_id", max_len=64)


@route("POST", P.WORKER_PREFIX + "/jobs/claim", auth="worker")
async def claim(server: JobServer, request: Request):
    worker_id = await _worker_of(server, request)
    if not await db(server.store.worker_exists, worker_id):
        raise HttpError(422, "invalid", "unknown worker; POST /hello first", field="worker_id")
    try:
        wait = float(request.query_params.get("wait", C.CLAIM_WAIT_DEFAULT))
    except ValueError:
        raise HttpError(422, "invalid", "wait must be a number of seconds", field="wait") from None
    wait = min(max(wait, 0.0), server.claim_wait_max)
    claimed = await _wait_for_job(server, request, worker_id, wait)
    if server.metrics:
        server.metrics.claimed(claimed is not None)
    if claimed is None:
        log.debug("claim by %s: no job", worker_id)
        return empty(204)
    log.info("claim by %s: job %s, attempt %d", worker_id, claimed.job_id, claimed.attempt)
    return JSONResponse({"job_id": str(claimed.job_id), "lease_id": claimed.lease_id,
                         "ttl_s": server.store.first_lease_ttl, "expires_at": claimed.expires,
                         "attempt": claimed.attempt, "spec": claimed.spec, "outputs": claimed.outputs})


async def _wait_for_job(server: JobServer, request: Request, worker_id: str, wait: float):
    """Claims at once, else waits until woken (a job, a cancel, shutdown), the wait is over or the client left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        with server.wakeups.waiter(worker_id) as waiter:
            while not waiter.canceled:
                claimed = await db(server.store.claim, worker_id)
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


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@route("POST", P.WORKER_PREFIX + "/jobs/claim/cancel", auth="worker")
async def cancel_claim(server: JobServer, request: Request):
    worker_id = await _worker_of(server, request)
    waiting_here = server.wakeups.waiting(worker_id)
    await db(server.store.cancel_claims, worker_id)  # every server process hears it
    log.info("claims of %s canceled by the worker%s", worker_id, "" if waiting_here else " (none waiting here)")
    return JSONResponse({"canceled": waiting_here})


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/heartbeat", auth="worker")
async def heartbeat(server: JobServer, request: Request, job_id: str):
    body = await read_json(request)
    progress = P.parse_heartbeat(body)
    cancel, ttl = await db(server.store.heartbeat, job_id_of(job_id), body["lease_id"], progress.to_json())
    return JSONResponse(P.HeartbeatReply(cancel, ttl).to_json())


@route("PUT", P.WORKER_PREFIX + "/jobs/{job_id}/outputs/{name:path}", auth="worker")
async def put_output(server: JobServer, request: Request, job_id: str, name: str):
    job = job_id_of(job_id)
    P.check_output_name(name)
    lease_id = lease_header(request)
    sha = P.check_sha256(request.headers.get("x-content-sha256", ""), "X-Content-SHA256")
    existing = await db(server.store.upload_target, job, lease_id, name)
    dest = server.output_path(job, name)
    if existing and existing["sha256"] == sha and dest.is_file():
        await drain(request, MAX_OUTPUT_BYTES)
        return JSONResponse({"name": name, "sha256": sha, "size": existing["size"], "stored": False})
    sha, size = await receive_file(request, server.tmp_dir, dest, sha, MAX_OUTPUT_BYTES)
    await db(server.store.add_output, job, lease_id, name, sha, size)
    return JSONResponse({"name": name, "sha256": sha, "size": size, "stored": True}, 201)


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/complete", auth="worker")
async def complete(server: JobServer, request: Request, job_id: str):
    body = await read_json(request)
    done = P.CompleteReport.parse(body)
    await db(server.store.complete, job_id_of(job_id), body["lease_id"], done.outputs, done.stats, done.warnings)
    if server.metrics:
        server.metrics.finished("done", done.stats)
    log.info("job %s done: %d output(s)", job_id, len(done.outputs))
    return JSONResponse({"state": "done"})


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/fail", auth="worker")
async def fail(server: JobServer, request: Request, job_id: str):
    body = await read_json(request)
    failure = P.FailReport.parse(body)
    state = await db(server.store.fail, job_id_of(job_id), body["lease_id"], failure.reason, failure.log_tail,
                     failure.retryable, failure.needs_blender)
    if server.metrics and state == "failed":
        server.metrics.finished("failed", None)
    log.info("job %s failed (%s): %s", job_id, state, failure.reason)
    return JSONResponse({"state": state})


@route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/release", auth="worker")
async def release(server: JobServer, request: Request, job_id: str):
    body = await read_json(request)
    reason = P.ReleaseReport.parse(body).reason
    await db(server.store.release, job_id_of(job_id), body["lease_id"], reason)
    log.info("job %s released: %s", job_id, reason)
    return JSONResponse({"state": "queued"})


@route("GET", P.WORKER_PREFIX + "/assets/{sha256}", auth="worker")
async def get_asset(server: JobServer, request: Request, sha256: str):
    path = server.assets_dir / P.check_sha256(sha256, "sha256")
    if not path.is_file():
        raise HttpError(404, "not_found", f"no asset {sha256}")
    return FileResponse(path, media_type="application/octet-stream")


# -- the web app's API --------------------------------------------------------------------------

@route("POST", P.API_PREFIX + "/jobs", auth="app")
async def submit(server: JobServer, request: Request):
    spec = P.JobSpec.parse(await read_json(request))
    return JSONResponse(await db(server.store.submit_view, spec.to_json(), spec.priority, spec.max_attempts,
                                 spec.tag), 201)


@route("GET", P.API_PREFIX + "/jobs", auth="app")
async def list_jobs(server: JobServer, request: Request):
    state = request.query_params.get("state")
    if state is not None:
        P.check_choice(state, "state", P.JOB_STATES)
    try:
        limit = min(max(int(request.query_params.get("limit", 100)), 1), 1000)
    except ValueError:
        raise HttpError(422, "invalid", "limit must be an integer", field="limit") from None
    return JSONResponse({"jobs": await db(server.store.list, state, limit)})


@route("GET", P.API_PREFIX + "/jobs/{job_id}", auth="app")
async def get_job(server: JobServer, request: Request, job_id: str):
    return JSONResponse(await db(server.store.get, job_id_of(job_id)))


@route("POST", P.API_PREFIX + "/jobs/{job_id}/cancel", auth="app")
async def cancel(server: JobServer, request: Request, job_id: str):
    return JSONResponse(await db(server.store.cancel, job_id_of(job_id)))


@route("GET", P.API_PREFIX + "/jobs/{job_id}/outputs/{name:path}", auth="app")
async def get_output(server: JobServer, request: Request, job_id: str, name: str):
    job = job_id_of(job_id)
    P.check_output_name(name)
    path = server.output_path(job, name)
    if await db(server.store.output, job, name) is None or not path.is_file():
        raise HttpError(404, "not_found", f"job {job} has no output {name}")
    return FileResponse(path, media_type=_content_type(name))


@route("PUT", P.API_PREFIX + "/assets", auth="app")
async def put_asset(server: JobServer, request: Request):
    expected = request.headers.get("x-content-sha256")
    if expected is not None:
        P.check_sha256(expected, "X-Content-SHA256")
    fd, tmp = tempfile.mkstemp(dir=server.tmp_dir, prefix="asset-")
    os.close(fd)
    try:
        sha, size = await receive_file(request, server.tmp_dir, Path(tmp), expected, MAX_ASSET_BYTES)
        os.replace(tmp, server.assets_dir / sha)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return JSONResponse({"sha256": sha, "size": size, "url": f"{P.WORKER_PREFIX}/assets/{sha}"}, 201)


@route("GET", P.API_PREFIX + "/workers", auth="app")
async def workers(server: JobServer, request: Request):
    return JSONResponse({"workers": await db(server.store.list_workers)})


def _content_type(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "exr": "image/x-exr",
            "mp4": "video/mp4", "mkv": "video/x-matroska"}.get(suffix, "application/octet-stream")
