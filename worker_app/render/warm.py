"""A warm Blender: one long-lived Blender process that renders jobs one after another.

A small job (a 512 px preview, a thumbnail) spends most of a cold run starting Blender; a warm process
skips that. It runs ``blender_scripts/warm.py``, which renders each job with the same ``render_job.run`` a
cold Blender runs, opening the job's .blend from scratch with its Python disabled, so nothing of one job
reaches the next (``tests/test_warm.py`` renders A, B, A and compares them with cold renders).

The process is ended, and the next job starts a fresh one:
- after ``max_jobs`` jobs, or when its process tree holds more than ``max_rss`` bytes after a job;
- after ``idle_s`` without a job, so that an idle PC holds no Blender (and no VRAM);
- when a job is stopped mid-render (pause for a game, cancel, a limit): stopping it is the only way to
  stop a render, exactly as with a cold Blender;
- when it dies (a crash); the job it was rendering is retried once in a fresh process;
- when the job needs another Blender, or other settings (confinement, the user folder).

Its writes are confined (Landlock, where the OS has it) to the jobs' folder, which holds every job's own
folder, and its user folder: a cold Blender's fence is one job's folder. Inside Blender each job's paths
are pointed into that job's folder as in a cold run, and a job that wrote outside it still fails.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from worker_app import layout as L
from worker_app import constants as C
from worker_app.blender_scripts import contract as K
from worker_app.render import procs
from worker_app.render.blender import BlenderRun, clear_crash_reports, pump
from worker_app.render.environment import blender_command, blender_env, script_path

log = logging.getLogger("homefarm.blender")

# Starting Blender takes a fork and an exec; a spawner thread that does not answer in this long is stuck.
SPAWN_WAIT_S = 60.0


@dataclass(frozen=True)
class WarmLimits:
    idle_s: float = C.WARM_IDLE_S
    max_jobs: int = C.WARM_MAX_JOBS
    max_rss: int = C.WARM_MAX_RSS


class WarmBlender:
    """The warm process, shared by the jobs that run one after another; thread-safe."""

    def __init__(self, folder: Path, limits: WarmLimits = WarmLimits(),
                 on_change: Callable[[bool], None] | None = None):
        self.folder = folder  # its temp folder and pid file
        self.limits = limits
        self.on_change = on_change or (lambda running: None)  # told when the process starts and ends
        self._lock = threading.RLock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._key: tuple[Any, ...] | None = None  # what the process was started with
        self.jobs_done = 0  # since the process started
        self._idle_timer: threading.Timer | None = None
        self._spawner: threading.Thread | None = None
        self._spawns: queue.Queue[Any] = queue.Queue()

    # -- state ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        proc = self.proc
        return proc is not None and proc.poll() is None

    @property
    def pidfile(self) -> Path:
        return self.folder / L.PIDFILE

    @property
    def tmp_dir(self) -> Path:
        return self.folder / L.TMP

    def pids(self) -> set[int]:
        return procs.tree_pids(self.proc)

    # -- the process ---------------------------------------------------------------------------

    def acquire(self, blender: str, jobs_root: Path, user_dir: Path | None, confine: bool) -> subprocess.Popen[bytes]:
        """The process for a job: the running one if it was started the same way, else a new one."""
        key = (blender, str(jobs_root), str(user_dir), confine)
        with self._lock:
            self._cancel_idle()
            if self.running and self._key != key:
                self.close("the next job needs another Blender or other settings")
            elif self.proc is not None and not self.running:
                log.warning("warm Blender had exited (code %s); starting another", self.proc.poll())
                self.close("it had exited")
            if self.proc is None or not self.running:
                self.proc = self._start(blender, jobs_root, user_dir, confine)
                self._key = key
            return self.proc

    def _start(self, blender: str, jobs_root: Path, user_dir: Path | None, confine: bool) -> subprocess.Popen[bytes]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # The jobs' folder on the command line says whose Blender it is (orphan checks, ps, the tests).
        cmd = blender_command(blender, script_path("warm.py"), str(jobs_root))
        writable = [jobs_root, self.folder] + ([user_dir] if user_dir else [])
        self.lines = queue.Queue()
        env = blender_env(user_dir, self.tmp_dir)
        proc = self._on_spawner(lambda: procs.start(cmd, cwd=self.folder, env=env, stdin=True,
                                                    writable=writable if confine else None,
                                                    pidfile=self.pidfile))
        threading.Thread(target=pump, args=(proc.stdout, self.lines), daemon=True,
                         name="warm-blender-output").start()
        self.jobs_done = 0
        log.info("warm Blender started (pid %d)", proc.pid)
        self.on_change(True)
        return proc

    def _on_spawner(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Runs ``start`` on a thread that lives as long as the worker. On Linux a Blender is killed when the
        thread that started it ends (``PR_SET_PDEATHSIG``, so that no Blender outlives a dead worker); a warm
        one must outlive the job's thread that asked for it."""
        if self._spawner is None or not self._spawner.is_alive():
            self._spawner = threading.Thread(target=self._spawn_loop, name="warm-blender-spawner", daemon=True)
            self._spawner.start()
        box: dict[str, Any] = {}
        done = threading.Event()
        self._spawns.put((start, box, done))
        if not done.wait(timeout=SPAWN_WAIT_S):
            raise OSError(f"Blender did not start within {SPAWN_WAIT_S:g} s")
        if "error" in box:
            raise box["error"]
        proc: subprocess.Popen[bytes] = box["proc"]
        return proc

    def _spawn_loop(self) -> None:
        while True:
            start, box, done = self._spawns.get()
            try:
                box["proc"] = start()
            except BaseException as error:  # handed to the caller
                box["error"] = error
            done.set()

    def send(self, job_file: Path) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((str(job_file) + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def job_finished(self, ok_process: bool) -> None:
        """After a job: counts it, recycles the process if a limit says so, else arms the idle timer."""
        with self._lock:
            if not ok_process or not self.running:
                self.close("it stopped with the job")
                return
            self.jobs_done += 1
            assert self.proc is not None
            rss = tree_rss(self.proc.pid)
            if self.jobs_done >= self.limits.max_jobs:
                self.close(f"it rendered {self.jobs_done} jobs")
            elif rss > self.limits.max_rss:
                self.close(f"it holds {rss // 2**20} MiB, more than {self.limits.max_rss // 2**20} MiB")
            else:
                self._arm_idle()

    def close(self, reason: str, busy: bool = False) -> None:
        """Ends the process now (any job in it too); the next job starts a fresh one. An idle one is asked to
        quit first; a ``busy`` one (a job stopped mid-render) is stopped at once, as a cold Blender is."""
        with self._lock:
            self._cancel_idle()
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                if busy or not _asked_to_quit(proc):
                    procs.stop(proc)
                log.info("warm Blender ended: %s", reason)
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            self.pidfile.unlink(missing_ok=True)
            self.proc = None
            self.on_change(False)

    def _arm_idle(self) -> None:
        self._cancel_idle()
        self._idle_timer = threading.Timer(self.limits.idle_s, self.close,
                                           args=(f"no job for {self.limits.idle_s:g} s",))
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


def _asked_to_quit(proc: subprocess.Popen[bytes]) -> bool:
    """Asks an idle warm Blender to quit (an empty line); whether it did within WARM_QUIT_WAIT."""
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        proc.wait(timeout=C.WARM_QUIT_WAIT)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False


def running_pid(pidfile: Path) -> int | None:
    """The warm Blender's pid if the one its pid file names still runs (for `homefarm doctor`)."""
    proc = procs.recorded_process(pidfile)
    return proc.pid if proc is not None else None


def tree_rss(pid: int) -> int:
    """The resident memory of a process and its children, in bytes."""
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in (root, *root.children(recursive=True)))
    except psutil.Error:
        return 0


class WarmProcess:
    """A run's Blender is the warm one (``BlenderRun(..., process=WarmProcess(warm))``): the job goes to it on
    its stdin, and it stays for the next job unless the job was stopped or it died under it, which costs one
    more try in a fresh process."""

    retries = 1

    def __init__(self, warm: WarmBlender):
        self.warm = warm

    def tmp_dir(self, job_dir: Path) -> Path:
        return self.warm.tmp_dir

    def begin(self, run: BlenderRun, job_file: Path) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes | None]]:
        clear_crash_reports(self.warm.tmp_dir)
        proc = self.warm.acquire(run.blender, run.job_dir.parent, run.user_dir, run.confine_writes)
        lines = self.warm.lines
        try:
            self.warm.send(job_file)
        except OSError:  # it was gone before it read the job: its output ends, and end() says it died
            pass
        return proc, lines

    def end(self, run: BlenderRun, eof: bool) -> tuple[int | None, bool]:
        died = False
        if run.job_ended:
            # As a cold run exits: 0 when the job rendered, the script's code when the job failed.
            exit_code: int | None = 0 if run.job_ok else K.SCRIPT_EXIT_CODE
        else:
            # Stopped, past a limit, or the process died: it cannot go on with a half-done job.
            died = run.stop_reason is None
            self.warm.close(run.stop_reason or "it died during a job", busy=True)
            polled = run.proc.poll() if run.proc is not None else None
            exit_code = polled if polled is not None else -9
        self.warm.job_finished(ok_process=run.job_ended)
        return exit_code, died


def warm_run(warm: WarmBlender, *args: Any, **kwargs: Any) -> BlenderRun:
    """A run of one job in the warm Blender, with the same interface, limits, progress and stop as a cold one."""
    return BlenderRun(*args, process=WarmProcess(warm), **kwargs)
