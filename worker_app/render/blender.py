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
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from worker_app import constants as C
from worker_app.blender_scripts import contract as K
from worker_app.render import output as blender_output
from worker_app.render import procs
from worker_app.render.environment import blender_env, script_path

log = logging.getLogger("homefarm.blender")

SCRIPT_EXIT_CODE = K.SCRIPT_EXIT_CODE


def render_command(blender: str, job_file: Path, script: Path | None = None) -> list[str]:
    """Blender starts empty; render_job.py opens the scene (named in the job file) itself, once it has set up
    what keeps the scene's writes in the job's folder: Blender evaluates a file as it loads it, and a
    simulation in it writes its cache then."""
    return [blender, "--background", "--factory-startup", "--disable-autoexec",
            "--python-exit-code", str(SCRIPT_EXIT_CODE),
            "--python", str(script or script_path("render_job.py")), "--", str(job_file)]


@dataclass
class RenderResult:
    ok: bool
    exit_code: int | None
    reason: str = ""
    log_tail: str = ""
    saved: list[str] = field(default_factory=list)
    stopped: str | None = None  # why we stopped it, if we did
    seconds: float = 0.0


class BlenderRun:
    """One Blender process rendering one job. ``run()`` blocks; ``stop(reason)`` may come from any thread."""

    def __init__(self, blender: str, blend_file: Path, job: dict, job_dir: Path, *,
                 total_timeout: float, silence_timeout: float, on_progress=None, on_line=None,
                 user_dir: Path | None = None, script: Path | None = None, confine_writes: bool = True):
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
        self.proc: subprocess.Popen | None = None
        self._suspended_at: float | None = None
        self._suspended_total = 0.0  # time spent suspended does not count against the limits
        self._job_ended = False  # a warm Blender said the job is over (its process goes on)
        self._job_ok = False  # and whether it rendered

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
        job_file = self.job_dir / "job.json"
        job = {K.JOB_DIR: str(self.job_dir.resolve()), **self.job, K.SCENE_FILE: str(Path(self.blend_file).resolve())}
        job_file.write_text(json.dumps(job, indent=2))
        return job_file

    def run(self) -> RenderResult:
        job_file = self.write_job_file()
        log_path = self.job_dir / "blender.log"
        cmd = render_command(self.blender, job_file, self.script)
        started = time.monotonic()
        lines: queue.Queue[bytes | None] = queue.Queue()
        writable = [self.job_dir] + ([self.user_dir] if self.user_dir else [])
        self.proc = procs.start(cmd, cwd=self.job_dir, env=blender_env(self.user_dir, self.tmp_dir),
                                writable=writable if self.confine_writes else None,
                                pidfile=self.job_dir / "blender.pid")
        reader = threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True,
                                  name="blender-output")
        reader.start()
        eof = False
        try:
            eof = self._watch(lines, log_path, started)
        finally:
            if self.suspended:
                self.resume()  # a suspended process cannot handle the request to stop
            exit_code = None
            if eof and not self._stop_reason:
                try:  # Blender closed its output: it is quitting on its own
                    exit_code = self.proc.wait(timeout=C.BLENDER_KILL_WAIT + C.BLENDER_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    pass
            if exit_code is None:
                exit_code = procs.stop(self.proc)
            reader.join(timeout=2)
            (self.job_dir / "blender.pid").unlink(missing_ok=True)
        return self._result(exit_code, time.monotonic() - started)

    def _watch(self, lines: queue.Queue, log_path: Path, started: float) -> bool:
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
        """Blender's temporary folder (render buffers, its crash report): inside the job's folder."""
        return self.job_dir / "tmp"

    def crash_report(self) -> str:
        """What Blender wrote in ``blender.crash.txt`` when it crashed, the last lines."""
        try:
            text = (self.tmp_dir / "blender.crash.txt").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-C.LOG_TAIL_LINES:])

    def _result(self, exit_code: int | None, seconds: float) -> RenderResult:
        tail = "\n".join(self.tail)
        crash = self.crash_report() if exit_code != 0 else ""
        if crash:
            tail += "\n--- blender.crash.txt ---\n" + crash
        saved = list(self.tracker.saved)
        if self._stop_reason:
            return RenderResult(False, exit_code, self._stop_reason, tail, saved, self._stop_reason, seconds)
        if exit_code == 0 and self.tracker.frames_done == len(self.job["frames"]):
            return RenderResult(True, 0, "", tail, saved, None, seconds)
        return RenderResult(False, exit_code, explain_failure(exit_code, self.tracker), tail, saved,
                            None, seconds)


# Windows reports a crash as an NTSTATUS exit code.
_WINDOWS_CRASHES = {0xC0000005: "access violation", 0xC00000FD: "stack overflow",
                    0xC0000409: "stack buffer overrun", 0xC000001D: "illegal instruction",
                    0xC0000017: "out of memory", 0xC000013A: "interrupted (Ctrl+C)"}


def explain_failure(exit_code: int | None, tracker: blender_output.ProgressTracker) -> str:
    """Turns an exit code and what Blender said into a reason a person understands."""
    said = (tracker.script_errors or tracker.exceptions or tracker.errors or [""])[-1]
    hints = []
    if tracker.out_of_memory:
        hints.append(f"out of GPU memory ({tracker.out_of_memory})")
    hints += [w for w in tracker.warnings if w.startswith("missing texture")][:3]
    extra = ("; " + "; ".join(hints)) if hints else ""
    if exit_code is not None and exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown"
        return f"Blender crashed (signal {-exit_code}, {name})" + (f" after: {said}" if said else "") + extra
    if exit_code is not None and (exit_code & 0xFFFFFFFF) in _WINDOWS_CRASHES:
        code = exit_code & 0xFFFFFFFF
        return f"Blender crashed ({_WINDOWS_CRASHES[code]}, 0x{code:08X})" + extra
    if tracker.out_of_memory and not said:
        return f"out of GPU memory: {tracker.out_of_memory}"
    if exit_code == SCRIPT_EXIT_CODE:
        return (said or "the render script failed (see the log tail)") + extra
    if exit_code == 0:
        return (f"Blender exited after {tracker.frames_done} of {tracker.frame_count} frames"
                + (f": {said}" if said else "") + extra)
    return f"Blender exited with code {exit_code}" + (f": {said}" if said else "") + extra


def _pump(stream, lines: queue.Queue) -> None:
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw)
    except (OSError, ValueError):
        pass
    finally:
        lines.put(None)
