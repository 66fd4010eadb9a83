"""Fakes of the worker core's two edges, each with the shape of the real thing: the job server's client
(``WorkerClient``) and one Blender run (``BlenderRun``). The core's unit tests drive the real loop, job run,
heartbeat, policies and outbox through them in seconds; the real-Blender tests stay in test_worker_e2e.py."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from pathlib import Path

from support.pngio import write_png
from worker_app import protocol as P
from worker_app.client import Unreachable
from worker_app.render.blender import RenderResult
from worker_app.guard.causes import Cause, PauseDecision
from worker_app.render.discovery import BlenderInstall
from worker_app.render.output import EVENT_PREFIX, ProgressTracker, parse_line

# The first bytes of a .blend saved by Blender 3.4 (64-bit pointers, little-endian), then padding.
BLEND = b"BLENDER-v304" + b"\0" * 500
SCENE = {"url": "/api/worker/v1/assets/scene", "sha256": hashlib.sha256(BLEND).hexdigest(), "size": len(BLEND)}
RENDER = {"engine": "CYCLES", "samples": 2, "resolution": [8, 8], "frames": "1-3", "format": "PNG", "device": "CPU"}


def lease(job_id: str = "1", frames: str = "1-3", scene_bytes: bytes = BLEND, **spec) -> P.Lease:
    scene = {**SCENE, "sha256": hashlib.sha256(scene_bytes).hexdigest(), "size": len(scene_bytes)}
    return P.Lease(job_id=job_id, lease_id=f"lease-{job_id}", ttl_s=30, attempt=1,
                   spec={"scene": scene, "render": {**RENDER, "frames": frames}, **spec})


class Calls(list):
    """A list that threads append to, with a wait for a condition on it."""

    def __init__(self):
        super().__init__()
        self.changed = threading.Condition()

    def add(self, item) -> None:
        with self.changed:
            self.append(item)
            self.changed.notify_all()

    def wait_for(self, condition, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: condition(self), timeout)


class FakeClient:
    """The job server as the worker's client sees it. Tests set the ``*_error`` hooks to fail calls."""
    server_url = "http://127.0.0.1:9"
    upload_part_size: int | None = None

    def __init__(self, scene: bytes = BLEND):
        self.scene = scene
        self.leases: queue.Queue[P.Lease] = queue.Queue()
        self.calls = Calls()  # ("claim"|"cancel_claim"|"heartbeat"|"upload"|"complete"|"fail"|"release", ...)
        self.claim_error = None  # callable -> exception to raise from claim, or None
        self.upload_error = None  # callable(name) -> exception to raise, or None
        self.heartbeat_reply = P.HeartbeatReply()
        self._cancel = threading.Event()

    def hello(self, hello: P.Hello) -> P.HelloReply:
        self.calls.add(("hello", hello))
        return P.HelloReply("worker-1", heartbeat_interval_s=0.05, claim_wait_max_s=30)

    def claim(self, worker_id: str, wait: float) -> P.Lease | None:
        self.calls.add(("claim",))
        error = self.claim_error and self.claim_error()
        if error:
            raise error
        self._cancel.clear()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self._cancel.is_set():
            try:
                return self.leases.get(timeout=0.01)
            except queue.Empty:
                continue
        return None

    def report_state(self, state: P.WorkerState) -> None:
        self.calls.add(("state", state.worker_id, state))

    def cancel_claim(self, worker_id: str) -> bool:
        self.calls.add(("cancel_claim",))
        self._cancel.set()
        return True

    def heartbeat(self, job_id: str, lease_id: str, progress: P.Progress) -> P.HeartbeatReply:
        self.calls.add(("heartbeat", job_id, progress))
        return self.heartbeat_reply

    def upload(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str, state=None,
               save=None) -> P.StoredOutput:
        error = self.upload_error and self.upload_error(name)
        if error:
            raise error
        self.calls.add(("upload", job_id, name))
        return P.StoredOutput(name, sha256, Path(path).stat().st_size)

    def report(self, job_id: str, lease_id: str, report) -> P.ReportAck:
        self.calls.add((report.kind, job_id, report))
        return P.ReportAck({"complete": "done", "fail": "failed", "release": "queued"}[report.kind])

    def release(self, job_id: str, lease_id: str, reason: str) -> P.ReportAck:
        return self.report(job_id, lease_id, P.ReleaseReport(reason))

    def download(self, url: str, out, max_bytes: int) -> tuple[str, int]:
        out.write(self.scene)
        return hashlib.sha256(self.scene).hexdigest(), len(self.scene)

    def close(self) -> None:
        pass

    def reports(self, kind: str) -> list:
        return [call[2] for call in self.calls if call[0] == kind]


class Unreachable503(Unreachable):
    def __init__(self):
        super().__init__("POST /jobs/claim: 503 the server is restarting", 503)


class FakeRun:
    """Stands in for ``BlenderRun``: writes one small PNG per frame, ``frame_s`` apart, reporting each as
    Blender's script does; ``stop``, ``suspend`` and ``resume`` behave like the real run's.

    Tests shape a run through the class attributes before the worker starts one."""
    frame_s = 0.05
    result: RenderResult | None = None  # a failure to return instead of rendering
    runs: list[FakeRun] = []

    def __init__(self, blender, blend_file, job, job_dir, *, total_timeout, silence_timeout, on_progress=None,
                 on_line=None, user_dir=None, script=None, confine_writes=True):
        self.job, self.job_dir = job, Path(job_dir)
        self.on_progress = on_progress or (lambda tracker: None)
        self.on_line = on_line or (lambda line: None)
        self.tracker = ProgressTracker(len(job["frames"]), 2)  # the real one, moved on by hand
        self.stop_reasons: list[str] = []
        self.saved: list[str] = []
        self._stopped = threading.Event()
        self._thawed = threading.Event()
        self._thawed.set()
        self.suspended = False
        self.started = threading.Event()
        FakeRun.runs.append(self)

    def stop(self, reason: str) -> None:
        self.stop_reasons.append(reason)
        self._stopped.set()
        self._thawed.set()

    def suspend(self) -> bool:
        self.suspended = True
        self._thawed.clear()
        return True

    def resume(self) -> None:
        self.suspended = False
        self._thawed.set()

    def pids(self) -> set[int]:
        return {999_999} if self.started.is_set() else set()

    def run(self) -> RenderResult:
        self.started.set()
        if self.result is not None:
            return self.result
        out = Path(self.job["output_dir"])
        for index, frame in enumerate(self.job["frames"]):
            if self._stopped.wait(self.frame_s):
                break
            self._thawed.wait()
            if self._stopped.is_set():
                break
            path = write_png(out / f"frame_{frame:04d}.png", 4, 4, (index * 40 % 256, 20, 30))
            self.saved.append(str(path))
            self.tracker.frames_done, self.tracker.frame = index + 1, frame
            self.on_line(parse_line(EVENT_PREFIX + json.dumps({"event": "file_saved", "frame": frame,
                                                               "path": str(path)})))
            self.on_progress(self.tracker)
        if self._stopped.is_set():
            return RenderResult(False, None, reason=self.stop_reasons[0], stopped=self.stop_reasons[0])
        return RenderResult(True, 0, saved=list(self.saved))


BLENDER = BlenderInstall("/nonexistent/blender", "3.4.1")


class FakeGuard:
    """The guard's face towards the worker: a decision and listeners told of each change."""

    def __init__(self):
        self.decision = PauseDecision()
        self.listeners = []

    def add_listener(self, listener) -> None:
        self.listeners.append(listener)

    def set(self, kind: str | None, program: str = "") -> None:
        self.decision = PauseDecision(True, f"Paused: {kind} reason", (Cause(kind, f"{kind} reason",
                                                                             program=program),)) \
            if kind else PauseDecision()
        for listener in self.listeners:
            listener(self.decision)
