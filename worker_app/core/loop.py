"""The worker loop: sign on, long-poll for a job, run it, again; the one owner of the worker's state.

Other threads (the guard, the GPU monitor, the outbox's sender, the heartbeat, Blender's reader) never touch
the worker's state: they ``post`` typed events (``core/events.py``) to a queue that this loop alone drains
and applies. Blocking steps (HTTP, downloads, Blender) run on helper threads through ``call``, so the loop
applies events while it waits, and a pause or a cancel reaches Blender within a fraction of a second.
Whoever shows the worker (the CLI, the tray) receives immutable ``Snapshot``s through a callback and sends
commands (``stop``); nothing here imports Qt.
"""

from __future__ import annotations

import functools
import logging
import platform
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from worker_app import layout as L
from worker_app import __version__
from worker_app import constants as C
from worker_app import protocol as P
from worker_app.client import (ClientError, GatewayCut, Held, LeaseLost, NotFound, Rejected, Unauthorized, Unreachable,
                               WorkerClient, backoff_delay)
from worker_app.core import events as E
from worker_app.core.job import JobContext, JobReport, JobRun
from worker_app.core.eventloop import EventLoop
from worker_app.core.folders import Folders, interrupted_jobs, prune_job_dirs
from worker_app.core.policies import POLICIES, PausePolicy
from worker_app.core.ports import GuardPort, RunPort
from worker_app.core.settings import Settings
from worker_app.core.state import (JobProgress, LastJob, Link, LinkProblem, Outcome, Pause, Snapshot, State,
                                   Update)
from worker_app.guard.causes import PauseDecision, PauseKind
from worker_app.guard.energy import Ledger, MinuteSampler
from worker_app.core.outbox import Outbox, OutboxSender
from worker_app.render import procs
from worker_app.render.assets import SceneCache
from worker_app.render.blender import BlenderRun
from worker_app.render.warm import WarmBlender, WarmLimits, warm_run
from worker_app.render.discovery import BlenderInstall, BlenderNotFound, probe_devices
from worker_app.system import gpu
from worker_app.system.power import KeepAwake

log = logging.getLogger("homefarm.worker")

HELD_RECHECK_S = 30.0  # a worker held by the server until released asks again this often


class Worker(EventLoop):
    def __init__(self, client: WorkerClient, blenders: BlenderInstall | list[BlenderInstall], folders: Folders,
                 settings: Settings = Settings(), *, make_client: Callable[[], WorkerClient] | None = None,
                 guard: GuardPort | None = None, monitor: gpu.GpuMonitor | None = None, ledger: Ledger | None = None,
                 outbox: Outbox | None = None, on_snapshot: Callable[[Snapshot], None] | None = None,
                 on_job_end: Callable[[JobReport], None] | None = None,
                 make_run: Callable[..., RunPort] | None = None, keep_awake: KeepAwake | None = None):
        super().__init__(on_snapshot)
        self.client = client
        self.blenders = blenders if isinstance(blenders, list) else [blenders]
        self.folders = folders
        self.settings = settings
        self.cache = SceneCache(folders.cache)
        self.make_client = make_client or (lambda: client)  # heartbeats and uploads use sessions of their own
        self.guard = guard
        self.monitor = monitor
        self.ledger = ledger
        self._sampler = MinuteSampler(ledger) if ledger is not None else None  # the activity window's minutes
        self._outbox = outbox  # opened by run() when not given
        self.on_job_end = on_job_end or (lambda report: None)
        self._make_run = make_run  # None: Blender itself (warm or cold, as set); the core's tests pass a fake
        self.warm = WarmBlender(folders.jobs.parent / L.WARM, WarmLimits(idle_s=settings.warm_idle_s),
                                on_change=lambda running: self.post(E.WarmChanged(running)))
        self.heartbeat_interval = C.HEARTBEAT_INTERVAL
        self.worker_id: str | None = None
        self.decision = PauseDecision()
        self._stopping = threading.Event()
        self._job: JobRun | None = None
        self._claiming = False
        self._devices: list[str] | None = None
        self._gpus: gpu.GpuInventory | None = None  # what hello reports, listed once
        self._claim_wait_max = float("inf")  # what the server allows, from its hello
        self._hello_due = False  # say hello again (keeping our id): what this worker has changed
        self._sender: OutboxSender | None = None
        self._sent: dict[str, E.SentKind] = {}  # job id -> how its results left the outbox
        if guard is not None:
            guard.add_listener(lambda decision: self.post(E.PauseChanged(decision)))
        if monitor is not None:
            monitor.on_sample = lambda sample: self.post(E.GpuSampled(sample))
        self.keep_awake = keep_awake
        if keep_awake is not None:
            keep_awake.on_change = lambda held: self.post(E.AwakeChanged(held))

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "the outbox opens when the loop runs"
        return self._outbox

    # -- from any thread ------------------------------------------------------------------------

    def stop(self) -> None:
        """Asks the loop to end; a running render is stopped and its job released to the server."""
        self._stopping.set()
        self.post(E.StopRequested())

    def reconfigure(self, settings: Settings, blenders: list[BlenderInstall] | None = None) -> None:
        """New settings take effect at the next job (a running one keeps what it started with)."""
        self.post(E.SettingsChanged(settings, tuple(blenders or ())))

    def own_pids(self) -> set[int]:
        """Our Blender's processes: detectors must not take them for a game or a foreign GPU load."""
        job = self._job
        run = job.run if job is not None else None
        return (run.pids() if run is not None else set()) | self.warm.pids()

    @property
    def make_run(self) -> Callable[..., RunPort]:
        """How a job's Blender runs: in the warm Blender when the owner has it on, else a Blender of its own
        (or the fake a test gave)."""
        if self._make_run is not None:
            return self._make_run
        return functools.partial(warm_run, self.warm) if self.settings.warm else BlenderRun

    def _check_warm_vram(self, sample: gpu.GpuSnapshot) -> None:
        """An idle warm Blender that holds more than its share of a GPU's memory (where NVML tells) ends."""
        pids = self.warm.pids()
        if not pids:
            return
        for card in sample.gpus:
            held = sum(p.vram_bytes or 0 for p in card.processes if p.pid in pids)
            if card.vram_total and held > C.WARM_MAX_VRAM_SHARE * card.vram_total:
                self._end_warm(f"it holds {held // 2**20} MiB of {card.name}'s memory")
                return

    def _end_warm(self, reason: str) -> None:
        """Ends an idle warm Blender (its memory and VRAM with it) off the loop's thread."""
        if self.warm.running:
            threading.Thread(target=self.warm.close, args=(reason,), name="warm-close", daemon=True).start()

    @property
    def policy(self) -> PausePolicy:
        return POLICIES[self.settings.pause_policy]

    def start_thread(self) -> threading.Thread:
        self._loop_thread = threading.Thread(target=self.run, name="homefarm-worker", daemon=True)
        self._loop_thread.start()
        return self._loop_thread

    # -- events ---------------------------------------------------------------------------------

    def _apply_one(self, event: object) -> None:
        self._apply_event(event)
        self._sync_awake()

    def _sync_awake(self) -> None:
        """The PC is kept awake while a job is held and worked on: not once it ends, while a pause stops or
        freezes it (``finish`` renders on), nor while the worker stops."""
        if self.keep_awake is None:
            return
        job = self._job
        if (self.settings.keep_awake and job is not None and job.ended is None and not self._stopping.is_set()
                and not (self.decision.paused and not self.policy.renders_while_paused)):
            self.keep_awake.hold(f"rendering job {job.job_id}")
        else:
            self.keep_awake.release()

    def _apply_event(self, event: object) -> None:
        job = self._job
        match event:
            case E.StopRequested():
                self.enter(State.STOPPING, message="stopping")
                if job is not None:
                    job.end(Outcome.RELEASED, "the worker is shutting down")
                self._end_claim()
            case E.PauseChanged(decision=decision):
                before = _pause_of(self.decision)
                was_paused, self.decision = self.decision.paused, decision
                pause = _pause_of(decision)
                self._note_pause(before, pause)
                self.show(pause=pause)
                if decision.paused != was_paused or decision.paused:
                    self._share_state()
                if decision.paused:
                    self._end_claim()
                    if job is None:
                        self._end_warm(f"paused: {decision.reason}")
                    if job is not None and not was_paused:
                        self.policy.on_pause(job, decision.reason)
                elif job is not None and was_paused:
                    self.policy.on_resume(job)
            case E.SettingsChanged(settings=settings, blenders=blenders):
                # The server may have lowered the longest claim it allows: that limit stays.
                self.settings = replace(settings, claim_wait=min(settings.claim_wait, self._claim_wait_max))
                self.warm.limits = replace(self.warm.limits, idle_s=self.settings.warm_idle_s)
                if not self.settings.warm and job is None:
                    self._end_warm("warm Blender was turned off")
                if blenders and list(blenders) != self.blenders:  # one added or removed: the server hears of it
                    self.blenders = list(blenders)
                    if self.worker_id is not None:
                        self._hello_due = True
                        self._end_claim()
            case E.BlenderAdded(install=install):
                if all(b.path != install.path for b in self.blenders):
                    self.blenders = [*self.blenders, install]
                    self._hello_due = True  # the server hears of it before the next claim: the waiting one ends
                    self._end_claim()
                series = ".".join(install.version.split(".")[:2])
                if series in self._snapshot.blenders_wanted:
                    self.show(blenders_wanted=tuple(s for s in self._snapshot.blenders_wanted if s != series))
            case E.BlenderWanted(series=series):
                if series not in self._snapshot.blenders_wanted:
                    self.show(blenders_wanted=(*self._snapshot.blenders_wanted, series))
            case E.WarmChanged(running=running):
                self.show(blender_warm=running)
                self._share_state()
            case E.AwakeChanged(held=held):
                self.show(keeping_awake=held)
            case E.GpuSampled(snapshot=sample):
                if self._sampler is not None:
                    self._note("a GPU sample", self._sampler.add, sample, self.own_pids())
                if job is not None:
                    job.meter.add(sample)
                else:
                    self._check_warm_vram(sample)
                if sample.available and sample.gpus:
                    figures = sample.gpus[0].figures()
                    if figures != self._snapshot.gpu:
                        self.show(gpu=figures, gpu_problem="")
                elif sample.problem and sample.problem != self._snapshot.gpu_problem:
                    self.show(gpu={}, gpu_problem=sample.problem)
            case E.LinkChanged():
                self._set_link(event.online, LinkProblem.UNAUTHORIZED if event.unauthorized
                               else LinkProblem.UNREACHABLE, event.detail, event.retry_at)
            case E.ResultsSent(job_id=job_id, kind=kind):
                if job is not None and job.job_id == job_id:
                    self._sent[job_id] = kind  # what the current job's flush waits for
                prune_job_dirs(self.folders.jobs, self.outbox, keep=job.job_id if job else None)
                if job is not None and job.job_id == job_id and kind in (E.SentKind.LOST, E.SentKind.CANCELED):
                    job.end(Outcome.CANCELED if kind == E.SentKind.CANCELED else Outcome.LOST,
                            "the job was canceled on the server" if kind == E.SentKind.CANCELED
                            else "the server gave the job to someone else")
            case E.LeaseEnded(job_id=job_id):
                if job is not None and job.job_id == job_id:
                    job.end(event.outcome, event.reason)
            case E.RenderProgress(job_id=job_id):
                if job is not None and job.job_id == job_id and job.ended is None:
                    job.on_progress(event.progress)
            case E.OutputSaved(job_id=job_id):
                if job is not None and job.job_id == job_id and job.ended is None:
                    job.on_output(Path(event.path))

    def _set_link(self, online: bool, problem: LinkProblem, detail: str = "", retry_at: float | None = None) -> None:
        link = self._snapshot.link
        if online:
            if not link.online:
                log.info("the server answers again")
                self.show(link=Link())
            return
        since = link.since if link.problem == problem and link.since is not None else time.time()
        self.show(link=Link(problem, since, retry_at, detail))

    def _end_claim(self) -> None:
        """Ends our waiting long poll at the server, so a claim begun before a pause or a stop brings no job."""
        if self._claiming and self.worker_id is not None:
            threading.Thread(target=self._cancel_claim, args=(self.worker_id,), name="end-claim",
                             daemon=True).start()

    def _cancel_claim(self, worker_id: str) -> None:
        client = self.make_client()
        try:
            for _ in range(20):
                try:
                    if client.cancel_claim(worker_id):
                        return
                except (Unreachable, Rejected, NotFound, Unauthorized, LeaseLost):
                    pass
                # Normally the claim returns within milliseconds; again if it had not reached the server.
                if self._stopping.wait(0.25) and not self._claiming:
                    return
        finally:
            if client is not self.client:
                client.close()

    # -- the loop -------------------------------------------------------------------------------

    def _note(self, what: str, fn: Callable[..., object], *args: object) -> None:
        """Writes to the owner's statistics (the ledger), which must never cost a job or the loop."""
        if self.ledger is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("could not note %s in the statistics", what)

    def _note_pause(self, before: Pause | None, after: Pause | None) -> None:
        """The activity window's pause bands: one begins as the worker pauses or its pause changes kind, and
        ends as it resumes."""
        if self.ledger is None or (before is None and after is None) or (
                before is not None and after is not None and before.kind == after.kind):
            return
        if after is None:
            self._note("a pause's end", self.ledger.pause_ended, time.time())
        else:
            self._note("a pause", self.ledger.pause_began, time.time(), str(after.kind), after.reason)

    def _prune_history(self) -> None:
        """The owner's history keeps 30 days; a job's thumbnail goes with it."""
        assert self.ledger is not None
        for name in self.ledger.prune():
            (self.folders.jobs.parent / L.THUMBNAILS / Path(name).name).unlink(missing_ok=True)

    def run(self) -> None:
        self._loop_thread = self._loop_thread or threading.current_thread()
        if self.ledger is not None:
            self._note("the history's end", self.ledger.close_open_pauses, time.time())
            self._note("the history's end", self._prune_history)
        self.folders.jobs.mkdir(parents=True, exist_ok=True)
        reaped = procs.reap_orphans([*self.folders.jobs.glob(f"*/{L.PIDFILE}"), self.warm.pidfile])
        if reaped:
            log.warning("ended %d Blender process(es) left by an earlier run", reaped)
        if self._outbox is None:
            self._outbox = Outbox(self.folders.outbox)
        sender = self._sender = OutboxSender(self.outbox, self.make_client(), post=self.post).start()
        if self.guard is not None:
            self.decision = self.guard.decision
            pause = _pause_of(self.decision)
            self._note_pause(None, pause)  # paused from the start: the band begins now
            self.show(pause=pause)
        self._recover()
        failures = handled = 0
        try:
            while not self._stopping.is_set():
                try:
                    if self.outbox.pending():
                        self._send_kept_results()
                        continue
                    if self.worker_id is None:
                        self.enter(State.CONNECTING, message=f"connecting to {self.client.server_url}")
                        self._hello()
                    elif self._hello_due:  # a Blender was added: the server offers this worker what it needs
                        self._hello()
                    if self._stopping.is_set():  # asked to stop while signing on: no pause, no claim
                        continue
                    if self._update_required() or self._paused():
                        continue
                    lease = self._claim()
                    failures = 0
                    if lease is None:
                        continue
                    if self._stopping.is_set() or self.decision.paused:
                        # Claimed in the instant the pause began: give it straight back.
                        self.call(self.client.release, lease.job_id, lease.lease_id,
                                  self.decision.reason or "the worker is shutting down")
                        continue
                    if self._handle(lease) != Outcome.RELEASED:  # a job given back is not done with
                        handled += 1
                    if self.settings.max_jobs is not None and handled >= self.settings.max_jobs:
                        break
                except Unauthorized as error:
                    failures += 1
                    self._back_off(failures, LinkProblem.UNAUTHORIZED,
                                   f"the server refused the worker token; sign in again ({error})")
                except (Unreachable, Rejected, NotFound) as error:
                    failures += 1
                    if isinstance(error, Rejected) and error.field == "worker_id":
                        self.worker_id = None  # the server forgot us (a new database): sign on again
                    self._back_off(failures, LinkProblem.UNREACHABLE, f"server unreachable: {error}", str(error))
                except Exception as error:  # a bug or the OS: logged, and the loop goes on after a pause
                    failures += 1
                    log.exception("the worker loop hit an unexpected error")
                    self._back_off(failures, LinkProblem.NONE, f"unexpected error ({type(error).__name__})")
        finally:
            if self.keep_awake is not None:
                self.keep_awake.close()
            sender.stop()
            if self._sampler is not None:
                self._note("the last minute", self._sampler.flush)
            if self.ledger is not None and self.decision.paused:
                self._note("a pause's end", self.ledger.pause_ended, time.time())
            self.warm.close("the worker stopped")
            self.enter(State.STOPPED, message="stopped", job=None)

    def _claim(self) -> P.Lease | None:
        self.enter(State.WAITING, message="waiting for a job", job=None)
        self._claiming = True
        try:
            lease = self.call(self.client.claim, self.worker_id, self.settings.claim_wait, name="claim")
        except Held as held:
            # The server's dashboard holds this worker: say so, and ask again when the hold ends (within
            # HELD_RECHECK_S at most, as it may be released early).
            self._claiming = False
            self.show(held=True, held_until=held.until, message=str(held))
            wait = HELD_RECHECK_S if held.until is None else min(HELD_RECHECK_S, max(held.until - time.time(), 1.0))
            self._sleep(wait)
            return None
        except GatewayCut as cut:
            # A proxy ended the wait: the server is fine. Wait less from now on, and claim again at once.
            shorter = max(1.0, round(cut.seconds * C.GATEWAY_CUT_SHARE, 1))
            if shorter < self.settings.claim_wait:
                log.warning("a proxy cut a waiting claim after %.0f s (%s); claims now wait %.0f s",
                            cut.seconds, cut.status, shorter)
                self._claim_wait_max = min(self._claim_wait_max, shorter)
                self.settings = replace(self.settings, claim_wait=shorter)
            return None
        finally:
            self._claiming = False
        self._set_link(True, LinkProblem.NONE)
        if self._snapshot.held:
            self.show(held=False, held_until=None)
        return lease

    def _handle(self, lease: P.Lease) -> Outcome:
        job = JobRun(lease, self._job_context())
        self._job = job
        if self.decision.paused and job.ended is None:
            self.policy.on_pause(job, self.decision.reason)
        self._sync_awake()
        try:
            report = job.execute()
        finally:
            self._job = None
            self._sync_awake()
        if report.outcome == Outcome.DONE:
            self.show(jobs_done=self._snapshot.jobs_done + 1, message=f"job {lease.job_id} done")
        elif report.outcome == Outcome.FAILED:
            self.show(jobs_failed=self._snapshot.jobs_failed + 1,
                      message=f"job {lease.job_id} failed: {report.reason}")
        self.show(last_job=_last(report), job=None)
        if self.ledger is not None:
            outputs = report.outputs[0].parent if report.outputs else self.folders.jobs / lease.job_id / L.OUTPUTS
            self._note(f"job {lease.job_id}", self.ledger.record, lease.job_id, self.client.server_url,
                       report.outcome.value, report.stages["total"], report.stages.get("render", 0.0),
                       report.energy_wh, report.reason, str(outputs))
        self.on_job_end(report)
        return report.outcome

    # -- results and recovery -------------------------------------------------------------------

    def _recover(self) -> None:
        for job_id in interrupted_jobs(self.folders.jobs, self.outbox):
            log.warning("job %s was interrupted by a restart; giving it back to the server", job_id)

    def _send_kept_results(self) -> None:
        """Before claiming anything new, the results kept from before go out."""
        count = self.outbox.pending()
        if self._snapshot.link.online:
            self.enter(State.UPLOADING, message=f"sending {count} result(s) kept from before", job=None)
        else:
            self.enter(State.BACKING_OFF, message=f"{count} result(s) wait for the server", job=None)
        self.wait_until(lambda: self._stopping.is_set() or not self.outbox.pending(), 1.0)

    def _job_context(self) -> JobContext:
        """What the next job may use of the worker, and no more."""
        monitor = self.monitor
        return JobContext(
            post=self.post, call=self.call, wait_until=self.wait_until, stage=self._job_stage,
            progress=self._job_progress, results_sent=self.flush, pause=lambda: self.decision,
            policy=lambda: self.policy, gpu=lambda: self._snapshot.gpu, progress_now=lambda: self._snapshot.job,
            client=self.client, make_client=self.make_client, outbox=self.outbox, cache=self.cache,
            folders=self.folders, settings=self.settings, blenders=tuple(self.blenders), make_run=self.make_run,
            heartbeat_interval=self.heartbeat_interval, gpu_at_claim=monitor.latest if monitor is not None else None)

    def _job_stage(self, state: State, progress: JobProgress, message: str = "") -> None:
        self.enter(state, job=progress, **({"message": message} if message else {}))

    def _job_progress(self, progress: JobProgress, message: str = "") -> None:
        self.show(job=progress, **({"message": message} if message else {}))

    def flush(self, job_id: str, timeout: float | None = None) -> E.SentKind | None:
        """Waits until the job's results have left the outbox; returns how (complete, fail, lost...)."""
        self._sent.pop(job_id, None)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.wait_until(lambda: job_id in self._sent or not self.outbox.pending(job_id), 0.5):
            if self._stopping.is_set() or (deadline is not None and time.monotonic() > deadline):
                return None  # kept on disk; sent at the next start
        self.wait_until(lambda: job_id in self._sent, 0.5)
        return self._sent.pop(job_id, None)

    # -- signing on, pausing, backing off -------------------------------------------------------

    def _paused(self) -> bool:
        """True while the guard says to step aside; then shows why and waits a little for a change."""
        if self.guard is None or not self.decision.paused:
            return False
        self.decision = self.guard.decision  # the hold-off's countdown changes its words every second
        self.enter(State.PAUSED, message=self.decision.reason, pause=_pause_of(self.decision), job=None)
        self.wait_until(lambda: self._stopping.is_set() or not self.decision.paused, 1.0)
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
        if self._gpus is None or not self._gpus.available:  # GPUs do not change while the worker runs
            self._gpus = gpu.inventory()
        gpus = self._gpus
        hello = P.Hello(name=self.settings.name or socket.gethostname(),
                        os=f"{platform.system()} {platform.release()}", app_version=__version__,
                        blender=[{"version": b.version, "path": b.path} for b in self.blenders],
                        gpus=gpus.gpus, devices=self.call(self._render_devices, name="probe"),
                        worker_id=self.worker_id)
        self._hello_due = False
        reply: P.HelloReply = self.call(self.client.hello, hello, name="hello")
        self._set_link(True, LinkProblem.NONE)
        self.worker_id = reply.worker_id
        if reply.claim_wait_max_s:
            self._claim_wait_max = reply.claim_wait_max_s
            self.settings = replace(self.settings, claim_wait=min(self.settings.claim_wait, reply.claim_wait_max_s))
        if reply.heartbeat_interval_s:
            self.heartbeat_interval = reply.heartbeat_interval_s
        # Outputs go straight to the server's S3 storage when it says so (the sender has a client of its own).
        if self._sender is not None:
            self._sender.client.upload_part_size = reply.upload_part_size
        self._check_version(reply)
        log.info("signed on to %s as %s", self.client.server_url, self.worker_id)
        if self.decision.paused:
            self._share_state()

    def _share_state(self) -> None:
        """Tells the server, off the loop's thread and best effort, whether this worker is paused and why (the
        kind; the program's name only if the owner shares it), and whether it keeps a warm Blender: the dashboard
        shows it. A failure costs nothing: the next change says it again."""
        worker_id = self.worker_id
        if worker_id is None:
            return
        pause = _pause_of(self.decision)
        until = pause.until.timestamp() if pause is not None and pause.until is not None else \
            (pause.resume_at if pause is not None else None)
        program = pause.program if pause is not None and self.settings.share_program_names else ""
        state = P.WorkerState(worker_id, paused=pause is not None, pause_kind=str(pause.kind) if pause else None,
                              until=until, warm=self.warm.running, program=program or None)
        client = self.make_client()

        def send() -> None:
            try:
                client.report_state(state)
            except ClientError as error:
                log.debug("could not tell the server this worker's state: %s", error)
            finally:
                if client is not self.client:
                    client.close()
        threading.Thread(target=send, name="worker-state", daemon=True).start()

    def _check_version(self, reply: P.HelloReply) -> None:
        """The server can announce a newer release, and refuse workers older than a minimum."""
        update = Update.from_hello(reply, __version__)
        self.show(update=update)
        if update.required:
            log.error("homefarm %s is older than this server accepts (%s or newer): update homefarm",
                      __version__, update.version)

    def _update_required(self) -> bool:
        update = self._snapshot.update
        if not update.required:
            return False
        reason = f"Paused: this server needs homefarm {update.version} or newer"
        self.enter(State.PAUSED, job=None, pause=Pause(PauseKind.UPDATE, reason),
                  message=f"homefarm {__version__} is too old for this server: install {update.version} or newer")
        self._sleep(C.UPDATE_RECHECK)
        self.worker_id = None  # sign on again: the server may accept this version by now
        return True

    def _back_off(self, failures: int, problem: LinkProblem, message: str, said: str = "") -> None:
        """Waits before the next try; ``said`` is what happened in a person's words, for the tray."""
        if self._stopping.is_set():  # no next try: the worker is stopping
            return
        delay = backoff_delay(failures - 1)
        log.warning("%s; retrying in %.0f s", message, delay)
        if problem != LinkProblem.NONE:
            self._set_link(False, problem, said or message, time.time() + delay)
        self.enter(State.BACKING_OFF, message=f"{message}; retrying in {delay:.0f} s")
        self._sleep(delay)


def _pause_of(decision: PauseDecision) -> Pause | None:
    if not decision.paused:
        return None
    cause = decision.causes[0] if decision.causes else None
    kind = cause.kind if cause else PauseKind.HOLD_OFF
    return Pause(kind, decision.reason, cause.until if cause else None, decision.resume_at,
                 cause.program if cause else "")


def _last(report: JobReport) -> LastJob:
    return LastJob(report.job_id, report.outcome, report.reason)
