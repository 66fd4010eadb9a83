"""One job's attempt on this PC: download, render, queue the outputs, report, in that order.

A ``JobRun`` lives on the worker loop's thread and sees only its ``JobContext``: the loop's few services
(post, call, wait, tell a stage or progress, wait for the results to leave), the client, the outbox, the scene
cache, the folders, a snapshot of the settings and the Blenders; never the worker itself (procrastinate hands
a job a frozen context the same way). Its blocking steps (downloads, Blender) run on helper threads through
``ctx.call``, so the loop keeps applying events meanwhile: a pause, a cancel or a lost lease reaches ``end()``
within the loop's next turn and stops Blender at once.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from worker_app import layout as L
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.blender_scripts import contract as K
from worker_app.client import file_sha256
from worker_app.core.events import BlenderAdded, BlenderWanted, OutputSaved, RenderProgress, SentKind
from worker_app.core.folders import Folders
from worker_app.core.settings import Settings
from worker_app.core.downloads import Failed, fetch_images, fetch_scene
from worker_app.core.heartbeat import Heartbeat
from worker_app.core.ports import RunPort
from worker_app.core.redact import Redactor
from worker_app.core.state import JobProgress, Outcome, State
from worker_app.guard.causes import PauseDecision
from worker_app.guard.energy import EnergyMeter
from worker_app.render.assets import SceneCache
from worker_app.render.blender import SCRIPT_EXIT_CODE, RenderResult
from worker_app.render.blendfile import NotABlendFile, read_header
from worker_app.render import installs
from worker_app.render.discovery import BlenderInstall, BlenderNotFound, pick
from worker_app.render.images import strip_volatile_metadata
from worker_app.render.output import Line, ProgressTracker

log = logging.getLogger("homefarm.worker")

# Blender's own words for a scene it cannot read: the same file fails on every worker.
_UNREADABLE = re.compile(r"File format is not supported|not a blend file|Failed to read blend file|"
                         r"cannot read file|Unable to open|Missing DNA block", re.IGNORECASE)


@dataclass
class JobReport:
    """How one job ended, with the time of each stage, in seconds."""
    job_id: str
    outcome: Outcome = Outcome.FAILED
    reason: str = ""
    outputs: list[Path] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    energy_wh: float | None = None


@dataclass(frozen=True)
class JobContext:
    """All a job's attempt may use of the worker, made by the loop at the claim."""
    # The loop's services; each runs on the loop's thread, as the job does.
    post: Callable[[Any], None]  # hands an event to the loop (from any thread)
    call: Callable[..., Any]  # call(fn, *args, name=...): runs fn on a helper thread, applying events meanwhile
    wait_until: Callable[..., bool]  # wait_until(condition, timeout=None): applies events until it holds
    stage: Callable[..., None]  # stage(state, progress, message): the job enters a stage the tray shows
    progress: Callable[..., None]  # progress(progress, message=""): news of the job within its stage
    results_sent: Callable[..., SentKind | None]  # results_sent(job_id, timeout=None): how they left the outbox
    pause: Callable[[], PauseDecision]  # the guard's decision now
    policy: Callable[[], Any]  # the pause policy (core/policies.py) in force
    gpu: Callable[[], dict[str, Any]]  # the first GPU's latest figures, for the server's progress
    progress_now: Callable[[], JobProgress | None]  # the progress the tray shows now
    # What the job works with.
    client: Any  # WorkerClient: downloads, and the server's address for the lease record
    make_client: Callable[[], Any]  # a client of its own, for the heartbeat
    outbox: Any  # core/outbox.Outbox
    cache: SceneCache
    folders: Folders
    settings: Settings  # as they were at the claim: a running job keeps what it started with
    blenders: tuple[BlenderInstall, ...]
    make_run: Callable[..., RunPort]  # a BlenderRun (cold or warm), or a test's fake of the same shape
    heartbeat_interval: float
    gpu_at_claim: Any = None  # the GPU monitor's newest sample at the claim: the energy meter's first reading


class Ended(Exception):
    """The job's processing ends early: released, lost or canceled."""

    def __init__(self, outcome: Outcome, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class JobRun:
    def __init__(self, lease: P.Lease, ctx: JobContext):
        self.ctx = ctx
        self.lease = lease
        self.job_id = lease.job_id
        self.dir = ctx.folders.jobs / lease.job_id
        self.redact = Redactor(self.dir, ctx.folders.jobs.parent)
        self.run: RunPort | None = None
        self.ended: tuple[Outcome, str] | None = None
        self.failure: Failed | None = None
        self.suspended = False
        self.queued: set[str] = set()
        self.meter = EnergyMeter(ctx.gpu_at_claim)
        self.beat = Heartbeat(ctx.make_client(), lease, ctx.heartbeat_interval, ctx.post)

    # -- from the loop's event handlers ----------------------------------------------------------

    def end(self, outcome: Outcome, reason: str) -> None:
        """Ends the job early (first reason wins) and stops Blender if it runs."""
        if self.ended is None:
            self.ended = (outcome, reason)
            log.warning("job %s %s: %s", self.job_id, outcome.value, reason)
        if self.run is not None:
            self.run.stop(reason)

    def fail(self, failure: Failed) -> None:
        self.failure = self.failure or failure
        if self.run is not None:
            self.run.stop(failure.reason)

    def suspend(self) -> None:
        if self.run is not None and self.run.suspend():
            self.suspended = True
            self.beat.progress = P.Progress(stage="rendering", message="suspended while the owner uses the PC; "
                                                                       "Blender keeps its GPU memory")
            self.ctx.progress(self._progress(suspended=True))

    def unsuspend(self) -> None:
        if self.run is not None and self.run.suspended:
            self.run.resume()
        self.suspended = False
        self.ctx.progress(self._progress(suspended=False))

    def wait_for_resume(self) -> None:
        """Holds the job (the heartbeat keeps its lease) until the pause ends."""
        self.ctx.wait_until(lambda: not self.ctx.pause().paused or self.ended is not None)

    def on_progress(self, progress: P.Progress) -> None:
        self.beat.progress = progress
        self.ctx.progress(JobProgress(self.job_id, "rendering", progress.frame, progress.frames_done or 0,
                                      progress.frame_count, progress.sample, progress.samples, progress.percent,
                                      progress.eta_s, self.suspended))

    def on_output(self, path: Path) -> None:
        try:
            self._queue_output(path)
        except Failed as failure:
            self.fail(failure)

    # -- the attempt ----------------------------------------------------------------------------

    def execute(self) -> JobReport:
        started = time.monotonic()
        report = JobReport(self.job_id)
        ctx, lease = self.ctx, self.lease
        ctx.progress(JobProgress(self.job_id), message=f"job {self.job_id} claimed")
        try:
            try:
                spec = P.JobSpec.parse(lease.spec)
            except P.ValidationError as error:
                raise Failed(f"invalid job: {error}", retryable=False) from None
            self.beat.start()
            try:
                self._prepare_dir()
                outputs, report.stages, stats, blender = self._work(spec)
            except OSError as error:
                # A file another program holds open (a viewer, an antivirus), a full disk: this attempt
                # fails, another may not; the worker goes on.
                log.warning("job %s: %s", self.job_id, error, exc_info=True)
                raise Failed(f"this PC could not read or write the job's files ({error.strerror or error}); "
                             "the job is offered again", retryable=True) from None
            except (Failed, Ended):
                raise
            except Exception:  # a bug in homefarm: the job goes back, the worker goes on
                log.exception("job %s: unexpected error", self.job_id)
                raise Failed("homefarm hit an unexpected error while running the job (see the PC's log); "
                             "the job is offered again", retryable=True) from None
            report.outputs = [self.dir / L.OUTPUTS / name for name in outputs]
            stats.update({f"{k}_s": round(v, 3) for k, v in report.stages.items()})
            stats.update(blender=blender.version, frames=len(spec.render.frame_list()),
                         total_s=round(time.monotonic() - started, 3))
            energy = self.meter.reading()
            if energy.wh is not None:
                stats.update(gpu_energy_wh=round(energy.wh, 4), energy_source=energy.source)
            t0 = time.monotonic()
            self._report("complete", {"outputs": outputs, "stats": stats, "warnings": self.warnings()})
            ctx.stage(State.UPLOADING, JobProgress(self.job_id, "uploading", percent=100.0),
                      f"job {self.job_id}: uploading")
            self.beat.progress = P.Progress(stage="uploading", percent=100.0)
            sent = ctx.results_sent(self.job_id)  # the heartbeat keeps the lease while the outputs go out
            report.stages["upload"] = time.monotonic() - t0
            if sent == SentKind.COMPLETE:
                report.outcome = Outcome.DONE
            elif sent is None:
                report.outcome, report.reason = Outcome.KEPT, "the results are kept on disk and sent at the next start"
            elif sent == SentKind.CANCELED:
                report.outcome, report.reason = Outcome.CANCELED, "the job was canceled on the server"
            else:
                report.outcome, report.reason = Outcome.LOST, "the server gave the job to someone else meanwhile"
        except Failed as failure:
            report.reason = self.redact(failure.reason)
            log.error("job %s failed: %s", self.job_id, failure.reason)
            self._report("fail", {"reason": report.reason, "log_tail": self.redact(failure.log_tail),
                                  "retryable": failure.retryable, "needs_blender": failure.needs_blender,
                                  "installing_blender": failure.installing_blender})
            self.beat.stop()
            ctx.results_sent(self.job_id, timeout=C.READ_TIMEOUT)
        except Ended as ended:
            report.outcome, report.reason = ended.outcome, ended.reason
            if ended.outcome == Outcome.RELEASED:
                self._report("release", {"reason": ended.reason})
                self.beat.stop()
                ctx.results_sent(self.job_id, timeout=5.0)
            else:  # lost or canceled: the server wants nothing more of this job
                ctx.outbox.forget(self.job_id, self.lease.lease_id)
                (self.dir / L.LEASE).unlink(missing_ok=True)
        finally:
            self.beat.stop()
            report.stages["total"] = time.monotonic() - started
            report.energy_wh = self.meter.reading().wh
        return report

    def _report(self, kind: str, payload: dict[str, Any]) -> None:
        """Writes the job's final word to the outbox; from here on the outbox owns the job's fate."""
        self.ctx.outbox.add_report(self.job_id, self.lease.lease_id, P.REPORTS[kind](**payload))
        (self.dir / L.LEASE).unlink(missing_ok=True)

    def check(self) -> None:
        """Raises what ended the job from outside: a cancel, a lost lease, a stop, a rejected output."""
        if self.failure is not None:
            raise self.failure
        if self.ended is not None:
            raise Ended(*self.ended)

    def _prepare_dir(self) -> None:
        job_id = self.job_id
        if not job_id.replace("-", "").replace("_", "").isalnum():
            raise Failed(f"job_id: {job_id!r} is not a plain identifier", retryable=False)
        if self.ctx.outbox.pending(job_id):
            # Outputs of an earlier attempt still wait to be sent from here: they are not ours any more.
            self.ctx.outbox.drop_job(job_id)
        self._fresh_dir()
        # Written before any work: a crash from here on is found at the next start and the job given back.
        (self.dir / L.LEASE).write_text(json.dumps({"job_id": job_id, "lease_id": self.lease.lease_id,
                                                         "server": self.ctx.client.server_url}),
                                             encoding="utf-8")

    def _fresh_dir(self) -> None:
        """A fresh folder for each attempt. What an earlier attempt left and cannot be removed now (Windows
        keeps files another program holds open) is moved aside, never reused, and removed later."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():
            aside = self.dir.with_name(f".stale-{self.job_id}-{time.time_ns()}")
            self.dir.rename(aside)  # an OSError here fails this attempt, retryable
            shutil.rmtree(aside, ignore_errors=True)
        (self.dir / L.OUTPUTS).mkdir(parents=True)

    def _work(self, spec: P.JobSpec) -> tuple[list[str], dict[str, float], dict[str, Any], BlenderInstall]:
        """Downloads and renders; returns the output names, stage times, stats and the Blender used."""
        ctx, lease = self.ctx, self.lease
        stages: dict[str, float] = {}
        t0 = time.monotonic()
        ctx.stage(State.DOWNLOADING, JobProgress(self.job_id, "downloading"),
                  f"job {self.job_id}: downloading the scene")
        self.beat.progress = P.Progress(stage="downloading")
        blend = ctx.call(fetch_scene, ctx.cache, ctx.client, spec.scene, self.dir)
        images = ctx.call(fetch_images, ctx.cache, ctx.client, spec.overrides.get("images", {}), self.dir)
        stages["download"] = time.monotonic() - t0
        blender = self._pick_blender(blend, spec)
        self.before_render()

        frames = spec.render.frame_list()
        # Frames an earlier attempt already uploaded are not rendered again.
        names = {f: K.frame_output_name(f, spec.render.format) for f in frames}
        todo = [f for f in frames if names[f] not in lease.outputs]
        stats: dict[str, Any] = {"frames_skipped": len(frames) - len(todo)}
        # Everything an earlier attempt uploaded stays the job's: its frames and its compositor files.
        done_before = list(lease.outputs)
        if not todo:
            return done_before, stages, stats, blender

        t0 = time.monotonic()
        render = spec.render.to_json()
        if render.get("device", "AUTO") == "AUTO":
            render["device"] = ctx.settings.device
        job = {K.RENDER: render, K.FRAMES: todo, K.OUTPUT_DIR: str((self.dir / L.OUTPUTS).resolve()),
               K.OVERRIDES: {k: v for k, v in spec.overrides.items() if k != "images"}, K.IMAGES: images,
               K.DEVICE_TYPE: ctx.settings.device_type or None, K.GPU_INDICES: list(ctx.settings.gpu_indices),
               # A warm Blender may keep a .blend loaded for the next job on it (a zip's files live in this
               # job's folder, which goes when the job ends: opened anew each time).
               K.SCENE_KEY: spec.scene.sha256 if ctx.settings.warm and ctx.settings.reuse_scene
               and spec.scene.type == "blend" else None,
               K.STRICT: spec.strict}
        ctx.stage(State.RENDERING, JobProgress(self.job_id, "rendering", frame_count=len(todo)),
                  f"job {self.job_id}: rendering")
        result = self._render(blender, blend, job, spec)
        stages["render"] = time.monotonic() - t0
        stats["uploaded_during_render"] = len(self.queued) - ctx.outbox.pending(self.job_id)
        self.check()
        if not result.ok:
            # A reason the script gave (the job's fault, named by field) stands; else Blender's own words on a
            # file it could not read. (A missing library also prints "Unable to open".)
            told = self.run is not None and self.run.tracker.job_error
            unreadable = None if told else _UNREADABLE.search(result.log_tail or "")
            retryable = result.stopped is None and result.exit_code not in (SCRIPT_EXIT_CODE, 0) \
                and not unreadable
            reason = result.reason
            if unreadable:
                reason = f"scene: Blender could not read the file ({unreadable.group(0)})"
            raise Failed(reason, log_tail=result.log_tail, retryable=retryable)
        assert self.run is not None
        self._keep_record(self.run.tracker)
        tracker = self.run.tracker
        if tracker.scene_reused:
            stats["scene_reused"] = 1  # rendered on the scene the job before left loaded in the warm Blender
        if tracker.warnings:
            stats["warnings"] = self.redact("; ".join(tracker.warnings))[:1000]
        if spec.strict and tracker.missing:
            listed = ", ".join(f"{m['kind']} {m['path']!r}" for m in tracker.missing[:5])
            raise Failed(f"strict: the scene lacks {len(tracker.missing)} file(s): {listed}"
                         f"{' and more' if len(tracker.missing) > 5 else ''}", retryable=False)
        if not result.saved:
            raise Failed("Blender finished but saved no output", retryable=False)
        for saved in result.saved:
            self._queue_output(Path(saved))
        names_now = [Path(saved).name for saved in dict.fromkeys(result.saved)]
        return list(dict.fromkeys(done_before + names_now)), stages, stats, blender

    def warnings(self) -> list[dict[str, Any]]:
        """What the web app should know of a done job: missing files, paths pointed into the job's folder."""
        if self.run is None:
            return []
        tracker = self.run.tracker
        out = [{k: self.redact(v) for k, v in m.items()} for m in tracker.missing]
        out += [{"kind": "redirected", "path": self.redact(r["from"]),
                 "message": f"{r['what']}: written into the job's folder ({r['to']})"} for r in tracker.redirected]
        out += [{"kind": "render", "path": "", "message": self.redact(w)} for w in tracker.warnings]
        return out[:P.MAX_WARNINGS]

    def _keep_record(self, tracker: ProgressTracker) -> None:
        """The paths the scene named that were pointed into the job's folder, for the owner to look at."""
        redirected = tracker.redirected
        if redirected:
            log.warning("job %s: %d path(s) of the scene pointed into the job's folder: %s", self.job_id,
                        len(redirected), "; ".join(f"{r['what']}: {r['from']!r}" for r in redirected[:10]))
            (self.dir / L.REDIRECTED).write_text(json.dumps(redirected, indent=2), encoding="utf-8")

    def before_render(self) -> None:
        self.check()
        decision = self.ctx.pause()
        if decision.paused:
            self.ctx.policy().before_render(self, decision.reason)
        self.check()

    def _render(self, blender: BlenderInstall, blend: Path, job: dict[str, Any], spec: P.JobSpec) -> RenderResult:
        ctx = self.ctx
        job_id = self.job_id

        def on_line(line: Line) -> None:
            # Each frame goes into the outbox as soon as Blender has saved it; the sender uploads it
            # while the next frame renders. A movie is sent once it is whole.
            event = line.event
            if event and event.get("event") == K.FILE_SAVED and isinstance(event.get("path"), str) \
                    and not K.is_movie(Path(event["path"]).name):
                ctx.post(OutputSaved(job_id, event["path"]))

        def on_progress(tracker: ProgressTracker) -> None:
            ctx.post(RenderProgress(job_id, tracker.progress(ctx.gpu())))

        self.run = run = ctx.make_run(blender.path, blend, job, self.dir, total_timeout=spec.timeouts.total_s,
                                silence_timeout=spec.timeouts.silence_s, user_dir=ctx.folders.blender_user,
                                confine_writes=ctx.settings.confine_writes,
                                on_progress=on_progress, on_line=on_line)
        decision = ctx.pause()
        if decision.paused:  # the pause began in the instant before Blender starts
            ctx.policy().on_pause(self, decision.reason)
            self.check()
        result: RenderResult = ctx.call(run.run, name="blender")
        return result

    def _pick_blender(self, blend: Path, spec: P.JobSpec) -> BlenderInstall:
        """The install for this scene: new enough for the job and for the file. A file that is no .blend fails
        at once on every worker; one saved by a newer Blender than this PC has goes to a worker that has it."""
        what = f"scene.blend ({spec.scene.blend})" if spec.scene.type == "zip" else "scene"
        try:
            header = read_header(blend)
        except NotABlendFile as error:
            raise Failed(f"{what}: the file is {error}; send a .blend saved by Blender", retryable=False) from None
        except OSError as error:
            raise Failed(f"{what}: could not be read on this PC ({error.strerror})", retryable=True) from None
        needed = [v for v in (spec.min_blender_version, header.version_text) if v]
        wanted = max(needed, key=P.version_tuple) if needed else None
        try:
            chosen = pick(list(self.ctx.blenders), wanted)
            installs.mark_used(chosen)
            return chosen
        except BlenderNotFound:
            installed = self._install_blender(wanted) if wanted else None
            if installed is not None:
                return installed
            have = ", ".join(b.version for b in self.ctx.blenders)
            if wanted == header.version_text:
                reason = f"{what}: saved by Blender {wanted}; this PC has {have}"
            else:
                reason = f"blender.min_version: the job needs Blender {wanted} or newer; this PC has {have}"
            asking = bool(wanted) and self.ctx.settings.auto_install == "ask"
            if asking:  # the job waits on the server while the owner is asked (the tray's notification)
                self.ctx.post(BlenderWanted(installs.series_of(wanted or "")))
                reason += "; its owner is asked to install it"
            raise Failed(reason, retryable=False, needs_blender=wanted, installing_blender=asking) from None

    def _install_blender(self, wanted: str) -> BlenderInstall | None:
        """With ``blender.auto_install = "yes"``: installs the newest release of the series the job needs while
        the job keeps its lease (one attempt), and offers it to the jobs after this one. None when not allowed,
        or when it cannot be done here (the reason goes to the log; the job fails as without it)."""
        settings = self.ctx.settings
        if settings.auto_install != "yes":
            return None
        series = installs.series_of(wanted)
        self.ctx.stage(State.DOWNLOADING, JobProgress(self.job_id, f"installing Blender {series}"),
                       f"job {self.job_id}: installing Blender {series}, which its scene needs")
        try:
            install: BlenderInstall = self.ctx.call(
                installs.install, self.ctx.folders.jobs.parent, series, settings.blender_sources,
                settings.blender_mirror, settings.allow_insecure_http, name="install-blender")
        except installs.InstallError as error:
            log.warning("job %s: %s", self.job_id, error)
            return None
        self.ctx.post(BlenderAdded(install))
        self.check()
        try:
            return pick([install], wanted)
        except BlenderNotFound:  # the series' newest release is older than the job's min_version
            return None

    def _queue_output(self, path: Path) -> None:
        """An output Blender has saved: checked, cleaned of volatile metadata, hashed, into the outbox."""
        out_dir = (self.dir / L.OUTPUTS).resolve()
        path = Path(path).resolve()
        if path.name in self.queued:
            return
        if path.parent != out_dir or not path.is_file():
            raise Failed("Blender reported an output outside the job's folder", retryable=False)
        try:
            P.check_output_name(path.name, "output")
        except P.ValidationError as error:
            raise Failed(str(error), retryable=False) from None
        strip_volatile_metadata(path)
        self.ctx.outbox.add_output(self.job_id, self.lease.lease_id, path.name, path, file_sha256(path))
        self.queued.add(path.name)

    def _progress(self, suspended: bool) -> JobProgress:
        current = self.ctx.progress_now() or JobProgress(self.job_id, "rendering")
        return JobProgress(**{**current.__dict__, "suspended": suspended})
