"""Process trees: a stop ends every descendant, and orphans of a dead worker are found again."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from support.harness import ROOT, posix_only
from worker_app.render import procs

# A parent that starts a child, both sleeping, the parent ignoring SIGTERM.
TREE = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('ready', flush=True); time.sleep(60)")


def start_tree(tmp_path, pidfile=None):
    proc = procs.start([sys.executable, "-c", TREE], cwd=tmp_path, env=None, pidfile=pidfile)
    assert proc.stdout.readline().strip() == b"ready"
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) == 1
    return proc, children[0]


@posix_only("os.getsid; Windows has process groups without sessions")
def test_child_runs_in_its_own_session_with_stdin_closed(tmp_path):
    proc = procs.start([sys.executable, "-c", "import os, sys; print(os.getsid(0), sys.stdin.read() == '')"],
                       cwd=tmp_path, env=None)
    sid, empty = proc.stdout.read().split()
    proc.wait(5)
    assert int(sid) == proc.pid and empty == b"True"


@posix_only("a tree ignoring SIGTERM; Windows ends trees without asking")
def test_stop_kills_a_tree_that_ignores_the_request(tmp_path):
    proc, child = start_tree(tmp_path)
    started = time.monotonic()
    code = procs.stop(proc, grace=0.5)
    assert code is not None and code < 0
    assert time.monotonic() - started < 5
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_stop_of_a_process_already_gone_is_fine(tmp_path):
    proc = procs.start([sys.executable, "-c", "pass"], cwd=tmp_path, env=None)
    proc.wait(5)
    assert procs.stop(proc) == 0


def test_reap_orphans_ends_recorded_processes_only(tmp_path):
    pidfile = tmp_path / "blender.pid"
    proc, child = start_tree(tmp_path, pidfile)
    assert procs.reap_orphans([pidfile]) == 1
    proc.wait(10)
    assert not pidfile.exists()
    # A pid file whose process is gone (or whose pid now names another process) ends nothing.
    stale = tmp_path / "stale.pid"
    stale.write_text('{"pid": %d, "create_time": 1.0}' % psutil.Process().pid)
    assert procs.reap_orphans([stale]) == 0
    assert psutil.Process().is_running()


@posix_only("PR_SET_PDEATHSIG; on Windows the Job Object does it, tested through its fake above")
def test_children_die_with_a_killed_worker(tmp_path):
    """The worker is killed with SIGKILL mid-render: its Blender must not live on (Linux: PDEATHSIG)."""
    script = ("import sys, time; sys.path.insert(0, %r); from pathlib import Path; from worker_app.render import procs; "
              "p = procs.start([sys.executable, '-c', 'import time; time.sleep(60)'], cwd=Path('.'), env=None); "
              "print(p.pid, flush=True); time.sleep(60)") % str(ROOT)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=tmp_path)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait(5)
    psutil.wait_procs([child], timeout=5)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_windows_job_object_kills_the_tree_with_the_worker():
    """The Windows backend through a fake kernel32: one Job Object, kill-on-close, each child assigned."""
    import ctypes

    from worker_app.render.procs import (JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
                                  _ExtendedLimits, _WindowsBackend)

    assert ctypes.sizeof(_ExtendedLimits) == 144  # the Windows x64 layout

    class Kernel32:
        def __init__(self):
            self.calls = []

        def CreateJobObjectW(self, attributes, name):
            self.calls.append("create")
            return 77

        def SetInformationJobObject(self, job, kind, info, size):
            limits = ctypes.cast(info, ctypes.POINTER(_ExtendedLimits)).contents
            self.calls.append(("set", job, kind, limits.BasicLimitInformation.LimitFlags, size))
            return 1

        def AssignProcessToJobObject(self, job, handle):
            self.calls.append(("assign", job, handle))
            return handle != 503  # 503: refused (a job of its own it may not leave, on old Windows)

        def SetDllDirectoryW(self, path):
            return 1

        def SetErrorMode(self, mode):
            return 0

    _WindowsBackend._job = None
    k32 = Kernel32()
    backend = _WindowsBackend(k32, resume=lambda pid: k32.calls.append(("resume", pid)))
    # Blender starts suspended, so that nothing it starts can run before it is in the job.
    assert backend.popen_kwargs()["creationflags"] & procs.CREATE_SUSPENDED
    for handle in (501, 502, 503):
        backend.after_start(type("Proc", (), {"_handle": handle, "pid": handle})())
    assert k32.calls == ["create", ("set", 77, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                                    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, 144),
                         ("assign", 77, 501), ("resume", 501), ("assign", 77, 502), ("resume", 502),
                         ("assign", 77, 503), ("resume", 503)], "assigned, then resumed; resumed even if refused"
    _WindowsBackend._job = None


def test_a_child_that_cannot_be_resumed_is_ended_not_left_frozen():
    from worker_app.render.procs import _WindowsBackend

    class Kernel32:
        def CreateJobObjectW(self, attributes, name):
            return 0  # no job at all

    killed = []

    def gone(pid):
        raise psutil.NoSuchProcess(pid)

    _WindowsBackend._job = None
    proc = type("Proc", (), {"_handle": 9, "pid": 9, "kill": lambda self: killed.append(9)})()
    with pytest.raises(psutil.NoSuchProcess):
        _WindowsBackend(Kernel32(), resume=gone).after_start(proc)
    assert killed == [9]
    _WindowsBackend._job = None


def test_blender_s_path_leaves_out_the_frozen_bundle(monkeypatch, tmp_path):
    from worker_app.render.environment import blender_env, without_bundle
    bundle = tmp_path / "homefarm" / "_internal"
    path = os.pathsep.join([str(bundle), str(bundle / "PySide6"), "/usr/bin", str(tmp_path / "homefarm-tools")])
    assert without_bundle(path, str(bundle)) == os.pathsep.join(["/usr/bin", str(tmp_path / "homefarm-tools")])
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setenv("PATH", path)
    assert str(bundle) not in blender_env()["PATH"]


class ConsolelessPopen(subprocess.Popen):
    """A child as the console-less tray sees it on Windows: sending it a console event raises SystemError
    (GenerateConsoleCtrlEvent fails and CPython's os.kill turns that into SystemError, cpython #87128)."""

    def send_signal(self, sig):
        raise SystemError("<built-in function kill> returned a result with an exception set")


def test_stopping_on_windows_needs_no_console_and_never_raises(monkeypatch, tmp_path):
    from worker_app.render.procs import _WindowsBackend
    monkeypatch.setattr(procs, "backend", lambda: _WindowsBackend(kernel32=object()))
    child = ConsolelessPopen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                              "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    grandchildren = psutil.Process(child.pid).children(recursive=True)
    started = time.monotonic()
    procs.stop(child, grace=10)
    assert child.poll() is not None
    assert time.monotonic() - started < 5, "the stop waited out its grace time: nothing asked Blender to end"
    gone, alive = psutil.wait_procs(grandchildren, timeout=5)
    assert alive == []


def test_a_stop_whose_asking_fails_still_kills(monkeypatch):
    class Broken:
        def ask_to_stop(self, proc):
            raise SystemError("the OS said no")
    monkeypatch.setattr(procs, "backend", lambda: Broken())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    procs.stop(child, grace=0.5)
    assert child.poll() is not None


def test_windows_children_start_without_error_dialogs_and_with_the_plain_dll_path(monkeypatch):
    from worker_app.render.procs import (SEM_FAILCRITICALERRORS, SEM_NOGPFAULTERRORBOX, SEM_NOOPENFILEERRORBOX,
                                         _WindowsBackend)

    class Kernel32:
        def __init__(self):
            self.calls = []

        def SetDllDirectoryW(self, path):
            self.calls.append(("dll", path))
            return 1

        def SetErrorMode(self, mode):
            self.calls.append(("errors", mode))
            return 0

    k32 = Kernel32()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    _WindowsBackend(k32).prepare_children()
    assert k32.calls == [("dll", None),
                         ("errors", SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX)]
