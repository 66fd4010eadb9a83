"""The reference job server: the worker API and the web app's API (docs/protocol.md), on ``http.py``'s plumbing."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

from worker_app import __version__
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.server.http import Handler, HttpError, HTTPServer, route
from worker_app.server.store import Store

log = logging.getLogger("homefarm.server")

MAX_OUTPUT_BYTES = 64 * 1024**3
MAX_ASSET_BYTES = C.MAX_SCENE_SIZE


class JobServer:
    """A running reference server: ``JobServer(data_dir).start()`` serves on a thread."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0,
                 lease_ttl: float = C.LEASE_TTL, claim_wait_max: float = C.CLAIM_WAIT_MAX,
                 latest_worker_version: str | None = None, min_worker_version: str | None = None):
        self.data_dir = Path(data_dir)
        self.outputs_dir = self.data_dir / "outputs"
        self.assets_dir = self.data_dir / "assets"
        self.tmp_dir = self.data_dir / "tmp"
        for folder in (self.outputs_dir, self.assets_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.data_dir / "homefarm-server.sqlite3", lease_ttl=lease_ttl)
        self.claim_wait_max = claim_wait_max
        # Told to workers at sign-on: the tray shows "a new version is available", and a worker older
        # than the minimum stops claiming and asks its owner to update.
        self.latest_worker_version = latest_worker_version
        self.min_worker_version = min_worker_version
        self.httpd = HTTPServer((host, port), _Handler)
        self.httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> JobServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="homefarm-server",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.store.close()  # wakes every waiting claim
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def ensure_tokens(self) -> dict[str, str]:
        """On first start, makes one app and one worker token; returns them (shown once)."""
        if self.store.has_tokens():
            return {}
        return {kind: self.store.create_token(kind, "first start") for kind in ("app", "worker")}

    def output_path(self, job_id: int, name: str) -> Path:
        return self.outputs_dir / str(job_id) / P.check_output_name(name)


class _Handler(Handler):
    """The worker API and the web app's API."""

    # -- open ---------------------------------------------------------------------------------

    @route("GET", "/api/health", auth="none")
    def health(self):
        self._drain()
        self._json(200, {"ok": True, "version": __version__, "protocol": P.PROTOCOL_VERSION})

    # -- the worker API -----------------------------------------------------------------------

    @route("POST", P.WORKER_PREFIX + "/hello", auth="worker")
    def hello(self):
        hello = P.Hello.parse(self._read_json())
        worker_id = self.app.store.register_worker(hello.name, hello.to_json())
        reply = P.HelloReply(worker_id, server_version=__version__, claim_wait_max_s=self.app.claim_wait_max,
                             lease_ttl_s=self.app.store.lease_ttl,
                             heartbeat_interval_s=self.app.store.heartbeat_interval,
                             latest_worker_version=self.app.latest_worker_version or None,
                             min_worker_version=self.app.min_worker_version or None)
        self._json(200, reply.to_json())

    @route("GET", P.WORKER_PREFIX + "/ping", auth="worker")
    def ping(self):
        self._drain()
        self._json(200, {"ok": True, "protocol": P.PROTOCOL_VERSION})

    @route("POST", P.WORKER_PREFIX + "/jobs/claim", auth="worker")
    def claim(self):
        body = self._read_json()
        P.check_object(body, "", {"worker_id"}, set())
        worker_id = P.check_str(body["worker_id"], "worker_id", max_len=64)
        if not self.app.store.worker_exists(worker_id):
            raise HttpError(422, "invalid", "unknown worker; POST /hello first", field="worker_id")
        try:
            wait = float(self.query.get("wait", C.CLAIM_WAIT_DEFAULT))
        except ValueError:
            raise HttpError(422, "invalid", "wait must be a number of seconds", field="wait") from None
        wait = min(max(wait, 0.0), self.app.claim_wait_max)
        claimed = self.app.store.claim(worker_id, wait)
        if claimed is None:
            log.info("claim by %s: no job", worker_id)
            self._empty(204)
            return
        log.info("claim by %s: job %s, attempt %d", worker_id, claimed.job_id, claimed.attempt)
        self._json(200, {"job_id": str(claimed.job_id), "lease_id": claimed.lease_id,
                         "ttl_s": self.app.store.first_lease_ttl, "expires_at": claimed.expires,
                         "attempt": claimed.attempt, "spec": claimed.spec, "outputs": claimed.outputs})

    @route("POST", P.WORKER_PREFIX + "/jobs/claim/cancel", auth="worker")
    def cancel_claim(self):
        body = self._read_json()
        P.check_object(body, "", {"worker_id"}, set())
        worker_id = P.check_str(body["worker_id"], "worker_id", max_len=64)
        canceled = self.app.store.cancel_claims(worker_id)
        log.info("claim by %s canceled by the worker%s", worker_id, "" if canceled else " (none waiting)")
        self._json(200, {"canceled": canceled})

    @route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/heartbeat", auth="worker")
    def heartbeat(self, job_id):
        body = self._read_json()
        progress = P.parse_heartbeat(body)
        cancel, ttl = self.app.store.heartbeat(self._job_id(job_id), body["lease_id"], progress.to_json())
        self._json(200, P.HeartbeatReply(cancel, ttl).to_json())

    @route("PUT", P.WORKER_PREFIX + "/jobs/{job_id}/outputs/{name}", auth="worker")
    def put_output(self, job_id, name):
        job = self._job_id(job_id)
        P.check_output_name(name)
        lease_id = self._lease_header()
        sha = P.check_sha256(self.headers.get("X-Content-SHA256", ""), "X-Content-SHA256")
        self.app.store.check_lease(job, lease_id)
        existing = self.app.store.output(job, name)
        dest = self.app.output_path(job, name)
        if existing and existing["sha256"] == sha and dest.is_file():
            self._drain_stream()
            self._json(200, {"name": name, "sha256": sha, "size": existing["size"], "stored": False})
            return
        sha, size = self._receive_file(dest, sha, MAX_OUTPUT_BYTES)
        self.app.store.add_output(job, lease_id, name, sha, size)
        self._json(201, {"name": name, "sha256": sha, "size": size, "stored": True})

    def _drain_stream(self) -> None:
        """Reads and drops a body already stored, so an idempotent re-upload keeps the connection."""
        remaining = self._length(MAX_OUTPUT_BYTES)
        while remaining:
            chunk = self.rfile.read(min(C.CHUNK_SIZE, remaining))
            if not chunk:
                self.close_connection = True
                break
            remaining -= len(chunk)
        self._body_read = True

    @route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/complete", auth="worker")
    def complete(self, job_id):
        body = self._read_json()
        done = P.CompleteReport.parse(body)
        self.app.store.complete(self._job_id(job_id), body["lease_id"], done.outputs, done.stats, done.warnings)
        log.info("job %s done: %d output(s)", job_id, len(done.outputs))
        self._json(200, {"state": "done"})

    @route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/fail", auth="worker")
    def fail(self, job_id):
        body = self._read_json()
        failure = P.FailReport.parse(body)
        state = self.app.store.fail(self._job_id(job_id), body["lease_id"], failure.reason, failure.log_tail,
                                    failure.retryable, failure.needs_blender)
        log.info("job %s failed (%s): %s", job_id, state, failure.reason)
        self._json(200, {"state": state})

    @route("POST", P.WORKER_PREFIX + "/jobs/{job_id}/release", auth="worker")
    def release(self, job_id):
        body = self._read_json()
        reason = P.ReleaseReport.parse(body).reason
        self.app.store.release(self._job_id(job_id), body["lease_id"], reason)
        log.info("job %s released: %s", job_id, reason)
        self._json(200, {"state": "queued"})

    @route("GET", P.WORKER_PREFIX + "/assets/{sha256}", auth="worker")
    def get_asset(self, sha256):
        self._drain()
        path = self.app.assets_dir / P.check_sha256(sha256, "sha256")
        if not path.is_file():
            raise HttpError(404, "not_found", f"no asset {sha256}")
        self._send_file(path, "application/octet-stream")

    # -- the web app's API --------------------------------------------------------------------

    @route("POST", P.API_PREFIX + "/jobs", auth="app")
    def submit(self):
        spec = P.JobSpec.parse(self._read_json())
        job_id = self.app.store.submit(spec.to_json(), spec.priority, spec.max_attempts, spec.tag)
        self._json(201, self.app.store.get(job_id))

    @route("GET", P.API_PREFIX + "/jobs", auth="app")
    def list_jobs(self):
        self._drain()
        state = self.query.get("state")
        if state is not None:
            P.check_choice(state, "state", P.JOB_STATES)
        try:
            limit = min(max(int(self.query.get("limit", 100)), 1), 1000)
        except ValueError:
            raise HttpError(422, "invalid", "limit must be an integer", field="limit") from None
        self._json(200, {"jobs": self.app.store.list(state, limit)})

    @route("GET", P.API_PREFIX + "/jobs/{job_id}", auth="app")
    def get_job(self, job_id):
        self._drain()
        self._json(200, self.app.store.get(self._job_id(job_id)))

    @route("POST", P.API_PREFIX + "/jobs/{job_id}/cancel", auth="app")
    def cancel(self, job_id):
        self._drain()
        self._json(200, self.app.store.cancel(self._job_id(job_id)))

    @route("GET", P.API_PREFIX + "/jobs/{job_id}/outputs/{name}", auth="app")
    def get_output(self, job_id, name):
        self._drain()
        job = self._job_id(job_id)
        P.check_output_name(name)
        if self.app.store.output(job, name) is None:
            raise HttpError(404, "not_found", f"job {job} has no output {name}")
        self._send_file(self.app.output_path(job, name), _content_type(name))

    @route("PUT", P.API_PREFIX + "/assets", auth="app")
    def put_asset(self):
        expected = self.headers.get("X-Content-SHA256")
        if expected is not None:
            P.check_sha256(expected, "X-Content-SHA256")
        fd, tmp = tempfile.mkstemp(dir=self.app.tmp_dir, prefix="asset-")
        os.close(fd)
        sha, size = self._receive_file(Path(tmp), expected, MAX_ASSET_BYTES)
        os.replace(tmp, self.app.assets_dir / sha)
        self._json(201, {"sha256": sha, "size": size, "url": f"{P.WORKER_PREFIX}/assets/{sha}"})

    @route("GET", P.API_PREFIX + "/workers", auth="app")
    def workers(self):
        self._drain()
        self._json(200, {"workers": self.app.store.list_workers()})


def _content_type(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "exr": "image/x-exr",
            "mp4": "video/mp4", "mkv": "video/x-matroska"}.get(suffix, "application/octet-stream")
