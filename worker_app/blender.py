"""Finding Blender, and running one job in it with timeouts, progress and a clean stop.

Blender always runs with ``--factory-startup`` (no user add-ons or startup file) and ``-Y``
(``--disable-autoexec``: Python in a .blend never runs on load); the only Python that runs is the
bundled ``blender_scripts/render_job.py``, which reads the job as JSON data.
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from worker_app import blender_output
from worker_app import constants as C
from worker_app import procs

log = logging.getLogger("homefarm.blender")

_VERSION = re.compile(r"Blender (\d+\.\d+(?:\.\d+)?)")
SCRIPT_EXIT_CODE = 3  # what --python-exit-code makes Blender return when render_job.py raises


class BlenderNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class BlenderInstall:
    path: str
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))


class FileAssociation:
    """Where the OS opens .blend files with; one backend per OS, the Windows one reads the registry."""

    def blend_opener(self) -> str | None:
        return None


class WindowsFileAssociation(FileAssociation):
    def __init__(self, registry=None):
        self.registry = registry  # the winreg module, or a fake with the same functions in tests

    def blend_opener(self) -> str | None:
        reg = self.registry
        if reg is None:
            import winreg as reg
        try:
            with reg.OpenKey(reg.HKEY_CLASSES_ROOT, ".blend") as key:
                prog_id = reg.QueryValueEx(key, "")[0]
            with reg.OpenKey(reg.HKEY_CLASSES_ROOT, prog_id + r"\shell\open\command") as key:
                command = reg.QueryValueEx(key, "")[0]
        except OSError:
            return None
        # '"C:\Program Files\Blender Foundation\Blender 4.2\blender-launcher.exe" "%1"'
        match = re.match(r'\s*"([^"]+)"|\s*(\S+)', command)
        if not match:
            return None
        exe = match.group(1) or match.group(2)
        # The launcher opens a console-less window; the real binary sits beside it.
        if os.path.basename(exe).lower() == "blender-launcher.exe":
            exe = os.path.join(os.path.dirname(exe), "blender.exe")
        return exe


def file_association() -> FileAssociation:
    return WindowsFileAssociation() if sys.platform == "win32" else FileAssociation()


def candidate_paths(configured: str = "", association: FileAssociation | None = None,
                    environ=os.environ, platform: str = sys.platform, which=shutil.which) -> list[str]:
    """Where Blender may live, best first: the configured path, PATH, then where installers put it."""
    found: list[str] = []
    if configured:
        found.append(configured)
    on_path = which("blender")
    if on_path:
        found.append(on_path)
    opener = (association or file_association()).blend_opener()
    if opener:
        found.append(opener)
    if platform == "win32":
        for root in filter(None, (environ.get("ProgramFiles"), environ.get("ProgramFiles(x86)"))):
            found += sorted(glob.glob(os.path.join(root, "Blender Foundation", "*", "blender.exe")),
                            reverse=True)
            found += glob.glob(os.path.join(root, "Steam", "steamapps", "common", "Blender", "blender.exe"))
    elif platform == "darwin":
        found.append("/Applications/Blender.app/Contents/MacOS/Blender")
        found += glob.glob(os.path.expanduser("~/Applications/Blender*.app/Contents/MacOS/Blender"))
    else:
        found += ["/usr/bin/blender", "/usr/local/bin/blender", "/snap/bin/blender",
                  "/var/lib/flatpak/exports/bin/org.blender.Blender",
                  os.path.expanduser("~/.local/share/flatpak/exports/bin/org.blender.Blender")]
    seen, unique = set(), []
    for path in found:
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(path):
            seen.add(real)
            unique.append(path)
    return unique


def read_version(path: str) -> str:
    """Runs ``blender --version`` (bounded in time) and returns e.g. ``4.2.1``."""
    try:
        out = subprocess.run([path, "--factory-startup", "--version"], capture_output=True, text=True,
                             timeout=C.BLENDER_VERSION_TIMEOUT, stdin=subprocess.DEVNULL,
                             env=blender_env(), errors="replace",
                             **procs.backend().popen_kwargs()).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BlenderNotFound(f"{path} did not report its version: {error}") from None
    match = _VERSION.search(out)
    if not match:
        raise BlenderNotFound(f"{path} printed no Blender version")
    return match.group(1)


def find_installs(configured: str = "") -> list[BlenderInstall]:
    installs = []
    for path in candidate_paths(configured):
        try:
            installs.append(BlenderInstall(path, read_version(path)))
        except BlenderNotFound as error:
            log.warning("%s", error)
    return installs


NOT_FOUND_HELP = ("Blender was not found: install it (https://www.blender.org/download/, or "
                  "`sudo apt install blender` on Debian/Ubuntu) or set blender.path")


def find_blender(configured: str = "") -> BlenderInstall:
    return find_all(configured)[0]


def find_all(configured: str = "") -> list[BlenderInstall]:
    """Every working Blender, the configured one first; BlenderNotFound if there is none."""
    if configured and not os.path.isfile(configured):
        raise BlenderNotFound(f"blender.path is set to {configured}, which does not exist")
    installs = find_installs(configured)
    if not installs:
        raise BlenderNotFound(NOT_FOUND_HELP)
    return installs


def pick(installs: list[BlenderInstall], min_version: str | None) -> BlenderInstall:
    """The install a job gets: the first in order of preference that is new enough."""
    if min_version is None:
        return installs[0]
    wanted = tuple(int(p) for p in min_version.split("."))
    for install in installs:
        if install.version_tuple[:len(wanted)] >= wanted:
            return install
    have = ", ".join(i.version for i in installs)
    raise BlenderNotFound(f"blender.min_version: the job needs Blender {min_version} or newer; this PC "
                          f"has {have}")


def probe_devices(install: BlenderInstall, timeout: float = 60.0) -> dict[str, list[str]]:
    """What Blender can render on: {"CPU": ["AMD EPYC"], "CUDA": ["NVIDIA GeForce RTX 4070"], ...}.

    Backends this build knows but finds no device for map to an empty list.
    """
    cmd = [install.path, "--background", "--factory-startup", "--disable-autoexec",
           "--python", str(script_path("probe_devices.py"))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             env=blender_env(), errors="replace", **procs.backend().popen_kwargs()).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BlenderNotFound(f"{install.path} could not list its devices: {error}") from None
    devices: dict[str, list[str]] = {}
    for text in out.splitlines():
        event = blender_output.parse_line(text).event
        if event and event["event"] == "devices":
            devices[str(event.get("backend"))] = [str(d.get("name")) for d in event.get("devices", [])]
    return devices


def script_path(name: str) -> Path:
    return Path(str(resources.files("worker_app.blender_scripts").joinpath(name)))


def blender_env(user_dir: Path | None = None) -> dict:
    """The environment Blender starts with: ours, less what would confuse its Python or its Qt-free UI.

    ``user_dir`` becomes Blender's user config and scripts folder, so the owner's own preferences and
    add-ons are neither used nor touched by a render.
    """
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"):
        env.pop(key, None)
    for key in [k for k in env if k.startswith("QT_") or k.startswith("QML")]:
        env.pop(key)
    if user_dir is not None:
        for key, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                         ("BLENDER_USER_DATAFILES", "datafiles")):
            (user_dir / sub).mkdir(parents=True, exist_ok=True)
            env[key] = str(user_dir / sub)
    if getattr(sys, "frozen", False):
        # A frozen homefarm's bundled libraries must not leak into Blender's process.
        for key in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH"):
            orig = env.pop(key + "_ORIG", None)
            env.pop(key, None)
            if orig:
                env[key] = orig
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def render_command(blender: str, blend_file: Path, job_file: Path, script: Path | None = None) -> list[str]:
    return [blender, "--background", "--factory-startup", "--disable-autoexec", str(blend_file),
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
                 user_dir: Path | None = None, script: Path | None = None):
        self.blender = blender
        self.user_dir = user_dir
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
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return set()
        return {proc.pid, *procs.descendant_pids(proc.pid)}

    def run(self) -> RenderResult:
        job_file = self.job_dir / "job.json"
        job_file.write_text(json.dumps(self.job, indent=2))
        log_path = self.job_dir / "blender.log"
        cmd = render_command(self.blender, self.blend_file, job_file, self.script)
        started = time.monotonic()
        lines: queue.Queue[bytes | None] = queue.Queue()
        self.proc = procs.start(cmd, cwd=self.job_dir, env=blender_env(self.user_dir),
                                pidfile=self.job_dir / "blender.pid")
        reader = threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True,
                                  name="blender-output")
        reader.start()
        last_output = time.monotonic()
        eof = False
        try:
            with open(log_path, "ab") as log_file:
                while not eof:
                    if self._stop_requested.is_set():
                        break
                    now = time.monotonic()
                    if self.suspended:
                        last_output = max(last_output, now - 0.25)  # silence while suspended is expected
                    if now - started - self._paused_for() > self.total_timeout:
                        self.stop(f"the render ran past its limit of {self.total_timeout:g} s "
                                  "(timeouts.total_s)")
                        break
                    if now - last_output > self.silence_timeout:
                        self.stop(f"Blender printed nothing for {self.silence_timeout:g} s "
                                  "(timeouts.silence_s)")
                        break
                    try:
                        raw = lines.get(timeout=0.25)
                    except queue.Empty:
                        continue
                    if raw is None:
                        eof = True
                        break
                    last_output = time.monotonic()
                    log_file.write(raw)
                    self._feed(raw.decode("utf-8", errors="replace"))
                    while True:  # drain what is already there before checking the clocks again
                        try:
                            raw = lines.get_nowait()
                        except queue.Empty:
                            break
                        if raw is None:
                            eof = True
                            break
                        log_file.write(raw)
                        self._feed(raw.decode("utf-8", errors="replace"))
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

    def _feed(self, text: str) -> None:
        line = blender_output.parse_line(text)
        self.tail.append(line.text)
        self.tracker.feed(line)
        self.on_line(line)
        if line.fatal:
            # Blender is stuck or about to be (no GPU context for EEVEE, say): stop now, not at a timeout.
            self.stop(line.fatal)
        if line.event is not None or line.sample is not None:
            self.on_progress(self.tracker)

    def _result(self, exit_code: int | None, seconds: float) -> RenderResult:
        tail = "\n".join(self.tail)
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
