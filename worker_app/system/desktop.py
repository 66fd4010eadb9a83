"""What the owner's desktop is doing, one small interface each, one backend per OS.

- ``SteamStatus``: the app Steam says is running (Windows: ``HKCU\\Software\\Valve\\Steam\\RunningAppID``).
- ``FullScreenState``: whether a full-screen program (a game, a presentation) has the screen
  (Windows: ``SHQueryUserNotificationState``).
- ``InputIdle``: seconds since the last keyboard or mouse input (Windows: ``GetLastInputInfo``; X11:
  the XScreenSaver extension).
Where an OS has no way to tell, the backend answers None, and the detectors built on it stay quiet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


class SteamStatus:
    def running_app_id(self) -> int | None:
        return None


class WindowsSteamStatus(SteamStatus):
    def __init__(self, registry=None):
        self.registry = registry  # winreg, or a fake with the same functions

    def running_app_id(self) -> int | None:
        reg = self.registry
        if reg is None:
            import winreg as reg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, r"Software\Valve\Steam") as key:
                value = int(reg.QueryValueEx(key, "RunningAppID")[0])
        except (OSError, ValueError):
            return None
        return value or None


class FullScreenState:
    def full_screen(self) -> bool | None:
        return None


class WindowsFullScreenState(FullScreenState):
    # QUERY_USER_NOTIFICATION_STATE: 2 busy (full-screen app), 3 Direct3D full-screen, 4 presentation mode.
    FULL_SCREEN_STATES = {2, 3, 4}

    def full_screen(self) -> bool | None:
        state = ctypes.c_int(0)
        try:
            result = ctypes.windll.shell32.SHQueryUserNotificationState(ctypes.byref(state))
        except (AttributeError, OSError):
            return None
        return None if result != 0 else state.value in self.FULL_SCREEN_STATES


class InputIdle:
    def idle_seconds(self) -> float | None:
        return None


class WindowsInputIdle(InputIdle):
    def idle_seconds(self) -> float | None:
        class LASTINPUTINFO(ctypes.Structure):
            _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

        info = LASTINPUTINFO(ctypes.sizeof(LASTINPUTINFO), 0)
        try:
            if not ctypes.windll.user32.GetLastInputInfo(ctypes.byref(info)):
                return None
            now = ctypes.windll.kernel32.GetTickCount()
        except (AttributeError, OSError):
            return None
        return ((now - info.dwTime) & 0xFFFFFFFF) / 1000.0


class X11InputIdle(InputIdle):
    """The XScreenSaver extension's idle time; None without an X display or libXss."""

    class _Info(ctypes.Structure):
        _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int), ("kind", ctypes.c_int),
                    ("til_or_since", ctypes.c_ulong), ("idle", ctypes.c_ulong), ("eventMask", ctypes.c_ulong)]

    def __init__(self):
        self._display = None
        self._xss = self._x11 = None

    def _open(self) -> bool:
        if self._display:
            return True
        if not os.environ.get("DISPLAY"):
            return False
        x11_name, xss_name = ctypes.util.find_library("X11"), ctypes.util.find_library("Xss")
        if not x11_name or not xss_name:
            return False
        self._x11, self._xss = ctypes.CDLL(x11_name), ctypes.CDLL(xss_name)
        self._x11.XOpenDisplay.restype = ctypes.c_void_p
        self._x11.XDefaultRootWindow.restype = ctypes.c_ulong
        self._x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        self._xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(self._Info)
        self._xss.XScreenSaverQueryInfo.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(self._Info)]
        self._display = self._x11.XOpenDisplay(None)
        return bool(self._display)

    def idle_seconds(self) -> float | None:
        try:
            if not self._open():
                return None
            info = self._xss.XScreenSaverAllocInfo()
            root = self._x11.XDefaultRootWindow(self._display)
            if not self._xss.XScreenSaverQueryInfo(self._display, root, info):
                return None
            idle = info.contents.idle / 1000.0
            self._x11.XFree(info)
            return idle
        except (OSError, AttributeError):
            return None


def steam_status() -> SteamStatus:
    return WindowsSteamStatus() if sys.platform == "win32" else SteamStatus()


def full_screen_state() -> FullScreenState:
    return WindowsFullScreenState() if sys.platform == "win32" else FullScreenState()


def input_idle() -> InputIdle:
    if sys.platform == "win32":
        return WindowsInputIdle()
    if sys.platform.startswith("linux"):
        return X11InputIdle()
    return InputIdle()
