"""Keeping the PC awake (worker_app/system/power.py): each OS's backend through a fake of its system library that
records the calls, the switch's thread, the worker's rule (held while a job is worked on, under every pause
policy), the tray's tooltip and doctor's line. The real D-Bus path is in test_keep_awake.py."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from support.core_fakes import FakeClient, FakeRun, lease
from support.core_fakes import BLENDER, FakeGuard
from worker_app import config as config_mod
from worker_app import doctor
from worker_app.core import Folders, Settings, State, Worker
from worker_app.core.state import JobProgress, Snapshot
from worker_app.system import power
from worker_app.tray import status


class FakeKernel32:
    """kernel32's power-request calls, recorded; ``fail`` names calls that return failure."""

    def __init__(self, fail=()):
        self.calls, self.fail, self.open = [], set(fail), set()

    def PowerCreateRequest(self, context_ref):
        context = context_ref._obj
        self.calls.append(("create", context.Version, context.Flags, context.Reason.SimpleReasonString))
        if "create" in self.fail:
            return power.INVALID_HANDLE_VALUE
        self.open.add(0x1234)
        return 0x1234

    def PowerSetRequest(self, handle, kind):
        self.calls.append(("set", handle, kind))
        return 0 if ("set", kind) in self.fail else 1

    def PowerClearRequest(self, handle, kind):
        self.calls.append(("clear", handle, kind))
        return 1

    def CloseHandle(self, handle):
        self.calls.append(("close", handle))
        self.open.discard(handle)
        return 1


def test_windows_asks_for_the_system_and_not_the_display_and_clears_what_it_set():
    kernel32 = FakeKernel32()
    held = power.WindowsBackend(kernel32).acquire("rendering job 7")
    assert kernel32.calls == [("create", 0, power.POWER_REQUEST_CONTEXT_SIMPLE_STRING, "homefarm: rendering job 7"),
                              ("set", 0x1234, power.POWER_REQUEST_SYSTEM_REQUIRED),
                              ("set", 0x1234, power.POWER_REQUEST_EXECUTION_REQUIRED)]
    assert 0 not in [call[2] for call in kernel32.calls if call[0] == "set"], "PowerRequestDisplayRequired is 0"
    kernel32.calls.clear()
    held.release()
    held.release()  # twice is harmless
    assert kernel32.calls == [("clear", 0x1234, power.POWER_REQUEST_SYSTEM_REQUIRED),
                              ("clear", 0x1234, power.POWER_REQUEST_EXECUTION_REQUIRED), ("close", 0x1234)]
    assert not kernel32.open


def test_windows_without_execution_required_still_holds_and_a_refusal_leaves_no_handle():
    kernel32 = FakeKernel32(fail={("set", power.POWER_REQUEST_EXECUTION_REQUIRED)})  # Windows 7
    held = power.WindowsBackend(kernel32).acquire("job")
    held.release()
    assert ("clear", 0x1234, power.POWER_REQUEST_EXECUTION_REQUIRED) not in kernel32.calls and not kernel32.open
    refused = FakeKernel32(fail={("set", power.POWER_REQUEST_SYSTEM_REQUIRED)})
    with pytest.raises(power.PowerError, match=r"Windows refused to keep the PC awake \(error 5\)"):
        power.WindowsBackend(refused, last_error=lambda: 5).acquire("job")
    assert not refused.open
    with pytest.raises(power.PowerError, match="Windows refused a power request"):
        power.WindowsBackend(FakeKernel32(fail={"create"}), last_error=lambda: 87).acquire("job")


def test_the_reason_context_has_windows_layout():
    # winnt.h: ULONG Version; DWORD Flags; union { struct {HMODULE; ULONG; ULONG; LPWSTR*} Detailed;
    # LPWSTR SimpleReasonString; } Reason: the union starts at the pointer-aligned offset 8.
    assert power.REASON_CONTEXT.Reason.offset == 8
    assert ctypes.sizeof(power.REASON_CONTEXT) == 8 + 2 * ctypes.sizeof(ctypes.c_void_p) + 8


class FakeFrameworks:
    """CoreFoundation's strings and IOKit's assertions, recorded."""

    def __init__(self, result=0):
        self.calls, self.result, self.strings = [], result, {}

    # CoreFoundation
    def CFStringCreateWithCString(self, allocator, text, encoding):
        ref = 100 + len(self.strings)
        self.strings[ref] = text.decode()
        self.calls.append(("string", text.decode(), encoding))
        return ref

    def CFRelease(self, ref):
        self.calls.append(("cfrelease", self.strings.pop(ref)))

    # IOKit
    def IOPMAssertionCreateWithName(self, kind, level, name, assertion_ref):
        self.calls.append(("assert", self.strings[kind], level, self.strings[name]))
        assertion_ref._obj.value = 42
        return self.result

    def IOPMAssertionRelease(self, assertion):
        self.calls.append(("release", assertion))
        return 0


def test_macos_takes_a_prevent_idle_system_sleep_assertion_and_releases_it():
    fake = FakeFrameworks()
    held = power.MacBackend((fake, fake)).acquire("rendering job 7")
    assert ("assert", "PreventUserIdleSystemSleep", 255, "homefarm: rendering job 7") in fake.calls
    assert not fake.strings, "both CFStrings released"
    held.release()
    held.release()
    assert fake.calls[-1] == ("release", 42) and [c[0] for c in fake.calls].count("release") == 1
    refused = FakeFrameworks(result=-536870199)  # kIOReturnNotPermitted as a signed int
    with pytest.raises(power.PowerError, match="macOS refused a power assertion"):
        power.MacBackend((refused, refused)).acquire("job")
    assert not refused.strings


def test_linux_without_any_bus_says_so_in_words():
    def no_bus(bus, fds):
        raise FileNotFoundError(2, "No such file or directory")
    with pytest.raises(power.PowerError) as raised:
        power.LinuxBackend(no_bus).acquire("job")
    assert str(raised.value) == "nothing here can keep the PC awake (logind: no bus to ask; desktop session: " \
                                "no bus to ask)"


class RecordingBackend:
    """A backend of the real shape that records what the switch asks of it."""
    name = "a recorder"

    def __init__(self, refuse=False, delay=0.0):
        self.calls, self.refuse, self.delay = [], refuse, delay
        self.changed = threading.Condition()

    def acquire(self, reason):
        time.sleep(self.delay)
        self._add(("acquire", reason))
        if self.refuse:
            raise power.PowerError("refused")
        return _Release(self)

    def _add(self, call):
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def wait_for(self, condition, timeout=5.0):
        with self.changed:
            assert self.changed.wait_for(lambda: condition(self.calls), timeout), self.calls

    def held(self) -> bool:
        acquired = 0 if self.refuse else sum(1 for c in self.calls if c[0] == "acquire")
        return acquired > sum(1 for c in self.calls if c[0] == "release")


class _Release:
    def __init__(self, backend):
        self.backend = backend

    def release(self):
        self.backend._add(("release",))


def test_the_switch_returns_at_once_and_tells_what_the_os_did():
    backend, told = RecordingBackend(delay=0.3), []
    switch = power.KeepAwake(backend, on_change=told.append)
    started = time.monotonic()
    switch.hold("job 1")
    assert time.monotonic() - started < 0.1, "a slow bus must not hold up the worker loop"
    backend.wait_for(lambda calls: calls == [("acquire", "job 1")])
    switch.release()
    backend.wait_for(lambda calls: calls[-1] == ("release",))
    assert told == [True, False]
    switch.hold("job 2")
    switch.close()
    assert backend.calls[-1] == ("release",) and not switch.holding


def test_a_refusal_is_logged_once_per_job_and_never_retried_in_a_loop(caplog):
    backend = RecordingBackend(refuse=True)
    switch = power.KeepAwake(backend)
    switch.hold("job 1")
    backend.wait_for(lambda calls: len(calls) == 1)
    time.sleep(0.3)
    assert backend.calls == [("acquire", "job 1")]
    switch.release()
    switch.hold("job 1")  # the next job asks again
    backend.wait_for(lambda calls: len(calls) == 2)
    switch.close()
    assert "could not keep the PC awake: refused" in caplog.text


@pytest.mark.parametrize("policy, held_while_paused", [("requeue", False), ("suspend", False), ("finish", True)])
def test_the_worker_keeps_the_pc_awake_while_it_works_on_a_job_and_not_while_a_pause_stops_it(
        tmp_path, monkeypatch, policy, held_while_paused):
    monkeypatch.setattr(FakeRun, "runs", [])
    monkeypatch.setattr(FakeRun, "frame_s", 0.15)
    backend, guard, client = RecordingBackend(), FakeGuard(), FakeClient()
    client.leases.put(lease("1", frames="1-8"))
    worker = Worker(client, BLENDER, Folders(tmp_path / "jobs", tmp_path / "cache"),
                    Settings(claim_wait=5, pause_policy=policy, max_jobs=1), guard=guard, make_run=FakeRun,
                    keep_awake=power.KeepAwake(backend))
    thread = worker.start_thread()
    try:
        backend.wait_for(lambda calls: calls == [("acquire", "rendering job 1")])
        assert _eventually(lambda: worker.snapshot.keeping_awake)
        guard.set("game")
        time.sleep(0.5)
        assert backend.held() == held_while_paused, backend.calls
        guard.set(None)
        if policy == "requeue":  # the job went back to the server: it comes again
            client.leases.put(lease("1", frames="1-2"))
        thread.join(15)
        assert not thread.is_alive()
    finally:
        worker.stop()
    assert not backend.held() and backend.calls[-1] == ("release",)
    assert worker.snapshot.state == State.STOPPED


def test_with_keep_awake_off_the_worker_asks_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(FakeRun, "runs", [])
    backend, client = RecordingBackend(), FakeClient()
    client.leases.put(lease("1", frames="1-2"))
    worker = Worker(client, BLENDER, Folders(tmp_path / "jobs", tmp_path / "cache"),
                    Settings(claim_wait=5, max_jobs=1, keep_awake=False), make_run=FakeRun,
                    keep_awake=power.KeepAwake(backend))
    worker.start_thread().join(15)
    assert backend.calls == []


def _eventually(condition, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_tooltip_says_the_pc_is_kept_awake_even_when_the_line_is_long():
    snapshot = Snapshot(state=State.RENDERING, job=JobProgress("1" * 90, "rendering", percent=40.0),
                        keeping_awake=True)
    tip = status.tooltip(snapshot)
    assert tip.endswith("; keeping the PC awake") and len(tip) <= 127
    assert "awake" not in status.tooltip(Snapshot(state=State.WAITING))


def _mac():
    fake = FakeFrameworks()
    return power.MacBackend((fake, fake))


@pytest.mark.parametrize("make, words", [
    (lambda: power.WindowsBackend(FakeKernel32()), "keep awake: through a Windows power request, while a job is held"),
    (_mac, "keep awake: through a macOS power assertion, while a job is held"),
])
def test_doctor_names_the_mechanism_on_every_os(make, words):
    cfg = config_mod.load(config_mod.Paths.default())
    check = doctor._awake_check(cfg, make())
    assert check.ok and check.detail.startswith(words), check.detail
    refused = doctor._awake_check(cfg, power.WindowsBackend(FakeKernel32(fail={"create"}), last_error=lambda: 5))
    assert not refused.ok and refused.detail == "keep awake: Windows refused a power request (error 5)"
    assert refused.fix.startswith("renders may stop when the PC sleeps: set Windows' sleep timeout to Never")
