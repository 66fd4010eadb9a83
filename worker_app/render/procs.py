"""Starting and stopping child process trees, one small backend per OS.

Blender starts in its own process group (a new session on POSIX; a new process group with no console
window on Windows) with stdin closed. Stopping asks first, waits a bounded time, then kills the whole
tree, and a process that is already gone is fine. The PID and start time of each child are written to
a pid file, so a worker that died without cleaning up can end its orphans when it starts again.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import psutil

from worker_app import constants as C

if TYPE_CHECKING:
    from worker_app.render.sandbox import WriteConfinement

log = logging.getLogger("homefarm.procs")


class ProcessBackend(Protocol):
    """What one OS does to start a child tree that cannot outlive the worker, and to ask it to stop."""

    def popen_kwargs(self) -> dict[str, Any]: ...

    def confine(self, writable: list[Path]) -> WriteConfinement | None: ...

    def after_start(self, proc: subprocess.Popen[bytes]) -> None: ...

    def ask_to_stop(self, proc: subprocess.Popen[bytes]) -> None: ...


class _PosixBackend:
    def confine(self, writable: list[Path]) -> WriteConfinement | None:
        """Linux: a Landlock ruleset (worker_app/render/sandbox.py); elsewhere none."""
        from worker_app.render.sandbox import WriteConfinement

        return WriteConfinement(writable) if sys.platform.startswith("linux") else None

    def after_start(self, proc: subprocess.Popen[bytes]) -> None:
        pass  # PR_SET_PDEATHSIG, set between fork and exec, already ties the child to us

    def popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"start_new_session": True}
        if _PRCTL is not None:
            kwargs["preexec_fn"] = _die_with_parent
        return kwargs

    def ask_to_stop(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: the child must not import or allocate between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the thread that started it dies, even by ``kill -9``.

    The worker starts Blender from the thread that then waits for it, so the signal comes only when
    the worker itself is gone.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _IoCounters(ctypes.Structure):
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]


class _BasicLimits(ctypes.Structure):
    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", ctypes.c_uint32), ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", ctypes.c_uint32),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", ctypes.c_uint32),
                ("SchedulingClass", ctypes.c_uint32)]


class _ExtendedLimits(ctypes.Structure):
    """JOBOBJECT_EXTENDED_LIMIT_INFORMATION (144 bytes on 64-bit Windows)."""
    _fields_ = [("BasicLimitInformation", _BasicLimits), ("IoInfo", _IoCounters),
                ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]


JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000


SEM_FAILCRITICALERRORS, SEM_NOGPFAULTERRORBOX, SEM_NOOPENFILEERRORBOX = 0x0001, 0x0002, 0x8000
# winbase.h's process creation flags (subprocess names only some of them, and only on Windows).
CREATE_SUSPENDED = 0x00000004
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


def _declare_kernel32(k32: Any) -> None:
    """Handles as HANDLE (pointer-sized): ctypes' default int would cut a 64-bit handle."""
    from ctypes import wintypes
    k32.CreateJobObjectW.argtypes = [ctypes.c_void_p, wintypes.LPCWSTR]
    k32.CreateJobObjectW.restype = wintypes.HANDLE
    k32.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD]
    k32.SetInformationJobObject.restype = wintypes.BOOL
    k32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
    k32.AssignProcessToJobObject.restype = wintypes.BOOL


def _resume(pid: int) -> None:
    """Resumes a process created suspended (NtResumeProcess, through psutil)."""
    psutil.Process(pid).resume()


class _WindowsBackend:
    """Windows: a new process group without a console window, inside a Job Object that Windows closes,
    killing Blender's whole tree, when the worker's process ends in any way (the role PDEATHSIG plays on
    Linux). https://learn.microsoft.com/windows/win32/procthread/job-objects"""

    _job: int | None = None

    def __init__(self, kernel32: Any = None, resume: Callable[[int], None] = _resume):
        self.kernel32 = kernel32
        self.resume = resume

    def popen_kwargs(self) -> dict[str, Any]:
        self.prepare_children()
        # Suspended until it is in the Job Object (after_start): a process that ran first could start a child
        # outside the job, which a crash of the worker would then leave running.
        flags = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW | CREATE_SUSPENDED
        return {"creationflags": flags}

    def prepare_children(self) -> None:
        """What Blender inherits from us. A frozen homefarm's bootloader changed the DLL search path: reset
        it, or blender.exe may load our bundled DLLs. And no error dialogs: a crashing child would leave one
        on the gamer's desktop and hold the job until the silence limit (children inherit the error mode)."""
        k32 = self._kernel32()
        if getattr(sys, "frozen", False):
            k32.SetDllDirectoryW(None)
        k32.SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX)

    def confine(self, writable: list[Path]) -> WriteConfinement | None:
        """No confinement on Windows yet: a low integrity level needs the job's folder labelled low, and
        GPU rendering under it is unverified (see the notes of issue 11)."""
        return None

    def _kernel32(self) -> Any:
        if self.kernel32 is None:
            self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
            _declare_kernel32(self.kernel32)
        return self.kernel32

    def job(self) -> int | None:
        """The one Job Object of this worker process, made on first use."""
        if _WindowsBackend._job is None:
            k32 = self._kernel32()
            job = k32.CreateJobObjectW(None, None)
            if not job:
                return None
            limits = _ExtendedLimits()
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
            if not k32.SetInformationJobObject(job, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                                               ctypes.byref(limits), ctypes.sizeof(limits)):
                return None
            _WindowsBackend._job = job  # never closed: Windows closes it, and kills the tree, when we exit
        return _WindowsBackend._job

    def after_start(self, proc: subprocess.Popen[bytes]) -> None:
        """Puts the suspended Blender in the Job Object, then lets it run: nothing it starts escapes the job."""
        try:
            job = self.job()
            handle = getattr(proc, "_handle", None)
            if job is None or handle is None or not self._kernel32().AssignProcessToJobObject(job, int(handle)):
                log.warning("Blender %d is not tied to the worker's lifetime (no Job Object); a crash of the "
                            "worker leaves it to the next start", proc.pid)
        finally:
            try:
                self.resume(proc.pid)
            except psutil.Error:
                proc.kill()  # it never ran: better no Blender than a frozen one
                raise

    def ask_to_stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Ends Blender's tree with TerminateProcess. No console event: the tray has no console, so
        GenerateConsoleCtrlEvent fails and CPython's ``os.kill`` raises SystemError (cpython #87128), and
        from a console the break reaches nothing (Blender has none). Blender has no gentler way to be asked
        on Windows; frames already saved are in the outbox."""
        try:
            root = psutil.Process(proc.pid)
            tree = [*root.children(recursive=True), root]
        except psutil.Error:
            return
        _signal_all(tree, psutil.Process.terminate)


def backend() -> ProcessBackend:
    return _WindowsBackend() if sys.platform == "win32" else _PosixBackend()


def start(cmd: list[str], *, cwd: Path, env: dict[str, Any], pidfile: Path | None = None,
          writable: list[Path] | None = None, stdin: bool = False) -> subprocess.Popen[bytes]:
    """Starts ``cmd`` in its own group, stdin closed (a pipe with ``stdin``: a warm Blender reads its jobs
    there), stdout and stderr merged into one pipe; with ``writable``, where the OS can confine it, the
    process may write only below those folders (and to devices)."""
    os_backend = backend()
    kwargs = os_backend.popen_kwargs()
    confinement = os_backend.confine(writable) if writable else None
    if confinement is not None and confinement.active:
        first: Callable[[], None] | None = kwargs.get("preexec_fn")
        rules = confinement

        def in_child() -> None:
            if first is not None:
                first()
            rules.preexec()
        kwargs["preexec_fn"] = in_child
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0, **kwargs)
    finally:
        if confinement is not None:
            confinement.close()
    os_backend.after_start(proc)
    if pidfile is not None:
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            created = None
        pidfile.write_text(json.dumps({"pid": proc.pid, "create_time": created}), encoding="utf-8")
    return proc


def kill_tree(pid: int, grace: float = C.BLENDER_STOP_GRACE) -> None:
    """Terminates ``pid`` and every descendant: terminate, wait ``grace``, then kill."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    _signal_all(tree, psutil.Process.terminate)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    _signal_all(alive, psutil.Process.kill)
    psutil.wait_procs(alive, timeout=C.BLENDER_KILL_WAIT)


def _signal_all(processes: list[psutil.Process], action: Callable[[psutil.Process], object]) -> None:
    for proc in processes:
        try:
            action(proc)
        except psutil.NoSuchProcess:
            pass  # already gone: fine
        except psutil.AccessDenied:
            log.warning("no right to %s process %d", action.__name__, proc.pid)


def stop(proc: subprocess.Popen[bytes], grace: float = C.BLENDER_STOP_GRACE) -> int | None:
    """Asks ``proc``'s group to stop, waits ``grace`` seconds, then kills the whole tree. Never raises: a
    stop that fails to ask still kills."""
    if proc.poll() is None:
        descendants = _descendants(proc.pid)
        try:
            backend().ask_to_stop(proc)
        except Exception:  # whatever the OS says, the kill below still comes
            log.exception("asking process %d to stop failed; killing it", proc.pid)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            descendants += _descendants(proc.pid)
            # Our own child is killed through Popen, not psutil, so that Popen keeps its exit code.
            proc.kill()
        # Descendants that outlived their parent (re-parented to init) are ended too.
        _signal_all(descendants, psutil.Process.kill)
        psutil.wait_procs(descendants, timeout=C.BLENDER_KILL_WAIT)
    try:
        return proc.wait(timeout=C.BLENDER_KILL_WAIT)
    except subprocess.TimeoutExpired:
        log.error("process %d did not exit after being killed", proc.pid)
        return None


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def descendant_pids(pid: int) -> set[int]:
    return {p.pid for p in _descendants(pid)}


def suspend_tree(pid: int) -> None:
    """Suspends a process and its descendants (SIGSTOP; NtSuspendProcess on Windows)."""
    _signal_all([*_descendants(pid), *_alive(pid)], psutil.Process.suspend)


def resume_tree(pid: int) -> None:
    _signal_all([*_alive(pid), *_descendants(pid)], psutil.Process.resume)


def _alive(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return []


def tree_pids(proc: subprocess.Popen[bytes] | None) -> set[int]:
    """A running child's pid and its descendants' (none once it has exited)."""
    if proc is None or proc.poll() is not None:
        return set()
    return {proc.pid, *descendant_pids(proc.pid)}


def recorded_process(pidfile: Path) -> psutil.Process | None:
    """The process a pid file (written by ``start``) names, if it still runs: the PID alone may have been
    reused by an unrelated process, so its start time must match too."""
    try:
        record = json.loads(pidfile.read_text(encoding="utf-8"))
        proc = psutil.Process(int(record["pid"]))
        if record.get("create_time") is not None and abs(proc.create_time() - record["create_time"]) < 1:
            return proc
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        pass
    return None


def reap_orphans(pidfiles: list[Path]) -> int:
    """Ends children recorded in ``pidfiles`` that a dead worker left running; returns how many."""
    ended = 0
    for pidfile in pidfiles:
        proc = recorded_process(pidfile)
        if proc is not None:
            log.warning("ending Blender process %d left by an earlier worker", proc.pid)
            try:
                kill_tree(proc.pid)
                ended += 1
            except psutil.Error:
                pass
        pidfile.unlink(missing_ok=True)
    return ended
