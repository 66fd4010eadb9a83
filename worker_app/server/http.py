"""The job server's HTTP plumbing on the standard library: routes, tokens, JSON and file bodies, errors.

Why the standard library: the server's needs are a few JSON routes, streamed file bodies and long polls
that each hold a thread while they wait. ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive does all of
that with no dependency to install, pin or patch. See docs/server.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from worker_app import __version__
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.server.store import Canceled, Conflict, LeaseLost, NotFound

log = logging.getLogger("homefarm.server")


class HttpError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field

    def body(self) -> dict:
        out = {"error": self.error, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


ROUTES: list[tuple[str, re.Pattern, str, str]] = []


def route(method: str, pattern: str, auth: str):
    """Registers a handler method for ``method`` on ``pattern`` (``{name}`` matches one segment)."""
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(func):
        ROUTES.append((method, regex, auth, func.__name__))
        func.route = (method, pattern)
        return func
    return register


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR would let another program bind the same port and take our requests: there
    # the port is ours alone (SO_EXCLUSIVEADDRUSE) instead.
    allow_reuse_address = sys.platform != "win32"
    request_queue_size = 128

    def server_bind(self):
        if sys.platform == "win32":
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()


class Handler(BaseHTTPRequestHandler):
    """Routing, authorization, bodies and errors; the routes themselves are in ``app.py``."""
    protocol_version = "HTTP/1.1"  # keep-alive: a worker's claims reuse one connection
    server_version = f"homefarm/{__version__}"
    timeout = 120  # a client that stops sending mid-request cannot hold a thread forever

    @property
    def app(self):
        return self.server.app

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm and the client's delayed
        # ACK that stalls every answer by about 40 ms on loopback. Claims must reach a worker in ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    # -- dispatch -----------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self._body_read = False
        try:
            for route_method, regex, auth, name in ROUTES:
                match = regex.match(parts.path)
                if match and route_method == method:
                    self._authorize(auth)
                    getattr(self, name)(**match.groupdict())
                    break
            else:
                if any(regex.match(parts.path) for _, regex, _, _ in ROUTES):
                    raise HttpError(405, "method_not_allowed", f"{method} is not allowed here")
                raise HttpError(404, "not_found", f"no route {parts.path}")
        except HttpError as error:
            self._drain()
            self._json(error.status, error.body())
        except P.ValidationError as error:
            self._drain()
            self._json(422, error.to_json())
        except Canceled as error:
            self._drain()
            self._json(409, {"error": "canceled", "message": str(error)})
        except LeaseLost as error:
            self._drain()
            self._json(409, {"error": "lease_lost", "message": str(error)})
        except NotFound as error:
            self._drain()
            self._json(404, {"error": "not_found", "message": str(error)})
        except Conflict as error:
            self._drain()
            self._json(409, {"error": "conflict", "message": str(error)})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("internal error on %s %s", method, parts.path)
            self.close_connection = True
            self._json(500, {"error": "internal", "message": "internal server error; see the server log"})

    def _authorize(self, kind: str) -> None:
        if kind == "none":
            return
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not self.app.store.check_token(header[7:].strip(), kind):
            raise HttpError(401, "unauthorized", f"a valid {kind} token is required "
                                                 "(Authorization: Bearer ...)")

    # -- bodies -------------------------------------------------------------------------------

    def _length(self, limit: int) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HttpError(411, "length_required", "send a Content-Length; chunked bodies are not accepted")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise HttpError(400, "bad_request", "Content-Length is not a number") from None
        if length < 0:
            raise HttpError(400, "bad_request", "Content-Length is negative")
        if length > limit:
            self.close_connection = True
            raise HttpError(413, "too_large", f"the body is over {limit} bytes")
        return length

    def _drain(self) -> None:
        """Reads an unread small body so the kept-alive connection stays in step; else closes it."""
        if self._body_read:
            return
        self._body_read = True
        try:
            length = int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            length = -1
        if 0 < length <= C.MAX_SPEC_BYTES:
            self.rfile.read(length)
        elif length != 0:
            self.close_connection = True

    def _read_json(self):
        length = self._length(C.MAX_SPEC_BYTES)
        raw = self.rfile.read(length) if length else b""
        self._body_read = True
        if not raw:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise HttpError(400, "bad_json", f"the body is not valid UTF-8 JSON: {error}") from None

    def _json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _receive_file(self, dest: Path, expected_sha: str | None, limit: int) -> tuple[str, int]:
        """Streams the body into ``dest`` through a temp file, checking its SHA-256."""
        length = self._length(limit)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.app.tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(C.CHUNK_SIZE, remaining))
                    if not chunk:
                        self.close_connection = True
                        raise HttpError(400, "short_body", "the connection closed before the whole body came")
                    digest.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
            self._body_read = True
            sha = digest.hexdigest()
            if expected_sha is not None and sha != expected_sha:
                raise HttpError(422, "invalid", f"the body's SHA-256 is {sha}, not the {expected_sha} "
                                                "announced", field="X-Content-SHA256")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            return sha, length
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _send_file(self, path: Path, content_type: str) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as source:
            shutil.copyfileobj(source, self.wfile, C.CHUNK_SIZE)

    @staticmethod
    def _job_id(job_id: str) -> int:
        if not job_id.isdigit() or len(job_id) > 18:
            raise HttpError(404, "not_found", f"no job {job_id!r}")
        return int(job_id)

    def _lease_header(self) -> str:
        lease_id = self.headers.get("X-Lease-Id")
        if not lease_id:
            raise HttpError(422, "invalid", "the X-Lease-Id header is required", field="X-Lease-Id")
        return lease_id

