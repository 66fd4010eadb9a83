"""The worker loop: sign on, long-poll for a job, download, render, upload, complete; again.

It runs on its own thread behind one explicit ``State``. Whoever shows it (the CLI, the tray)
receives immutable ``Snapshot``s through a callback and sends commands (``stop``); nothing here
imports Qt or touches a GUI.
"""

from __future__ import annotations

import enum
import json
import hashlib
import logging
import platform
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from worker_app import __version__
from worker_app import constants as C
from worker_app.system import gpu
from worker_app.render import procs
from worker_app import protocol as P
from worker_app.render.assets import AssetError, SceneCache, unpack_zip
from worker_app.render.blender import SCRIPT_EXIT_CODE, BlenderRun
from worker_app.render.discovery import (BlenderInstall, BlenderNotFound, pick,
                                 probe_devices)
from worker_app.guard.energy import EnergyMeter
from worker_app.render.images import strip_volatile_metadata
from worker_app.outbox import Outbox, OutboxSender
from worker_app.client import backoff_delay
from worker_app.client import LeaseLost, NotFound, Rejected, Unauthorized, Unreachable, WorkerClient

log = logging.getLogger("homefarm.worker")


class State(str, enum.Enum):
    CONNECTING = "connecting"
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    RENDERING = "rendering"
    UPLOADING = "uploading"
    BACKING_OFF = "backing off"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Snapshot:
    """What the worker is doing, for display. Immutable: safe to hand to another thread."""
    state: State = State.STOPPED
    message: str = ""
    job_id: str | None = None
    progress: dict = field(default_factory=dict)
    retry_at: float | None = None  # time.time() of the next try while backing off
    jobs_done: int = 0
    jobs_failed: int = 0
    paused: str = ""  # why the worker steps aside, "" while it does not
    gpu: dict = field(default_factory=dict)  # the latest GPU figures
    gpu_problem: str = ""  # why there are none, e.g. "no NVIDIA GPU or driver (...)"
    update: str = ""  # "", or the newer version the server announced
    update_required: bool = False  # this version is older than the server accepts: nothing is claimed


@dataclass
class JobReport:
    """How one job ended, with the time of each stage, in seconds."""
    job_id: str
    outcome: str  # done, failed, released, lost, canceled
    reason: str = ""
    outputs: list[Path] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    energy_wh: float | None = None


class _JobEnded(Exception):
    """Ends the job's processing early: the lease was lost, the job canceled or the worker stopping."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(C.CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


OUTPUT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "OPEN_EXR": ".exr"}


def frame_output_name(frame: int, fmt: str) -> str | None:
    """The name render_job.py gives a still frame's file; None for movies."""
    ext = OUTPUT_EXTENSIONS.get(fmt)
    return f"frame_{frame:04d}{ext}" if ext else None


class Worker:
    def __init__(self, client: WorkerClient, blender: BlenderInstall | list[BlenderInstall], jobs_dir: Path,
                 cache_dir: Path, *, name: str | None = None, device: str = "AUTO", device_type: str = "",
                 gpu_indices: tuple[int, ...] = (), claim_wait: float = C.CLAIM_WAIT_DEFAULT,
                 on_snapshot=None, on_job_end=None, max_jobs: int | None = None,
                 make_client=None, blender_user_dir: Path | None = None, guard=None,
                 pause_policy: str = "requeue", monitor=None, ledger=None, outbox: Outbox | None = None):
        self.client = client
        self.blenders = blender if isinstance(blender, list) else [blender]
        self.jobs_dir = jobs_dir
        self.cache = SceneCache(cache_dir)
        self.name = name or socket.gethostname()
        self.device = device
        self.device_type = device_type
        self.gpu_indices = list(gpu_indices)
        # Blender's user config and scripts live here, not in the owner's own Blender folders.
        self.blender_user_dir = blender_user_dir or jobs_dir.parent / "blender-user"
        self.claim_wait = claim_wait
        self.on_snapshot = on_snapshot or (lambda snapshot: None)
        self.on_job_end = on_job_end or (lambda report: None)
        self.max_jobs = max_jobs
        # Heartbeats run beside the job on their own HTTP session.
        self.make_client = make_client or (lambda: client)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._run: BlenderRun | None = None
        self.worker_id: str | None = None
        self.heartbeat_interval = C.HEARTBEAT_INTERVAL
        self._devices: list[str] | None = None
        # Stepping aside for the owner: see worker_app/guard.py.
        self.guard = guard
        self.pause_policy = pause_policy
        self.monitor = monitor
        self.ledger = ledger
        self._claiming = threading.Event()
        self._release_reason: str | None = None
        self._meter: EnergyMeter | None = None
        self._beat: _Heartbeat | None = None
        # Results the server must learn go through the durable outbox (worker_app/outbox.py).
        self.outbox = outbox
        self.sender: OutboxSender | None = None
        self._sent: dict[str, str] = {}  # job id -> how its results left the outbox: complete, fail, lost...
        if guard is not None:
            guard.add_listener(self._on_pause_change)
        if monitor is not None:
            monitor.on_sample = self._on_gpu_sample

    # -- commands, from any thread ------------------------------------------------------------

    def stop(self) -> None:
        """Asks the loop to end; a running render is stopped and its job released to the server."""
        self._stop.set()
        self._publish(state=State.STOPPING, message="stopping")
        run = self._run
        if run is not None:
            run.stop("the worker is shutting down")
        if self._claiming.is_set():
            threading.Thread(target=self._end_claim, name="end-claim", daemon=True).start()

    def own_pids(self) -> set[int]:
        """Our Blender's processes: detectors must not take them for a game or a foreign GPU load."""
        run = self._run
        return run.pids() if run is not None else set()

    def _on_pause_change(self, decision) -> None:
        """From the guard's thread: apply the pause policy to what is running now."""
        self._publish(paused=decision.reason if decision.paused else "")
        run = self._run
        if decision.paused:
            if self._claiming.is_set():
                threading.Thread(target=self._end_claim, name="end-claim", daemon=True).start()
            if run is None:
                return
            if self.pause_policy == "requeue":
                self._release_reason = decision.reason
                run.stop(decision.reason)
            elif self.pause_policy == "suspend" and run.suspend():
                self._publish(message=f"{decision.reason}; Blender is suspended and keeps its GPU memory")
                beat = self._beat
                if beat is not None:
                    beat.progress = P.Progress(stage="rendering", message="suspended while the owner uses "
                                               "the PC; Blender keeps its GPU memory")
        elif run is not None and run.suspended:
            run.resume()
            self._publish(message="resumed")

    def _end_claim(self) -> None:
        """Ends our waiting long poll at the server, so a claim begun before a pause brings no job."""
        client = self.make_client()
        try:
            for _ in range(20):
                if not self._claiming.is_set() or self.worker_id is None:
                    return
                try:
                    client.cancel_claim(self.worker_id)
                except (Unreachable, Rejected, NotFound, Unauthorized, LeaseLost):
                    pass
                # Normally the claim returns within milliseconds; again if it had not reached the server.
                time.sleep(0.25)
        finally:
            if client is not self.client:
                client.close()

    def _on_gpu_sample(self, snapshot) -> None:
        meter = self._meter
        if meter is not None:
            meter.add(snapshot)
        if snapshot.available and snapshot.gpus:
            self._publish(gpu=snapshot.gpus[0].figures(), gpu_problem="")
        elif snapshot.problem:
            self._publish(gpu={}, gpu_problem=snapshot.problem)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="homefarm-worker", daemon=True)
        thread.start()
        return thread

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        reaped = procs.reap_orphans(list(self.jobs_dir.glob("*/blender.pid")))
        if reaped:
            log.warning("ended %d Blender process(es) left by an earlier run", reaped)
        if self.outbox is None:
            self.outbox = Outbox(self.jobs_dir.parent / "outbox.sqlite3")
        self.sender = OutboxSender(self.outbox, self.make_client(), on_state=self._on_outbox_state,
                                   on_job_sent=self._on_job_sent).start()
        self._recover()
        failures = 0
        handled = 0
        try:
            while not self._stop.is_set():
                try:
                    if self.outbox.pending():
                        self._send_kept_results()
                        continue
                    if self.worker_id is None:
                        self._publish(state=State.CONNECTING, message=f"connecting to {self.client.server_url}")
                        self._hello()
                    if self._update_required() or self._paused():
                        continue
                    self._publish(state=State.WAITING, message="waiting for a job", job_id=None,
                                  progress={}, retry_at=None)
                    self._claiming.set()
                    try:
                        lease = self.client.claim(self.worker_id, self.claim_wait)
                    finally:
                        self._claiming.clear()
                    failures = 0
                    if lease is None:
                        continue
                    if self._stop.is_set() or self._paused(wait=False):
                        # Claimed in the instant the pause began: give it straight back.
                        self.client.release(lease.job_id, lease.lease_id,
                                            self._snapshot.paused or "the worker is shutting down")
                        continue
                    self._handle(lease)
                    handled += 1
                    if self.max_jobs is not None and handled >= self.max_jobs:
                        break
                except Unauthorized as error:
                    failures += 1
                    self._back_off(failures, f"the server refused the worker token; sign in again ({error})")
                except (Unreachable, Rejected, NotFound) as error:
                    failures += 1
                    if isinstance(error, Rejected) and "worker_id" in str(error):
                        self.worker_id = None  # the server forgot us (a new database): sign on again
                    self._back_off(failures, f"server unreachable: {error}")
        finally:
            self.sender.stop()
            self._publish(state=State.STOPPED, message="stopped", job_id=None, progress={})

    # -- results and recovery -----------------------------------------------------------------

    def _recover(self) -> None:
        """After a crash or reboot: a job that was claimed but never reported is given back."""
        for lease_file in sorted(self.jobs_dir.glob("*/lease.json")):
            try:
                held = json.loads(lease_file.read_text())
                job_id, lease_id = str(held["job_id"]), str(held["lease_id"])
            except (OSError, ValueError, KeyError):
                lease_file.unlink(missing_ok=True)
                continue
            if not self.outbox.has_report(job_id):
                log.warning("job %s was interrupted by a restart; giving it back to the server", job_id)
                self.outbox.add_report(job_id, lease_id, "release",
                                       {"reason": "the worker restarted before finishing the job"})
            lease_file.unlink(missing_ok=True)

    def _send_kept_results(self) -> None:
        """Before claiming anything new, the results kept from before go out."""
        count = self.outbox.pending()
        if self._snapshot.state != State.BACKING_OFF:
            self._publish(state=State.UPLOADING, message=f"sending {count} result(s) kept from before",
                          job_id=None, progress={})
        self.outbox.wait_until_sent(None, 1.0)

    def _on_outbox_state(self, offline: bool, message: str, retry_at) -> None:
        if offline:
            self._publish(state=State.BACKING_OFF, message=message, retry_at=retry_at)

    def _on_job_sent(self, job_id: str, kind: str) -> None:
        self._sent[job_id] = kind
        if kind in ("complete", "fail", "release", "lost"):
            self._prune_job_dirs()

    def _prune_job_dirs(self, keep: int = 20) -> None:
        """Job folders whose results the server has are kept for the owner to look at, the newest 20."""
        finished = []
        for folder in self.jobs_dir.iterdir():
            if folder.is_dir() and not (folder / "lease.json").exists() and not self.outbox.pending(folder.name):
                finished.append(folder)
        finished.sort(key=lambda f: f.stat().st_mtime, reverse=True)
        for folder in finished[keep:]:
            shutil.rmtree(folder, ignore_errors=True)

    def _report(self, lease: P.Lease, kind: str, payload: dict) -> None:
        """Writes the job's final word to the outbox; from here on the outbox owns the job's fate."""
        self.outbox.add_report(lease.job_id, lease.lease_id, kind, payload)
        (self.jobs_dir / lease.job_id / "lease.json").unlink(missing_ok=True)

    def _flush(self, lease: P.Lease, timeout: float | None = None) -> str | None:
        """Waits until the job's results have left the outbox; returns how (complete, fail, lost...)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.outbox.wait_until_sent(lease.job_id, 0.5):
            if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                return None  # kept on disk; sent at the next start
        return self._sent.pop(lease.job_id, None)

    def _queue_output(self, lease: P.Lease, out_dir: Path, path: Path, queued: set) -> None:
        """An output Blender has saved: checked, cleaned of volatile metadata, hashed, into the outbox."""
        path = Path(path).resolve()
        if path.name in queued:
            return
        if path.parent != out_dir.resolve() or not path.is_file():
            raise _Failed(f"Blender reported an output outside the job's folder: {path}", retryable=False)
        try:
            P.check_output_name(path.name, "output")
        except P.ValidationError as error:
            raise _Failed(str(error), retryable=False) from None
        strip_volatile_metadata(path)
        self.outbox.add_output(lease.job_id, lease.lease_id, path.name, path, file_sha256(path))
        queued.add(path.name)

    def _paused(self, wait: bool = True) -> bool:
        """True while the guard says to step aside; then shows why and waits a little for a change."""
        if self.guard is None or not self.guard.decision.paused:
            return False
        if wait:
            decision = self.guard.decision
            self._publish(state=State.PAUSED, message=decision.reason, paused=decision.reason, job_id=None,
                          progress={})
            self.guard.wait_for_change(1.0)
        return True

    def _render_devices(self) -> list[str]:
        if self._devices is None:
            try:
                found = probe_devices(self.blenders[0])
                self._devices = [backend for backend, names in found.items() if names]
            except BlenderNotFound as error:
                log.warning("%s", error)
                self._devices = ["CPU"]
        return self._devices

    def _hello(self) -> None:
        gpus = gpu.inventory()
        hello = P.Hello(name=self.name, os=f"{platform.system()} {platform.release()}",
                        app_version=__version__,
                        blender=[{"version": b.version, "path": b.path} for b in self.blenders],
                        gpus=gpus.gpus, devices=self._render_devices())
        reply = self.client.hello(hello)
        self.worker_id = reply["worker_id"]
        wait_max = reply.get("claim_wait_max_s")
        if isinstance(wait_max, (int, float)) and wait_max > 0:
            self.claim_wait = min(self.claim_wait, float(wait_max))
        self._check_version(reply)
        interval = reply.get("heartbeat_interval_s")
        if isinstance(interval, (int, float)) and interval > 0:
            self.heartbeat_interval = float(interval)
        log.info("signed on to %s as %s", self.client.server_url, self.worker_id)

    def _check_version(self, reply: dict) -> None:
        """The server can announce a newer release, and refuse workers older than a minimum."""
        def older(version) -> bool:
            try:
                return isinstance(version, str) and P.version_tuple(__version__) < P.version_tuple(version)
            except ValueError:
                return False
        latest, minimum = reply.get("latest_worker_version"), reply.get("min_worker_version")
        required = older(minimum)
        newest = minimum if required and not older(latest) else latest
        self._publish(update=newest if older(newest) else "", update_required=required)
        if required:
            log.error("homefarm %s is older than this server accepts (%s or newer): update homefarm",
                      __version__, minimum)

    def _update_required(self) -> bool:
        if not self._snapshot.update_required:
            return False
        self._publish(state=State.PAUSED, job_id=None, progress={},
                      message=f"homefarm {__version__} is too old for this server: install "
                              f"{self._snapshot.update} or newer",
                      paused=f"Paused: this server needs homefarm {self._snapshot.update} or newer")
        if self._stop.wait(C.UPDATE_RECHECK):
            return True
        self.worker_id = None  # sign on again: the server may accept this version by now
        return True

    def _back_off(self, failures: int, message: str) -> None:
        delay = backoff_delay(failures - 1)
        log.warning("%s; retrying in %.0f s", message, delay)
        self._publish(state=State.BACKING_OFF, message=f"{message}; retrying in {delay:.0f} s",
                      retry_at=time.time() + delay)
        self._stop.wait(delay)

    def _publish(self, **changes) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)
            snapshot = self._snapshot
        try:
            self.on_snapshot(snapshot)
        except Exception:  # a broken display must not stop the worker
            log.exception("snapshot callback failed")

    # -- one job ------------------------------------------------------------------------------

    def _handle(self, lease: P.Lease) -> None:
        started = time.monotonic()
        report = JobReport(job_id=lease.job_id, outcome="failed")
        self._release_reason = None
        self._meter = EnergyMeter(self.monitor.latest if self.monitor else None)
        self._publish(job_id=lease.job_id, progress={}, message=f"job {lease.job_id} claimed")
        beat = _Heartbeat(self.make_client(), lease, self.heartbeat_interval, self._on_lease_lost)
        self._beat = beat
        try:
            try:
                spec = P.JobSpec.parse(lease.spec)
            except P.ValidationError as error:
                raise _Failed(f"invalid job: {error}", retryable=False) from None
            try:
                blender = pick(self.blenders, spec.min_blender_version)
            except BlenderNotFound as error:
                raise _Failed(str(error), retryable=True) from None
            beat.start()
            job_dir = self._job_dir(lease)
            outputs, report.stages, stats = self._work(lease, spec, job_dir, beat, blender)
            report.outputs = [job_dir / "out" / name for name in outputs]
            stats.update({f"{k}_s": round(v, 3) for k, v in report.stages.items()})
            stats.update(blender=blender.version, frames=len(spec.render.frame_list()),
                         total_s=round(time.monotonic() - started, 3))
            energy = self._meter.reading()
            if energy.wh is not None:
                stats.update(gpu_energy_wh=round(energy.wh, 4), energy_source=energy.source)
            t0 = time.monotonic()
            self._report(lease, "complete", {"outputs": outputs, "stats": stats})
            self._publish(state=State.UPLOADING, message=f"job {lease.job_id}: uploading")
            beat.progress = P.Progress(stage="uploading", percent=100.0)
            sent = self._flush(lease)  # the heartbeat keeps the lease while the outputs go out
            report.stages["upload"] = time.monotonic() - t0
            if sent == "complete":
                report.outcome = "done"
                self._publish(jobs_done=self._snapshot.jobs_done + 1, message=f"job {lease.job_id} done")
            elif sent is None:
                report.outcome, report.reason = "kept", "the results are kept on disk and sent at the next start"
            else:
                report.outcome, report.reason = "lost", "the server gave the job to someone else meanwhile"
        except _Failed as failure:
            report.reason = failure.reason
            log.error("job %s failed: %s", lease.job_id, failure.reason)
            self._report(lease, "fail", {"reason": failure.reason, "log_tail": failure.log_tail,
                                         "retryable": failure.retryable})
            beat.stop()
            self._flush(lease, timeout=C.READ_TIMEOUT)
            self._publish(jobs_failed=self._snapshot.jobs_failed + 1,
                          message=f"job {lease.job_id} failed: {failure.reason}")
        except _JobEnded as ended:
            report.outcome, report.reason = ended.outcome, ended.reason
            if ended.outcome == "released":
                self._report(lease, "release", {"reason": ended.reason})
                beat.stop()
                self._flush(lease, timeout=5.0)
            else:  # lost or canceled: the server wants nothing more of this job
                self.outbox.drop_job(lease.job_id)
                (self.jobs_dir / lease.job_id / "lease.json").unlink(missing_ok=True)
            log.warning("job %s %s: %s", lease.job_id, ended.outcome, ended.reason)
        finally:
            beat.stop()
            self._run = None
            report.stages["total"] = time.monotonic() - started
            report.energy_wh = self._meter.reading().wh
            self._meter = None
            if self.ledger is not None:
                try:
                    self.ledger.record(lease.job_id, self.client.server_url, report.outcome,
                                       report.stages["total"], report.stages.get("render", 0.0),
                                       report.energy_wh)
                except Exception:  # the owner's statistics must never cost a job
                    log.exception("could not record job %s in the statistics", lease.job_id)
            self.on_job_end(report)

    def _job_dir(self, lease: P.Lease) -> Path:
        job_id = lease.job_id
        if not job_id.replace("-", "").replace("_", "").isalnum():
            raise _Failed(f"job_id: {job_id!r} is not a plain identifier", retryable=False)
        job_dir = self.jobs_dir / job_id
        if self.outbox.pending(job_id):
            # Outputs of an earlier attempt still wait to be sent from here: they are not ours any more.
            self.outbox.drop_job(job_id)
        shutil.rmtree(job_dir, ignore_errors=True)  # a fresh start for each attempt
        (job_dir / "out").mkdir(parents=True)
        # Written before any work: a crash from here on is found at the next start and the job given back.
        (job_dir / "lease.json").write_text(json.dumps({"job_id": job_id, "lease_id": lease.lease_id,
                                                        "server": self.client.server_url}))
        return job_dir

    def _work(self, lease: P.Lease, spec: P.JobSpec, job_dir: Path, beat: _Heartbeat,
              blender: BlenderInstall) -> tuple[list[str], dict[str, float], dict]:
        """Downloads, renders and uploads; returns the output names, stage times and stats."""
        stages: dict[str, float] = {}
        t0 = time.monotonic()
        self._publish(state=State.DOWNLOADING, message=f"job {lease.job_id}: downloading the scene")
        beat.progress = P.Progress(stage="downloading")
        blend = self._fetch_scene(spec.scene, job_dir)
        images = self._fetch_images(spec.overrides.get("images", {}), job_dir)
        stages["download"] = time.monotonic() - t0
        self._check(beat, before_render=True)

        frames = spec.render.frame_list()
        # Frames an earlier attempt already uploaded are not rendered again.
        already = {f: frame_output_name(f, spec.render.format) for f in frames}
        todo = [f for f in frames if already[f] not in lease.outputs]
        done_before = [already[f] for f in frames if already[f] in lease.outputs]
        stats: dict = {"frames_skipped": len(done_before)}
        if not todo:
            return done_before, stages, stats

        t0 = time.monotonic()
        render = spec.render.to_json()
        if render.get("device", "AUTO") == "AUTO":
            render["device"] = self.device
        job = {"render": render, "frames": todo, "output_dir": str((job_dir / "out").resolve()),
               "overrides": {k: v for k, v in spec.overrides.items() if k != "images"}, "images": images,
               "device_type": self.device_type or None, "gpu_indices": self.gpu_indices}
        self._check(beat, before_render=True)
        self._publish(state=State.RENDERING, message=f"job {lease.job_id}: rendering",
                      progress={"frame_count": len(todo)})
        out_dir = job_dir / "out"
        queued: set[str] = set()

        def on_line(line):
            # Each frame goes into the outbox as soon as Blender has saved it; the sender uploads it
            # while the next frame renders. A movie is sent once it is whole.
            event = line.event
            if event and event.get("event") == "file_saved" and isinstance(event.get("path"), str) \
                    and not Path(event["path"]).name.startswith("movie_"):
                self._queue_output(lease, out_dir, Path(event["path"]), queued)

        run = BlenderRun(blender.path, blend, job, job_dir, total_timeout=spec.timeouts.total_s,
                         silence_timeout=spec.timeouts.silence_s, user_dir=self.blender_user_dir,
                         on_progress=lambda tracker: self._on_render_progress(tracker, beat), on_line=on_line)
        self._run = run
        beat.run = run
        try:
            result = run.run()
        except _Failed:
            run.stop("an output could not be accepted")
            raise
        stages["render"] = time.monotonic() - t0
        stats["uploaded_during_render"] = len(queued) - self.outbox.pending(lease.job_id)
        self._check(beat)
        if not result.ok:
            if result.stopped and (self._stop.is_set() or self._release_reason):
                raise _JobEnded("released", result.reason)
            retryable = result.stopped is None and result.exit_code not in (SCRIPT_EXIT_CODE, 0)
            raise _Failed(result.reason, log_tail=result.log_tail, retryable=retryable)
        if run.tracker.warnings:
            stats["warnings"] = "; ".join(run.tracker.warnings)[:1000]
        if not result.saved:
            raise _Failed("Blender finished but saved no output", retryable=False)
        for saved in result.saved:
            self._queue_output(lease, out_dir, Path(saved), queued)
        names = [Path(saved).name for saved in dict.fromkeys(result.saved)]
        return done_before + names, stages, stats

    def _fetch_images(self, images: dict, job_dir: Path) -> dict[str, str]:
        """Downloads the job's image assets (verified like scenes) into the job's folder."""
        paths = {}
        for index, (name, data) in enumerate(sorted(images.items())):
            asset = P.SceneAsset.parse(data, f"overrides.images.{name}")
            try:
                cached, _hit = self.cache.fetch(
                    asset, lambda out, limit: self.client.download(asset.url, out, limit))
            except AssetError as error:
                raise _Failed(f"overrides.images.{name}: {error}", retryable=False) from None
            except (NotFound, Rejected, Unauthorized, Unreachable) as error:
                raise _Failed(f"overrides.images.{name}: could not be downloaded: {error}",
                              retryable=isinstance(error, Unreachable)) from None
            suffix = Path(asset.url.split("?")[0]).suffix.lower()
            suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
            local = job_dir / "assets" / f"image_{index}{suffix}"  # never a name taken from the job
            local.parent.mkdir(exist_ok=True)
            _link_or_copy(cached, local)
            paths[name] = str(local.resolve())
        return paths

    def _fetch_scene(self, asset: P.SceneAsset, job_dir: Path) -> Path:
        try:
            cached, _hit = self.cache.fetch(asset, lambda out, limit: self.client.download(asset.url, out, limit))
        except AssetError as error:
            raise _Failed(str(error), retryable=False) from None
        except (NotFound, Rejected, Unauthorized) as error:
            raise _Failed(f"scene.url: the scene could not be downloaded: {error}", retryable=False) from None
        except Unreachable as error:
            raise _Failed(f"scene.url: the scene could not be downloaded: {error}", retryable=True) from None
        if asset.type == "zip":
            try:
                return unpack_zip(cached, job_dir / "scene", asset.blend)
            except AssetError as error:
                raise _Failed(str(error), retryable=False) from None
        # Blender writes nothing next to the .blend it renders, but link it into the job's folder
        # anyway so the job only ever touches its own folder and the cache stays pristine.
        local = job_dir / "scene.blend"
        _link_or_copy(cached, local)
        return local

    def _on_render_progress(self, tracker, beat: _Heartbeat) -> None:
        progress = P.Progress(stage="rendering", frame=tracker.frame, frames_done=tracker.frames_done,
                              frame_count=tracker.frame_count, sample=tracker.sample,
                              samples=tracker.samples, percent=tracker.percent, eta_s=tracker.eta_s,
                              gpu=self._snapshot.gpu or None)
        beat.progress = progress
        self._publish(progress=progress.to_json())

    def _on_lease_lost(self, outcome: str, reason: str) -> None:
        run = self._run
        if run is not None:
            run.stop(reason)

    def _check(self, beat: _Heartbeat, before_render: bool = False) -> None:
        if beat.ended is not None:
            raise _JobEnded(*beat.ended)
        if self._stop.is_set():
            raise _JobEnded("released", "the worker is shutting down")
        if before_render and self.guard is not None and self.guard.decision.paused \
                and self.pause_policy == "requeue":
            raise _JobEnded("released", self.guard.decision.reason)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, dest)


class _Failed(Exception):
    def __init__(self, reason: str, log_tail: str = "", retryable: bool = False):
        super().__init__(reason)
        self.reason, self.log_tail, self.retryable = reason, log_tail, retryable


class _Heartbeat:
    """Renews the lease and reports progress while a job runs; learns of cancel and lost leases."""

    def __init__(self, client: WorkerClient, lease: P.Lease, interval: float, on_end):
        self.client = client
        self.lease = lease
        self.interval = interval
        self.on_end = on_end
        self.progress = P.Progress(stage="downloading")
        self.ended: tuple[str, str] | None = None
        self.run: BlenderRun | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{lease.job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=C.READ_TIMEOUT + C.CONNECT_TIMEOUT)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reply = self.client.heartbeat(self.lease.job_id, self.lease.lease_id, self.progress)
            except LeaseLost as error:
                self._end("lost", f"the lease was lost: {error}")
                return
            except (Unreachable, Rejected, NotFound, Unauthorized) as error:
                log.warning("heartbeat for job %s failed: %s", self.lease.job_id, error)
                continue
            if reply.get("cancel"):
                self._end("canceled", "the job was canceled on the server")
                return

    def _end(self, outcome: str, reason: str) -> None:
        self.ended = (outcome, reason)
        self.on_end(outcome, reason)
