"""Running one job in Blender with timeouts, progress and a clean stop.

Blender always runs with ``--factory-startup`` (no user add-ons or startup file) and ``-Y``
(``--disable-autoexec``: Python in a .blend never runs on load); the only Python that runs is the
bundled ``blender_scripts/render_job.py``, which reads the job as JSON data.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Protocol

from worker_app import layout as L
from worker_app import constants as C
from worker_app.blender_scripts import contract as K
from worker_app.render import output as blender_output
from worker_app.render import procs
from worker_app.render.environment import blender_command, blender_env, script_path

log = logging.getLogger("homefarm.blender")

SCRIPT_EXIT_CODE = K.SCRIPT_EXIT_CODE


def render_command(blender: str, job_file: Path, script: Path | None = None) -> list[str]:
    """Blender starts empty; render_job.py opens the scene (named in the job file) itself, once it has set up
    what keeps the scene's writes in the job's folder: Blender evaluates a file as it loads it, and a
    simulation in it writes its cache then."""
    return blender_command(blender, script or script_path("render_job.py"), str(job_file), exit_code=SCRIPT_EXIT_CODE)


@dataclass
class RenderResult:
    ok: bool
    exit_code: int | None
    reason: str = ""
    log_tail: str = ""
    saved: list[str] = field(default_factory=list)
    stopped: str | None = None  # why we stopped it, if we did
    seconds: float = 0.0


class Process(Protocol):
    """Where a run's Blender comes from: a process of its own (``ColdProcess``) or the warm one that jobs
    share (``worker_app/render/warm.py``). The run watches the lines, the limits and the stop either way."""

    retries: int  # tries more when the process died under the job (a crash) before saving a frame

    def tmp_dir(self, job_dir: Path) -> Path:
        """Blender's temporary folder (render buffers, its crash report)."""

    def begin(self, run: BlenderRun, job_file: Path) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes | None]]:
        """A Blender rendering ``job_file``, and the queue its output lines arrive on (None at its end)."""

    def end(self, run: BlenderRun, eof: bool) -> tuple[int | None, bool]:
        """After the run watched it (``eof``: the output ended or the job said it is over): the exit code the
        job is judged by, and whether the process died under the job (not stopped, no end of job said)."""


class ColdProcess:
    """A Blender of its own for one job: started with the job file on its command line, ended with it."""

    retries = 0

    def __init__(self) -> None:
        self._reader: threading.Thread | None = None

    def tmp_dir(self, job_dir: Path) -> Path:
        return job_dir / L.TMP

    def begin(self, run: BlenderRun, job_file: Path) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes | None]]:
        lines: queue.Queue[bytes | None] = queue.Queue()
        writable = [run.job_dir] + ([run.user_dir] if run.user_dir else [])
        proc = procs.start(render_command(run.blender, job_file, run.script), cwd=run.job_dir,
                           env=blender_env(run.user_dir, run.tmp_dir),
                           writable=writable if run.confine_writes else None, pidfile=run.job_dir / L.PIDFILE)
        self._reader = threading.Thread(target=pump, args=(proc.stdout, lines), daemon=True, name="blender-output")
        self._reader.start()
        return proc, lines

    def end(self, run: BlenderRun, eof: bool) -> tuple[int | None, bool]:
        proc = run.proc
        assert proc is not None
        exit_code = None
        if eof and not run.stop_reason:
            try:  # Blender closed its output: it is quitting on its own
                exit_code = proc.wait(timeout=C.BLENDER_KILL_WAIT + C.BLENDER_STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        if exit_code is None:
            exit_code = procs.stop(proc)
        if self._reader is not None:
            self._reader.join(timeout=2)
        (run.job_dir / L.PIDFILE).unlink(missing_ok=True)
        return exit_code, False


class BlenderRun:
    """One job rendered in Blender. ``run()`` blocks; ``stop(reason)`` may come from any thread. ``process``
    says where its Blender comes from (a process of its own unless told)."""

    def __init__(self, blender: str, blend_file: Path, job: dict[str, Any], job_dir: Path, *,
                 total_timeout: float, silence_timeout: float,
                 on_progress: Callable[[blender_output.ProgressTracker], None] | None = None,
                 on_line: Callable[[blender_output.Line], None] | None = None,
                 user_dir: Path | None = None, script: Path | None = None, confine_writes: bool = True,
                 process: Process | None = None):
        self.process: Process = process or ColdProcess()
        self.blender = blender
        self.user_dir = user_dir
        self.confine_writes = confine_writes
        self.script = script
        self.blend_file = blend_file
        self.job = job
        self.job_dir = job_dir
        self.total_timeout = total_timeout
        self.silence_timeout = silence_timeout
        self.on_progress = on_progress or (lambda tracker: None)
        self.on_line = on_line or (lambda line: None)
        self.tracker = blender_output.ProgressTracker(len(job["frames"]), job["render"].get("samples"))
        self.tail: collections.deque[str] = collections.deque(maxlen=C.LOG_TAIL_LINES)
        self._stop_reason: str | None = None
        self._stop_requested = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._suspended_at: float | None = None
        self._suspended_total = 0.0  # time spent suspended does not count against the limits
        self._job_ended = False  # a warm Blender said the job is over (its process goes on)
        self._job_ok = False  # and whether it rendered

    @property
    def stop_reason(self) -> str | None:
        """Why the run was stopped (by a caller, a limit, a fatal line), or None."""
        return self._stop_reason

    @property
    def job_ended(self) -> bool:
        """Blender said the job is over (a warm one says so; its process goes on)."""
        return self._job_ended

    @property
    def job_ok(self) -> bool:
        return self._job_ok

    def stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_requested.set()

    def suspend(self) -> bool:
        """Suspends Blender's whole process tree (its VRAM stays allocated); False if it is not running."""
        proc = self.proc
        if proc is None or proc.poll() is not None or self._suspended_at is not None:
            return False
        procs.suspend_tree(proc.pid)
        self._suspended_at = time.monotonic()
        return True

    def resume(self) -> None:
        proc = self.proc
        if self._suspended_at is None or proc is None:
            return
        procs.resume_tree(proc.pid)
        self._suspended_total += time.monotonic() - self._suspended_at
        self._suspended_at = None

    @property
    def suspended(self) -> bool:
        return self._suspended_at is not None

    def _paused_for(self) -> float:
        current = time.monotonic() - self._suspended_at if self._suspended_at is not None else 0.0
        return self._suspended_total + current

    def pids(self) -> set[int]:
        """Blender's process and its children, for detectors that must not mistake it for a game."""
        return procs.tree_pids(self.proc)

    def write_job_file(self) -> Path:
        """The job as the bundled script reads it, in the job's folder."""
        job_file = self.job_dir / L.JOB_FILE
        job = {K.JOB_DIR: str(self.job_dir.resolve()), **self.job, K.SCENE_FILE: str(Path(self.blend_file).resolve())}
        job_file.write_text(json.dumps(job, indent=2), encoding="utf-8")
        return job_file

    def run(self) -> RenderResult:
        result, died = self._run_once()
        for _ in range(self.process.retries):
            if not died or result.saved or self._stop_reason:
                break
            # The process died under the job (a crash): once more in a fresh one, then the reason stands.
            log.warning("Blender died during a job (%s); trying it once more in a fresh process", result.reason)
            self.tracker = blender_output.ProgressTracker(len(self.job["frames"]), self.job["render"].get("samples"))
            self.tail.clear()
            result, died = self._run_once()
        return result

    def _run_once(self) -> tuple[RenderResult, bool]:
        """One try: the result, and whether the process died under the job."""
        self._job_ended = self._job_ok = False
        job_file = self.write_job_file()
        started = time.monotonic()
        self.proc, lines = self.process.begin(self, job_file)
        eof = False
        try:
            eof = self._watch(lines, self.job_dir / L.LOG, started)
        finally:
            if self.suspended:
                self.resume()  # a suspended process cannot handle the request to stop
            exit_code, died = self.process.end(self, eof)
        return self._result(exit_code, time.monotonic() - started), died

    def _watch(self, lines: queue.Queue[Any], log_path: Path, started: float) -> bool:
        """Feeds Blender's lines to the tracker and the log until its output ends or the job ends (True), or
        until a stop, a limit or a silence (False); time suspended counts against neither limit."""
        last_output = time.monotonic()
        with open(log_path, "ab") as log_file:
            while not self._job_ended:
                if self._stop_requested.is_set():
                    return False
                now = time.monotonic()
                if self.suspended:
                    last_output = max(last_output, now - 0.25)  # silence while suspended is expected
                if now - started - self._paused_for() > self.total_timeout:
                    self.stop(f"the render ran past its limit of {self.total_timeout:g} s (timeouts.total_s)")
                    return False
                if now - last_output > self.silence_timeout:
                    self.stop(f"Blender printed nothing for {self.silence_timeout:g} s (timeouts.silence_s)")
                    return False
                try:
                    raw = lines.get(timeout=0.25)
                except queue.Empty:
                    continue
                while raw is not None:  # what is already there, before checking the clocks again
                    last_output = time.monotonic()
                    log_file.write(raw)
                    self._feed(raw.decode("utf-8", errors="replace"))
                    if self._job_ended:
                        return True
                    try:
                        raw = lines.get_nowait()
                    except queue.Empty:
                        break
                if raw is None:
                    return True
        return True

    def _feed(self, text: str) -> None:
        line = blender_output.parse_line(text)
        if line.event is not None and line.event.get("event") == K.JOB_END:
            self._job_ended = True
            self._job_ok = bool(line.event.get("ok"))
        self.tail.append(line.text)
        self.tracker.feed(line)
        self.on_line(line)
        if line.fatal:
            # Blender is stuck or about to be (no GPU context for EEVEE, say): stop now, not at a timeout.
            self.stop(line.fatal)
        if line.event is not None or line.sample is not None:
            self.on_progress(self.tracker)

    @property
    def tmp_dir(self) -> Path:
        """Blender's temporary folder (render buffers, its crash report): the job's own for a cold run."""
        return self.process.tmp_dir(self.job_dir)

    def crash_report(self) -> tuple[str, str]:
        """The crash log Blender wrote, by name, with its last lines; ("", "") when there is none.

        Blender names it ``blender.crash.txt`` until a scene is loaded and ``<scene>.crash.txt`` after (every
        OS), so the newest ``*.crash.txt`` in its temporary folder is the one."""
        reports = sorted(self.tmp_dir.glob("*.crash.txt"), key=_mtime, reverse=True)
        for path in reports:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            return path.name, "\n".join(text.splitlines()[-C.LOG_TAIL_LINES:])
        return "", ""

    def _result(self, exit_code: int | None, seconds: float) -> RenderResult:
        tail = "\n".join(self.tail)
        name, crash = self.crash_report() if exit_code != 0 else ("", "")
        if crash:
            tail += f"\n--- {name} ---\n" + crash
        saved = list(self.tracker.saved)
        if self._stop_reason:
            return RenderResult(False, exit_code, self._stop_reason, tail, saved, self._stop_reason, seconds)
        if exit_code == 0 and self.tracker.frames_done == len(self.job["frames"]):
            return RenderResult(True, 0, "", tail, saved, None, seconds)
        return RenderResult(False, exit_code, explain_failure(exit_code, self.tracker, crashed=bool(crash),
                                                              crash_text=crash), tail, saved, None, seconds)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def clear_crash_reports(folder: Path) -> None:
    """Removes earlier crash logs, so that one found after a run is that run's."""
    for path in folder.glob("*.crash.txt"):
        path.unlink(missing_ok=True)


# Windows reports a crash as an NTSTATUS exit code.
_WINDOWS_CRASHES = {0xC0000005: "access violation", 0xC00000FD: "stack overflow",
                    0xC0000409: "stack buffer overrun", 0xC000001D: "illegal instruction",
                    0xC0000017: "out of memory", 0xC000013A: "interrupted (Ctrl+C)"}

# POSIX signal numbers by name, on every OS: Windows' signal module lacks most of them, yet a warm Blender that
# died is reported as -9 there too, and Blender's Windows crash handler exits with SIGSEGV's number.
_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
            8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
_SIGNAL_WORDS = {"SIGSEGV": "a memory access fault", "SIGABRT": "it aborted", "SIGBUS": "a memory access fault",
                 "SIGILL": "an illegal instruction", "SIGFPE": "an arithmetic fault",
                 "SIGKILL": "it was killed; the system may have run out of memory"}
# Blender's Windows crash handler writes its log, then TerminateProcess(GetCurrentProcess(), SIGSEGV): the
# exit code is 11, not 0xC0000005 (blender/source/creator/creator_signals.cc).
WINDOWS_CRASH_HANDLER_EXIT = 11
_EXCEPTION_CODE = re.compile(r"ExceptionCode\s*:\s*(EXCEPTION_\w+)")


def explain_failure(exit_code: int | None, tracker: blender_output.ProgressTracker, *, crashed: bool = False,
                    crash_text: str = "", platform: str | None = None) -> str:
    """Turns an exit code and what Blender said into a reason a person understands. ``crashed``: Blender
    wrote a crash log; ``crash_text`` is its tail."""
    platform = platform or sys.platform
    said = (tracker.script_errors or tracker.exceptions or tracker.errors or [""])[-1]
    hints = []
    if tracker.out_of_memory:
        hints.append(f"out of GPU memory ({tracker.out_of_memory})")
    hints += [w for w in tracker.warnings if w.startswith("missing texture")][:3]
    extra = ("; " + "; ".join(hints)) if hints else ""
    after = f" after: {said}" if said else ""
    if exit_code is not None and exit_code < 0:
        name = _SIGNALS.get(-exit_code, "unknown")
        words = _SIGNAL_WORDS.get(name)
        return f"Blender crashed (signal {-exit_code}, {name}){': ' + words if words else ''}{after}{extra}"
    if exit_code is not None and (exit_code & 0xFFFFFFFF) in _WINDOWS_CRASHES:
        code = exit_code & 0xFFFFFFFF
        return f"Blender crashed ({_WINDOWS_CRASHES[code]}, 0x{code:08X}){after}{extra}"
    if platform == "win32" and exit_code == WINDOWS_CRASH_HANDLER_EXIT and (crashed or not said):
        found = _EXCEPTION_CODE.search(crash_text)
        what = found.group(1).removeprefix("EXCEPTION_").replace("_", " ").lower() if found else \
            "a memory access fault"
        return f"Blender crashed ({what}; its crash log is in the job's log tail){after}{extra}"
    if crashed and exit_code not in (0, SCRIPT_EXIT_CODE):
        return f"Blender crashed (exit code {exit_code}; its crash log is in the job's log tail){after}{extra}"
    if tracker.out_of_memory and not said:
        return f"out of GPU memory: {tracker.out_of_memory}"
    if exit_code == SCRIPT_EXIT_CODE:
        return (said or "the render script failed (see the log tail)") + extra
    if exit_code == 0:
        return (f"Blender exited after {tracker.frames_done} of {tracker.frame_count} frames"
                + (f": {said}" if said else "") + extra)
    return f"Blender exited with code {exit_code}" + (f": {said}" if said else "") + extra


def pump(stream: IO[bytes] | None, lines: queue.Queue[bytes | None]) -> None:
    """Moves a process's output lines onto ``lines`` until it ends, then None."""
    if stream is None:
        lines.put(None)
        return
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw)
    except (OSError, ValueError):
        pass
    finally:
        lines.put(None)
