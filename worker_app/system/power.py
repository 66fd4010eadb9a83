"""Keeping the PC awake while a job is held: one backend per OS behind one small interface.

Windows and macOS decide to sleep from keyboard and mouse input alone: a render's CPU and GPU work does not
count (Microsoft Learn, ``SetThreadExecutionState``: "Activities that are not automatically detected include
disk or CPU activity and video display"), and GNOME and KDE suspend an idle session on their own. So while a
job is held, and only then, the worker asks the OS to keep the *system* awake (never the display):

- Windows: a power request (``PowerCreateRequest`` + ``PowerSetRequest``, system- and execution-required),
  which ``powercfg /requests`` lists with its reason;
- macOS: an IOKit assertion ``PreventUserIdleSystemSleep`` (what ``caffeinate -i`` takes);
- Linux: a logind ``sleep`` inhibitor over the system D-Bus (what ``systemd-inhibit`` takes), plus the
  desktop session's own inhibitor where one runs (GNOME's session manager, else the freedesktop
  PowerManagement one that KDE serves).

Every one of them dies with the process: the kernel closes a Windows handle and logind's file descriptor, macOS
drops a dead process's assertions, and the session managers drop an inhibitor when its D-Bus connection closes.
So a crash or a kill never leaves the PC unable to sleep.

``KeepAwake`` is the worker's switch: ``hold(reason)`` and ``release()`` return at once, and a thread of its own
talks to the OS, so a slow or missing bus never holds up the worker loop.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

log = logging.getLogger("homefarm.power")

APP = "homefarm"
BUS_TIMEOUT_S = 5.0  # a D-Bus answer normally takes milliseconds


class PowerError(Exception):
    """The OS would not keep the PC awake; the message says why in a person's words."""


class Held(Protocol):
    """What a backend hands back while it keeps the PC awake."""

    def release(self) -> None: ...


class Backend(Protocol):
    """One OS's way of keeping the system awake."""
    name: str  # how doctor names it: "logind", "a Windows power request"
    fix: str  # what the owner can do where it fails

    def acquire(self, reason: str) -> Held: ...


@dataclass(frozen=True)
class Probe:
    """What ``doctor`` says: whether the PC can be kept awake here, and how."""
    ok: bool
    detail: str
    fix: str = ""


# -- Linux: logind and the desktop session over D-Bus ------------------------------------------------------

LOGIND = ("org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager")
GNOME_SESSION = ("org.gnome.SessionManager", "/org/gnome/SessionManager", "org.gnome.SessionManager")
FDO_POWER = ("org.freedesktop.PowerManagement", "/org/freedesktop/PowerManagement/Inhibit",
             "org.freedesktop.PowerManagement.Inhibit")
# The bus's answers for a name nobody serves: that desktop (or logind) is simply not there.
_NOT_RUNNING = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")
GNOME_INHIBIT_SUSPEND = 4  # GsmInhibitorFlag: "suspending the session or computer" (not idle, not the screen)


class _LinuxHeld:
    def __init__(self, fd: int | None, session):
        self.fd, self.session = fd, session

    def release(self) -> None:
        if self.session is not None:
            conn, release_call = self.session
            self.session = None
            try:
                conn.send_and_get_reply(release_call, timeout=BUS_TIMEOUT_S)
            except Exception as error:  # closing the connection drops the inhibitor all the same
                log.debug("the session inhibitor's release call failed: %s", error)
            conn.close()
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # logind drops the inhibitor when the last copy of this descriptor closes


class LinuxBackend:
    """A logind ``sleep`` inhibitor (system bus) and the session manager's inhibitor (session bus).

    Either one is enough to hold; neither found raises ``PowerError``."""
    fix = ("renders may stop when the PC suspends: without systemd-logind or a desktop session on D-Bus, set "
           "your power settings to never suspend while homefarm renders")

    def __init__(self, connect=None):
        self._connect = connect or _jeepney_connect
        self.name = "logind"

    def acquire(self, reason: str) -> Held:
        fd, problems = None, []
        try:
            fd = self._logind(reason)
        except Exception as error:
            problems.append(f"logind: {_bus_words(error)}")
        session = None
        try:
            session = self._session(reason)
        except Exception as error:
            problems.append(f"desktop session: {_bus_words(error)}")
        if fd is None and session is None:
            raise PowerError("nothing here can keep the PC awake (" + "; ".join(problems) + ")")
        if problems:
            log.debug("keeping awake without %s", "; ".join(problems))
        self.name = " and ".join(n for n, held in (("logind", fd is not None),
                                                   (self._session_name, session is not None)) if held)
        return _LinuxHeld(fd, session)

    _session_name = "the desktop session"

    def _logind(self, reason: str) -> int:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg
        conn = self._connect("SYSTEM", True)
        try:
            call = new_method_call(DBusAddress(LOGIND[1], LOGIND[0], LOGIND[2]), "Inhibit", "ssss",
                                   ("sleep", APP, reason, "block"))
            handle = unwrap_msg(conn.send_and_get_reply(call, timeout=BUS_TIMEOUT_S))[0]
        finally:
            conn.close()
        fd = handle.to_raw_fd() if hasattr(handle, "to_raw_fd") else int(handle)
        os.set_inheritable(fd, False)  # Blender, started while it is held, must not keep it alive
        return fd

    def _session(self, reason: str):
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg
        conn = self._connect("SESSION", False)
        try:
            for (bus_name, path, interface), args, release, label in (
                    (GNOME_SESSION, ("susu", (APP, 0, reason, GNOME_INHIBIT_SUSPEND)), "Uninhibit",
                     "GNOME's session manager"),
                    (FDO_POWER, ("ss", (APP, reason)), "UnInhibit", "the desktop's power management")):
                address = DBusAddress(path, bus_name, interface)
                try:
                    cookie = unwrap_msg(conn.send_and_get_reply(new_method_call(address, "Inhibit", *args),
                                                                timeout=BUS_TIMEOUT_S))[0]
                except DBusErrorResponse as error:
                    if error.name in _NOT_RUNNING:
                        continue  # not this desktop: try the next
                    raise
                self._session_name = label
                return conn, new_method_call(address, release, "u", (cookie,))
        except BaseException:
            conn.close()
            raise
        conn.close()
        raise PowerError("no session manager takes inhibitors on the session bus")


def _jeepney_connect(bus: str, fds: bool):
    from jeepney.io.blocking import open_dbus_connection
    return open_dbus_connection(bus=bus, enable_fds=fds, auth_timeout=BUS_TIMEOUT_S)


def _bus_words(error: Exception) -> str:
    """A D-Bus failure in a few words: the bus missing, the service missing, or what the service said."""
    name = getattr(error, "name", "")
    if name in _NOT_RUNNING:
        return "not running"
    if name:
        return f"refused ({name.rsplit('.', 1)[-1]})"
    if isinstance(error, KeyError):
        return "no session bus"
    if isinstance(error, (FileNotFoundError, ConnectionRefusedError)):
        return "no bus to ask"
    log.debug("D-Bus call failed", exc_info=error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return "it did not answer as expected (the log has the details)"


# -- Windows: a power request --------------------------------------------------------------------------------

POWER_REQUEST_CONTEXT_VERSION = 0
POWER_REQUEST_CONTEXT_SIMPLE_STRING = 0x1
POWER_REQUEST_SYSTEM_REQUIRED = 1
POWER_REQUEST_EXECUTION_REQUIRED = 3  # Windows 8 and newer; on Modern Standby PCs it keeps the process running


# ULONG and DWORD are 32 bits on Windows; ctypes.c_ulong is 64 bits on Linux and macOS, where the tests run.
_ULONG = ctypes.c_uint32


class _Detailed(ctypes.Structure):
    _fields_ = [("LocalizedReasonModule", ctypes.c_void_p), ("LocalizedReasonId", _ULONG),
                ("ReasonStringCount", _ULONG), ("ReasonStrings", ctypes.c_void_p)]


class _Reason(ctypes.Union):
    _fields_ = [("Detailed", _Detailed), ("SimpleReasonString", ctypes.c_wchar_p)]


class REASON_CONTEXT(ctypes.Structure):
    """winnt.h's REASON_CONTEXT, for ``PowerCreateRequest``."""
    _fields_ = [("Version", _ULONG), ("Flags", _ULONG), ("Reason", _Reason)]


def _windows_kernel32():
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = ctypes.c_void_p  # a HANDLE is pointer-sized: c_int would cut it on 64-bit Windows
    kernel32.PowerCreateRequest.argtypes = [ctypes.POINTER(REASON_CONTEXT)]
    kernel32.PowerCreateRequest.restype = handle
    kernel32.PowerSetRequest.argtypes = [handle, ctypes.c_int]
    kernel32.PowerSetRequest.restype = ctypes.c_int
    kernel32.PowerClearRequest.argtypes = [handle, ctypes.c_int]
    kernel32.PowerClearRequest.restype = ctypes.c_int
    kernel32.CloseHandle.argtypes = [handle]
    kernel32.CloseHandle.restype = ctypes.c_int
    return kernel32


INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value


class _WindowsHeld:
    def __init__(self, kernel32, handle, kinds: list[int]):
        self.kernel32, self.handle, self.kinds = kernel32, handle, kinds

    def release(self) -> None:
        if self.handle is None:
            return
        handle, self.handle = self.handle, None
        for kind in self.kinds:
            self.kernel32.PowerClearRequest(handle, kind)
        self.kernel32.CloseHandle(handle)  # the kernel also closes it when the process ends


class WindowsBackend:
    name = "a Windows power request"
    fix = "renders may stop when the PC sleeps: set Windows' sleep timeout to Never while homefarm renders"

    def __init__(self, kernel32=None, last_error=None):
        self._kernel32 = kernel32
        self._last_error = last_error or getattr(ctypes, "get_last_error", lambda: 0)

    def acquire(self, reason: str) -> Held:
        kernel32 = self._kernel32 = self._kernel32 or _windows_kernel32()
        context = REASON_CONTEXT(POWER_REQUEST_CONTEXT_VERSION, POWER_REQUEST_CONTEXT_SIMPLE_STRING)
        context.Reason.SimpleReasonString = f"{APP}: {reason}"
        handle = kernel32.PowerCreateRequest(ctypes.byref(context))
        if not handle or handle == INVALID_HANDLE_VALUE:
            raise PowerError(f"Windows refused a power request (error {self._last_error()})")
        if not kernel32.PowerSetRequest(handle, POWER_REQUEST_SYSTEM_REQUIRED):
            code = self._last_error()
            kernel32.CloseHandle(handle)
            raise PowerError(f"Windows refused to keep the PC awake (error {code})")
        kinds = [POWER_REQUEST_SYSTEM_REQUIRED]
        if kernel32.PowerSetRequest(handle, POWER_REQUEST_EXECUTION_REQUIRED):
            kinds.append(POWER_REQUEST_EXECUTION_REQUIRED)
        return _WindowsHeld(kernel32, handle, kinds)


# -- macOS: an IOKit power assertion -------------------------------------------------------------------------

K_CF_STRING_ENCODING_UTF8 = 0x08000100
K_IOPM_ASSERTION_LEVEL_ON = 255
K_IO_RETURN_SUCCESS = 0
PREVENT_USER_IDLE_SYSTEM_SLEEP = b"PreventUserIdleSystemSleep"  # kIOPMAssertionTypePreventUserIdleSystemSleep


def _mac_frameworks():
    cf = ctypes.CDLL("/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation")
    iokit = ctypes.CDLL("/System/Library/Frameworks/IOKit.framework/IOKit")
    cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    cf.CFStringCreateWithCString.restype = ctypes.c_void_p
    cf.CFRelease.argtypes = [ctypes.c_void_p]
    iokit.IOPMAssertionCreateWithName.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p,
                                                  ctypes.POINTER(ctypes.c_uint32)]
    iokit.IOPMAssertionCreateWithName.restype = ctypes.c_int
    iokit.IOPMAssertionRelease.argtypes = [ctypes.c_uint32]
    iokit.IOPMAssertionRelease.restype = ctypes.c_int
    return cf, iokit


class _MacHeld:
    def __init__(self, iokit, assertion: int):
        self.iokit, self.assertion = iokit, assertion

    def release(self) -> None:
        if self.assertion is not None:
            assertion, self.assertion = self.assertion, None
            self.iokit.IOPMAssertionRelease(assertion)


class MacBackend:
    name = "a macOS power assertion"
    fix = "renders may stop when the Mac sleeps: turn off automatic sleep in Energy Saver"

    def __init__(self, frameworks=None):
        self._frameworks = frameworks

    def acquire(self, reason: str) -> Held:
        cf, iokit = self._frameworks = self._frameworks or _mac_frameworks()
        kind = cf.CFStringCreateWithCString(None, PREVENT_USER_IDLE_SYSTEM_SLEEP, K_CF_STRING_ENCODING_UTF8)
        name = cf.CFStringCreateWithCString(None, f"{APP}: {reason}".encode(), K_CF_STRING_ENCODING_UTF8)
        assertion = ctypes.c_uint32(0)
        try:
            result = iokit.IOPMAssertionCreateWithName(kind, K_IOPM_ASSERTION_LEVEL_ON, name,
                                                       ctypes.byref(assertion))
        finally:
            cf.CFRelease(kind)
            cf.CFRelease(name)
        if result != K_IO_RETURN_SUCCESS:
            raise PowerError(f"macOS refused a power assertion (IOReturn {result & 0xFFFFFFFF:#x})")
        return _MacHeld(iokit, assertion.value)


def backend_for(platform: str | None = None) -> Backend:
    """This OS's backend."""
    platform = platform or sys.platform
    if platform == "win32":
        return WindowsBackend()
    if platform == "darwin":
        return MacBackend()
    return LinuxBackend()


def probe(backend: Backend | None = None) -> Probe:
    """Takes and releases the PC's wakefulness once, as the worker would: for ``doctor``."""
    backend = backend or backend_for()
    try:
        backend.acquire("checking that the PC can be kept awake").release()
    except PowerError as error:
        return Probe(False, str(error), backend.fix)
    except Exception:  # a library missing or failing: said in words, the detail logged
        log.warning("keep-awake probe failed", exc_info=True)
        return Probe(False, "the OS's way to keep the PC awake failed; the log has the details", backend.fix)
    return Probe(True, f"through {backend.name}, while a job is held (never the display)")


# -- the worker's switch ------------------------------------------------------------------------------------

class KeepAwake:
    """Holds the PC awake while the worker wants it; the OS calls run on a thread of their own.

    ``hold`` and ``release`` return at once; ``on_change(held)`` tells whether the OS now keeps the PC awake."""

    def __init__(self, backend: Backend | None = None, on_change: Callable[[bool], None] | None = None):
        self.backend = backend or backend_for()
        self.on_change = on_change or (lambda held: None)
        self._wanted: str | None = None  # the reason while the worker wants the PC awake
        self._held: Held | None = None
        self._failed_for: str | None = None  # a refusal is logged once per reason, not retried in a loop
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self, reason: str) -> None:
        self._want(reason)

    def release(self) -> None:
        self._want(None)

    def close(self, timeout: float = 2.0) -> None:
        """Releases and ends the thread (bounded in time: the process ending releases everything anyway)."""
        with self._cond:
            self._wanted, self._closed = None, True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _want(self, reason: str | None) -> None:
        with self._cond:
            if self._closed or reason == self._wanted:
                return
            self._wanted = reason
            if reason is None:
                self._failed_for = None  # the next job asks the OS again
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="keep-awake", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _pending(self) -> bool:
        """Whether the OS must be told something (called under the lock)."""
        if self._wanted is None:
            return self._held is not None
        return self._held is None and self._wanted != self._failed_for

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._pending():
                    self._cond.wait()
                wanted, closed = self._wanted, self._closed
            if wanted is None and self._held is not None:
                self._drop()
            elif wanted is not None and self._held is None and wanted != self._failed_for:
                self._take(wanted)
            if closed and self._held is None:
                return

    def _take(self, reason: str) -> None:
        try:
            held = self.backend.acquire(reason)
        except Exception as error:
            self._failed_for = reason
            log.warning("could not keep the PC awake: %s", error)
            return
        self._held, self._failed_for = held, None
        log.info("keeping the PC awake (%s): %s", self.backend.name, reason)
        self._tell(True)

    def _drop(self) -> None:
        held, self._held = self._held, None
        try:
            held.release()
        except Exception:
            log.warning("releasing the keep-awake request failed; it ends with the process", exc_info=True)
        log.info("the PC may sleep again")
        self._tell(False)

    def _tell(self, held: bool) -> None:
        try:
            self.on_change(held)
        except Exception:
            log.exception("keep-awake listener failed")
