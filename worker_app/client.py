"""The worker's side of the protocol: one method per endpoint, each HTTP status handled on purpose.

- 200/201: the answer; 204 on a claim: no work this time.
- 409/410: the lease is lost (expired, taken over, canceled): ``LeaseLost``, drop the job.
- 422/400/413: the server refuses the call as malformed: ``Rejected``, never retried.
- 401/403: ``Unauthorized``: sign in again.
- 5xx, 429, connection errors, timeouts: ``Unreachable``, back off and retry.
Every request has a connect and a read timeout, so a silent server cannot hang the worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from worker_app import __version__
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.config import check_server_url, is_loopback

log = logging.getLogger("homefarm.client")


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}

    @property
    def field(self) -> str | None:
        """The request field the server named as at fault (its error body's ``field``), if any."""
        field = self.body.get("field")
        return field if isinstance(field, str) else None


class Held(Exception):
    """The server holds this worker (its dashboard said so): no job until ``until`` (Unix time), or until
    released when None."""

    def __init__(self, until: float | None):
        super().__init__("held by the server" + (f" until {until:.0f}" if until else " until it releases it"))
        self.until = until


class Unreachable(ClientError):
    """The server could not be reached or failed (5xx); worth retrying later."""


class LeaseLost(ClientError):
    """The job's lease is no longer ours; stop working on it and claim again."""

    @property
    def canceled(self) -> bool:
        """The web app canceled the job (rather than the lease expiring or going to another worker)."""
        return self.body.get("error") == "canceled"


class GatewayCut(Unreachable):
    """A proxy in front of the server (a CDN, a load balancer) ended a waiting claim with 502/504 after
    ``seconds``: the server is fine, the wait was longer than the proxy allows."""

    def __init__(self, message: str, status: int, seconds: float):
        super().__init__(message, status)
        self.seconds = seconds


class Rejected(ClientError):
    """The server refused the call as malformed; retrying the same call cannot help."""


class Unauthorized(ClientError):
    """The token was refused."""


class NotFound(ClientError):
    pass


class UploadGone(Rejected):
    """The storage no longer has the upload begun (expired, or refused its parts): begin it again."""


def backoff_delay(attempt: int, base: float = C.BACKOFF_BASE, cap: float = C.BACKOFF_CAP) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries never synchronize."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


# -- hard deadlines ----------------------------------------------------------------------------
# requests' read timeout bounds each wait for a byte, not the whole answer: a server that sends one byte
# every few seconds would hold a worker forever. Each connection a thread takes from the pool is noted,
# and a timer shuts its socket down when the exchange's deadline passes.

_active: dict[int, object] = {}


class _TrackedHTTPPool(urllib3.HTTPConnectionPool):
    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _active[threading.get_ident()] = conn
        return conn


class _TrackedHTTPSPool(urllib3.HTTPSConnectionPool):
    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _active[threading.get_ident()] = conn
        return conn


def os_trust_context() -> ssl.SSLContext:
    """A TLS context that verifies against the OS's own certificate store (and certifi's, which requests adds).

    An antivirus that scans HTTPS (Avast, AVG, Kaspersky, ESET…) or a company proxy re-signs every site with a
    root it adds to the Windows or macOS store only: a browser trusts it, certifi's bundle does not, and every
    connection would fail with "unable to get local issuer certificate" (curl#11268). truststore asks the OS,
    as the browser does; verification stays on, chain and host name alike."""
    import truststore
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _DeadlineAdapter(HTTPAdapter):
    def __init__(self, ssl_context: ssl.SSLContext | None = None, **kwargs):
        self._ssl_context = ssl_context  # the OS store's, for https; set before the pool manager is made
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._ssl_context is not None:
            kwargs.setdefault("ssl_context", self._ssl_context)
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}

    def proxy_manager_for(self, proxy, **kwargs):
        if self._ssl_context is not None:
            kwargs.setdefault("ssl_context", self._ssl_context)
        return super().proxy_manager_for(proxy, **kwargs)


@contextlib.contextmanager
def _deadline(seconds: float):
    """Cuts this thread's connection when ``seconds`` have passed; yields an Event set if it did."""
    thread = threading.get_ident()
    expired = threading.Event()

    def cut():
        sock = getattr(_active.get(thread), "sock", None)
        if sock is not None:
            expired.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        _active.pop(thread, None)


def _error_for(response: requests.Response) -> ClientError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("message") or response.reason or ""
    if body.get("field"):
        detail = f"{body['field']}: {detail}"
    message = f"{response.request.method} {urlsplit(response.url).path}: {response.status_code} {detail}"
    status = response.status_code
    if status in (409, 410):
        return LeaseLost(message, status, body)
    if status in (401, 403):
        return Unauthorized(message, status, body)
    if status == 404:
        return NotFound(message, status, body)
    if status == 429 or status >= 500:
        return Unreachable(message, status, body)
    return Rejected(message, status, body)


class WorkerClient:
    def __init__(self, server_url: str, token: str, allow_insecure_http: bool = False):
        check_server_url(server_url, allow_insecure_http)
        self.allow_insecure_http = allow_insecure_http
        self.server_url = server_url.rstrip("/")
        self._origin = _origin(self.server_url)
        self._token = token
        # Set by hello when the server keeps outputs in S3: outputs go straight there, in parts of this size.
        self.upload_part_size: int | None = None
        self.session = requests.Session()
        self.session.mount("http://", _DeadlineAdapter())
        self.session.mount("https://", _DeadlineAdapter(os_trust_context()))
        self.session.headers["User-Agent"] = f"homefarm/{__version__}"
        # TLS verification is requests' default; nothing here ever turns it off.

    def close(self) -> None:
        self.session.close()

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self._token}"}

    def _request(self, method: str, path: str, *, read_timeout: float | None = None,
                 deadline: float | None = None, **kwargs) -> requests.Response:
        read_timeout = C.READ_TIMEOUT if read_timeout is None else read_timeout
        deadline = C.REQUEST_DEADLINE if deadline is None else deadline
        url = self.server_url + P.WORKER_PREFIX + path
        headers = {**self._auth(), **kwargs.pop("headers", {})}
        with _deadline(deadline) as expired:
            try:
                response = self.session.request(method, url, headers=headers,
                                                timeout=(C.CONNECT_TIMEOUT, read_timeout), **kwargs)
            except requests.RequestException as error:
                if expired.is_set():
                    raise Unreachable(f"{method} {path}: no complete answer within {deadline:g} s") from None
                raise _unreachable(error, method, url) from None
        if response.status_code >= 300:
            raise _error_for(response)
        return response

    def _json(self, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise Unreachable(f"{response.request.method} {urlsplit(response.url).path}: "
                              "the server answered with something that is not JSON") from None
        if not isinstance(body, dict):
            raise Unreachable("the server answered with JSON that is not an object")
        return body

    # -- endpoints ----------------------------------------------------------------------------

    def hello(self, hello: P.Hello) -> P.HelloReply:
        try:
            reply = P.HelloReply.parse(self._json(self._request("POST", "/hello", json=hello.to_json())))
        except P.ValidationError as error:
            raise Unreachable(f"the server sent a malformed hello reply: {error}") from None
        self.upload_part_size = reply.upload_part_size
        return reply

    def ping(self) -> dict:
        """Checks the token without side effects."""
        return self._json(self._request("GET", "/ping"))

    def claim(self, worker_id: str, wait: float) -> P.Lease | None:
        started = time.monotonic()
        try:
            response = self._request("POST", "/jobs/claim", params={"wait": f"{wait:g}"},
                                     json={"worker_id": worker_id}, read_timeout=wait + C.CLAIM_READ_MARGIN,
                                     deadline=wait + C.REQUEST_DEADLINE)
        except Unreachable as error:
            seconds = time.monotonic() - started
            if error.status in (502, 504) and seconds >= C.GATEWAY_CUT_MIN:
                raise GatewayCut(str(error), error.status, seconds) from None
            raise
        if response.status_code == 204:
            held = response.headers.get(P.HELD_HEADER)
            if held is not None:
                raise Held(None if held == "release" else _number_or_none(held))
            return None
        try:
            return P.Lease.parse(self._json(response))
        except P.ValidationError as error:
            raise Unreachable(f"the server sent a malformed lease: {error}") from None

    def cancel_claim(self, worker_id: str) -> bool:
        """Ends this worker's waiting claim at once with no job (the owner paused, or the worker quits)."""
        return bool(self._json(self._request("POST", "/jobs/claim/cancel",
                                             json={"worker_id": worker_id})).get("canceled"))

    def report_state(self, state: P.WorkerState) -> None:
        """Tells the server what this worker does now (paused and why, warm), for its dashboard."""
        self._json(self._request("POST", "/state", json=state.to_json()))

    def heartbeat(self, job_id: str, lease_id: str, progress: P.Progress) -> P.HeartbeatReply:
        body = self._json(self._request("POST", f"/jobs/{job_id}/heartbeat",
                                        json={"lease_id": lease_id, "progress": progress.to_json()}))
        try:
            return P.HeartbeatReply.parse(body)
        except P.ValidationError as error:
            raise Unreachable(f"the server sent a malformed heartbeat reply: {error}") from None

    def upload(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str,
               state: dict[str, Any] | None = None,
               save: Callable[[dict[str, Any]], None] | None = None) -> P.StoredOutput:
        """Sends one output file: straight to the server's S3 storage when it said so at hello, else through the
        server. ``state`` is what a direct upload needs to resume (its id, the parts sent); ``save(state)`` keeps
        it after each part, so that a crash or an expired URL costs at most one part."""
        if state and state.get("part_size") and not self.upload_part_size:
            # A direct upload begun before a restart, sent before this run's hello: resume it as it began (the
            # server answers "direct": false if it no longer keeps files in S3).
            self.upload_part_size = int(state["part_size"])
        if self.upload_part_size:
            return self._upload_direct(job_id, lease_id, name, Path(path), sha256,
                                       state if state is not None else {}, save or (lambda _state: None))
        return self._put_output(job_id, lease_id, name, Path(path), sha256)

    def _upload_direct(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str,
                       state: dict[str, Any], save: Callable[[dict[str, Any]], None]) -> P.StoredOutput:
        """Plan (presigned URLs), PUT each part to storage, commit: the server checks size and SHA-256."""
        size = path.stat().st_size
        base = f"/jobs/{job_id}/outputs/{name}"
        for _ in range(3):
            if state.get("part_size") != self.upload_part_size or not state.get("parts"):
                state.clear()
                state.update(part_size=self.upload_part_size, parts=part_hashes(path, self.upload_part_size),
                             etags={})
            ask = {"lease_id": lease_id, "sha256": sha256, "size": size, "parts": state["parts"],
                   "upload_id": state.get("upload_id"), "done": [int(n) for n in state["etags"]]}
            answer = self._json(self._request("POST", base + "/uploads", json=ask))
            try:
                plan = P.UploadPlan.parse(answer)
            except P.ValidationError as error:
                raise Unreachable(f"the server sent a malformed upload plan: {error}") from None
            if plan.stored:
                return _reply(P.StoredOutput, answer, "upload")
            if not plan.direct:
                return self._put_output(job_id, lease_id, name, path, sha256)
            state["upload_id"] = plan.upload_id
            save(state)
            try:
                for part in plan.parts:
                    state["etags"][str(part.number)] = self._put_part(path, part, state["part_size"])
                    save(state)
            except _UrlExpired:
                continue  # ask again: new URLs for the parts not sent yet
            except UploadGone as error:
                log.warning("output %s of job %s: %s; uploading it again", name, job_id, error)
                state.clear()
                save(state)
                continue
            commit = {"lease_id": lease_id, "sha256": sha256, "size": size, "parts": state["parts"],
                      "upload_id": state.get("upload_id"), "etags": state["etags"]}
            try:
                return _reply(P.StoredOutput, self._json(self._request("POST", base + "/commit", json=commit)),
                              "upload")
            except Rejected as error:
                if error.body.get("error") != "upload_gone":
                    raise
                log.warning("output %s of job %s: %s; uploading it again", name, job_id, error)
                state.clear()
                save(state)
        raise Unreachable(f"{name}: the storage kept refusing the upload's URLs")

    def _put_part(self, path: Path, part: P.UploadPart, part_size: int) -> str:
        """PUTs one part to its presigned URL (no token: storage is another origin); returns its ETag."""
        number, url, headers = part.number, part.url, part.headers
        self._check_storage_url(url, "upload")
        with open(path, "rb") as handle:
            handle.seek((number - 1) * part_size)
            data = handle.read(part_size)
        limit = C.REQUEST_DEADLINE + len(data) / C.MIN_TRANSFER_RATE
        with _deadline(limit) as expired:
            try:
                response = self.session.put(url, data=data, headers=headers,
                                            timeout=(C.CONNECT_TIMEOUT, C.UPLOAD_READ_TIMEOUT))
            except requests.RequestException as error:
                if expired.is_set():
                    raise Unreachable(f"storage: part {number} not sent within {limit:g} s") from None
                raise _unreachable(error, "PUT", url) from None
        if response.status_code == 403:
            raise _UrlExpired()
        if response.status_code == 404:
            raise UploadGone(f"storage: part {number}: the upload is gone", 404, {"error": "upload_gone"})
        if response.status_code == 429 or response.status_code >= 500:
            raise Unreachable(f"storage: part {number}: {response.status_code}", response.status_code)
        if response.status_code >= 300:
            raise Rejected(f"storage refused part {number}: {response.status_code} {response.text[:200]}",
                           response.status_code)
        return response.headers.get("ETag", "")

    def _check_storage_url(self, url: str, what: str) -> None:
        """A URL from the server is untrusted input: https, or plain http only to loopback unless the owner
        allowed it (an output must not cross a network bare either)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or (parts.scheme == "http" and not is_loopback(parts.hostname)
                                                     and not self.allow_insecure_http):
            raise Rejected(f"the server gave a {parts.scheme} {what} URL to {parts.hostname}; homefarm sends and "
                           "fetches only over https (plain http to this PC alone)")

    def _put_output(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str) -> P.StoredOutput:
        """Streams one output file from disk to the server; it checks it against ``sha256``."""
        size = Path(path).stat().st_size
        with open(path, "rb") as body:
            return _reply(P.StoredOutput, self._json(self._request(
                "PUT", f"/jobs/{job_id}/outputs/{name}", data=body,
                headers={"X-Lease-Id": lease_id, "X-Content-SHA256": sha256,
                         "Content-Type": "application/octet-stream"},
                read_timeout=C.UPLOAD_READ_TIMEOUT, deadline=C.REQUEST_DEADLINE + size / C.MIN_TRANSFER_RATE)),
                "upload")

    def report(self, job_id: str, lease_id: str,
               report: P.CompleteReport | P.FailReport | P.ReleaseReport) -> P.ReportAck:
        """A job's final word: complete, fail or release."""
        return _reply(P.ReportAck, self._json(self._request("POST", f"/jobs/{job_id}/{report.kind}",
                                                            json={"lease_id": lease_id, **report.to_json()})),
                      report.kind)

    def complete(self, job_id: str, lease_id: str, outputs: list[str], stats: dict[str, Any]) -> P.ReportAck:
        return self.report(job_id, lease_id, P.CompleteReport(outputs, stats))

    def fail(self, job_id: str, lease_id: str, reason: str, log_tail: str, retryable: bool) -> P.ReportAck:
        return self.report(job_id, lease_id, P.FailReport(reason, log_tail, retryable))

    def release(self, job_id: str, lease_id: str, reason: str) -> P.ReportAck:
        return self.report(job_id, lease_id, P.ReleaseReport(reason))

    def download(self, url: str, out: BinaryIO, max_bytes: int) -> tuple[str, int]:
        """Streams ``url`` into ``out``; returns its SHA-256 and size.

        A path is resolved against the job server and sent with the worker token; an absolute URL
        gets the token only when it is on the job server's own origin, never a third party.
        """
        # A path is the server's, under its base URL (a server mounted at https://app.example.com/render keeps
        # /render); a full URL is fetched as it is.
        full = self.server_url + url if url.startswith("/") else urljoin(self.server_url + "/", url)
        parts = urlsplit(full)
        if parts.scheme not in ("http", "https"):
            raise Rejected(f"scene.url: {parts.scheme!r} URLs are not fetched")
        if _origin(full) != self._origin:
            try:
                self._check_storage_url(full, "scene")
            except Rejected as error:
                raise Rejected(f"scene.url: {error}") from None
        headers = self._auth() if _origin(full) == self._origin else {}
        digest = hashlib.sha256()
        size = 0
        limit = C.REQUEST_DEADLINE + max_bytes / C.MIN_TRANSFER_RATE
        with _deadline(limit) as expired:
            try:
                with self.session.get(full, headers=headers, stream=True,
                                      timeout=(C.CONNECT_TIMEOUT, C.READ_TIMEOUT)) as response:
                    if response.status_code >= 300:
                        raise _error_for(response)
                    for chunk in response.iter_content(C.CHUNK_SIZE):
                        size += len(chunk)
                        if size > max_bytes:
                            raise Rejected(f"scene.size: the download is larger than the {max_bytes} "
                                           "bytes the job declared")
                        digest.update(chunk)
                        out.write(chunk)
            except requests.RequestException as error:
                if expired.is_set():
                    raise Unreachable(f"GET {parts.path}: not complete within {limit:g} s") from None
                raise _unreachable(error, "GET", full) from None
        return digest.hexdigest(), size

    def health(self) -> dict:
        with _deadline(C.REQUEST_DEADLINE):
            try:
                response = self.session.get(self.server_url + "/api/health",
                                            timeout=(C.CONNECT_TIMEOUT, C.READ_TIMEOUT))
            except requests.RequestException as error:
                raise _unreachable(error, "GET", self.server_url + "/api/health") from None
        if response.status_code != 200:
            raise _error_for(response)
        return self._json(response)


class _UrlExpired(Exception):
    """Storage refused a presigned URL (403): it expired; the server signs new ones."""


class _Parses(Protocol):
    @classmethod
    def parse(cls, data: Any) -> Any: ...


R = TypeVar("R", bound=_Parses)


def _reply(cls: type[R], body: Any, what: str) -> R:
    """A server's answer as its protocol class; a malformed one is the server's fault, told as such."""
    try:
        parsed: R = cls.parse(body)
    except P.ValidationError as error:
        raise Unreachable(f"the server sent a malformed {what} reply: {error}") from None
    return parsed


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in chunks: what the server checks an upload against."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(C.CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def part_hashes(path: Path, part_size: int) -> list[str]:
    """The SHA-256 of each part of the file, as storage checks them on arrival (an empty file is one part)."""
    hashes = []
    with open(path, "rb") as handle:
        while True:
            digest, read = hashlib.sha256(), 0
            while read < part_size and (chunk := handle.read(min(C.CHUNK_SIZE, part_size - read))):
                digest.update(chunk)
                read += len(chunk)
            if read == 0 and hashes:
                break
            hashes.append(digest.hexdigest())
            if read < part_size:
                break
    return hashes


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _unreachable(error: requests.RequestException, method: str, url: str) -> Unreachable:
    """The failure as a sentence a person can act on; the technical detail goes to the log."""
    log.info("%s %s failed: %s: %s", method, urlsplit(url).path, type(error).__name__, _short(error))
    return Unreachable(explain(error, url))


def explain(error: requests.RequestException, url: str) -> str:
    """What a network failure means for the person reading it: what happened and what to do, without the
    exception's name, its errno or the library's repr (the tray, doctor, login and the log all show this)."""
    parts = urlsplit(url)
    host = parts.hostname or url
    where = f"{host}:{parts.port or {'https': 443, 'http': 80}.get(parts.scheme, '')}".rstrip(":")
    text = str(error)
    lowered = text.lower()
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidURL)):
        return f"{url} is not an address homefarm can use: write it as https://host (http:// only for this PC)"
    if isinstance(error, requests.exceptions.SSLError):
        if "wrong_version_number" in lowered or "wrong version number" in lowered:
            return (f"{where} answers in plain http, not https: use http:// for a server on this PC, or put the "
                    "server behind a TLS proxy")
        if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
            found = re.search(r"certificate verify failed: ([^(]+)", text)
            why = found.group(1).strip().rstrip(".") if found else "it could not be verified"
            if why in ("unable to get local issuer certificate", "self-signed certificate in certificate chain",
                       "self signed certificate in certificate chain"):
                # What an antivirus or proxy that re-signs HTTPS looks like from here, when the OS store lacks
                # its root too: the browser may still open the site.
                return (f"the TLS certificate of {host} is not valid ({why}): no authority this PC trusts signed it. "
                        "If your browser opens the server, an antivirus or proxy that scans HTTPS connections may "
                        "be re-signing them: exclude the server's address from its HTTPS scanning")
            return (f"the TLS certificate of {host} is not valid ({why}): the server needs a certificate from a "
                    "known authority for that name")
        return f"the secure connection to {where} failed: check that the server speaks https"
    if isinstance(error, requests.exceptions.Timeout):
        return f"{where} did not answer in time: the server or the network is slow or down; homefarm tries again"
    if isinstance(error, requests.exceptions.ConnectionError):
        if any(marker in lowered for marker in ("name or service not known", "nameresolution", "getaddrinfo",
                                                "nodename nor servname", "temporary failure in name resolution",
                                                "no address associated")):
            return f"the name {host} does not resolve: check the server address and the network"
        if "refused" in lowered:
            return f"nothing answers at {where}: is the job server running?"
        if any(marker in lowered for marker in ("reset", "aborted", "remotedisconnected", "broken pipe")):
            return f"{where} closed the connection: the server may be restarting; homefarm tries again"
        if "unreachable" in lowered:
            return f"there is no route to {where}: check the network"
        return f"could not reach {where}: check the network and the server address"
    return f"could not talk to {where}; the log has the details"


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 300 else text[:300] + "..."
