"""The job server's HTTP plumbing on Starlette: routes, tokens, JSON and file bodies, errors as JSON.

Handlers are coroutines; every database call runs on a worker thread (``db``), so a claim that waits costs
a coroutine, not a thread. See docs/server.md for why Starlette on uvicorn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker_app.protocol import limits
from worker_app import protocol as P
from worker_app.server.storage import StorageError
from worker_app.server.store import Canceled, Conflict, LeaseLost, NotFound

if TYPE_CHECKING:
    from worker_app.server.app import JobServer

log = logging.getLogger("homefarm.server")

db = run_in_threadpool  # ``await db(store.method, args...)``: the store is blocking


class HttpError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field
        self.headers = headers

    def body(self) -> dict[str, Any]:
        out = {"error": self.error, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


Handler = Callable[..., Awaitable[Response]]
ROUTES: list[tuple[str, str, str, Handler]] = []  # (method, path, auth, handler): the API, as documented
PAGES: list[tuple[str, str, str, Handler]] = []  # the dashboard's pages and its own JSON (server/dashboard.py)


H = TypeVar("H", bound=Handler)


def route(method: str, path: str, auth: str, table: list[tuple[str, str, str, Handler]] = ROUTES
          ) -> Callable[[H], H]:
    """Registers a handler for ``method`` on ``path`` (``{name}`` matches one segment), in the API's table
    unless told another."""

    def register(func: H) -> H:
        table.append((method, path, auth, func))
        return func
    return register


def starlette_routes(server: JobServer) -> list[Route]:
    """The registered handlers as Starlette routes, each wrapped with authorization and the error mapping."""
    grouped: dict[str, dict[str, tuple[str, Handler]]] = {}
    for method, path, auth, handler in ROUTES + PAGES:
        grouped.setdefault(path, {})[method] = (auth, handler)
    return [Route(path, _endpoint(server, methods), methods=list(methods)) for path, methods in grouped.items()]


def _endpoint(server: JobServer,
              methods: dict[str, tuple[str, Handler]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        auth, handler = methods[request.method if request.method != "HEAD" else "GET"]
        started = time.monotonic()
        try:
            if not server.origin.admits(request.url.path, request.headers.get):
                raise HttpError(403, "forbidden", "this server answers only through its CDN")
            await _authorize(server, request, auth)
            response = await handler(server, request, **request.path_params)
        except HttpError as error:
            response = JSONResponse(error.body(), error.status, headers=error.headers)
        except P.ValidationError as error:
            response = JSONResponse(error.to_json(), 422)
        except Canceled as error:
            response = JSONResponse({"error": "canceled", "message": str(error)}, 409)
        except LeaseLost as error:
            response = JSONResponse({"error": "lease_lost", "message": str(error)}, 409)
        except NotFound as error:
            response = JSONResponse({"error": "not_found", "message": str(error)}, 404)
        except Conflict as error:
            response = JSONResponse({"error": "conflict", "message": str(error)}, 409)
        except StorageError as error:
            body = {"error": error.code, "message": str(error), **({"field": error.field} if error.field else {})}
            response = JSONResponse(body, 422)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as error:
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
            response = JSONResponse({"error": "unavailable", "message": "the job server cannot reach its "
                                     "database right now; try again shortly"}, 503, headers={"Retry-After": "5"})
        except Exception as error:
            if _is_storage_outage(error):
                log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, error)
                return JSONResponse({"error": "unavailable", "message": "the job server cannot reach its "
                                     "storage right now; try again shortly"}, 503, headers={"Retry-After": "5"})
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = JSONResponse({"error": "internal", "message": "internal server error; see the server log"},
                                    500)
        log.debug("%s %s %d %.1f ms", request.method, request.url.path, response.status_code,
                  (time.monotonic() - started) * 1000)
        return response
    return endpoint


def _is_storage_outage(error: Exception) -> bool:
    """The S3 store did not answer, or answered 5xx (botocore is imported only with an S3 store)."""
    module = type(error).__module__
    if not module.startswith("botocore"):
        return False
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return not hasattr(error, "response") or status >= 500


async def _authorize(server: JobServer, request: Request, kind: str) -> None:
    if kind == "none":
        return
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    # A token answered lately is checked from memory, on the event loop; another one on a thread.
    known = server.store.known_token(token, kind) if token else False
    if known is None:
        known = await db(server.store.check_token, token, kind)
    if not known:
        raise HttpError(401, "unauthorized", f"a valid {kind} token is required (Authorization: Bearer ...)")


# -- bodies -------------------------------------------------------------------------------------

def content_length(request: Request, limit: int) -> int:
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "length_required", "send a Content-Length; chunked bodies are not accepted",
                        headers={"Connection": "close"})
    try:
        length = int(request.headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad_request", "Content-Length is not a number") from None
    if length < 0:
        raise HttpError(400, "bad_request", "Content-Length is negative")
    if length > limit:
        raise HttpError(413, "too_large", f"the body is over {limit} bytes", headers={"Connection": "close"})
    return length


async def read_json(request: Request) -> Any:
    content_length(request, limits.MAX_SPEC_BYTES)
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise HttpError(400, "bad_json", f"the body is not valid UTF-8 JSON: {error}") from None


async def receive_file(request: Request, tmp_dir: Path, keep: Callable[[Path, str], None],
                       expected_sha: str | None, limit: int) -> tuple[str, int]:
    """Streams the body into a temp file, checks its length and SHA-256, then hands it to ``keep(path, sha)``
    (on a thread: it may move the file into a folder or send it to a bucket)."""
    length = content_length(request, limit)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > length:
                    raise HttpError(400, "bad_request", "the body is longer than its Content-Length")
                digest.update(chunk)
                out.write(chunk)
        if received < length:
            raise HttpError(400, "short_body", "the connection closed before the whole body came")
        sha = digest.hexdigest()
        if expected_sha is not None and sha != expected_sha:
            raise HttpError(422, "invalid", f"the body's SHA-256 is {sha}, not the {expected_sha} announced",
                            field="X-Content-SHA256")
        await db(keep, Path(tmp), sha)
        return sha, length
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


async def drain(request: Request, limit: int) -> None:
    """Reads and drops a body already stored, so an idempotent re-upload keeps the connection."""
    content_length(request, limit)
    async for _ in request.stream():
        pass


def job_id_of(job_id: str) -> int:
    if not job_id.isdigit() or len(job_id) > 18:
        raise HttpError(404, "not_found", f"no job {job_id!r}")
    return int(job_id)


def lease_header(request: Request) -> str:
    lease_id = request.headers.get("x-lease-id")
    if not lease_id:
        raise HttpError(422, "invalid", "the X-Lease-Id header is required", field="X-Lease-Id")
    return lease_id


def empty(status: int) -> Response:
    return Response(status_code=status)
