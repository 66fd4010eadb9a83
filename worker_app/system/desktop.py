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
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SteamApp:
    """A Steam app as the owner knows it: its name, and the folder its programs run from."""
    app_id: int
    name: str = ""  # as Steam's library shows it ("Lossless Scaling"); "" when Steam does not say
    folder: str = ""  # steamapps/common/<installdir> in the library that holds it; "" when not found

    @property
    def label(self) -> str:
        return self.name or f"Steam app {self.app_id}"


class SteamStatus:
    def running_app_id(self) -> int | None:
        return None

    def app_info(self, app_id: int) -> SteamApp:
        """The app's name and folder, as far as this OS's Steam tells."""
        return SteamApp(app_id)

    def libraries(self) -> list[Path]:
        """Steam's folder and its other libraries, where this OS's Steam tells."""
        return []


class WindowsSteamStatus(SteamStatus):
    KEY = r"Software\Valve\Steam"

    def __init__(self, registry=None):
        self.registry = registry  # winreg, or a fake with the same functions

    def _reg(self):
        if self.registry is None:
            import winreg
            self.registry = winreg
        return self.registry

    def _value(self, key: str, name: str):
        reg = self._reg()
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, key) as opened:
                return reg.QueryValueEx(opened, name)[0]
        except OSError:
            return None

    def running_app_id(self) -> int | None:
        try:
            value = int(self._value(self.KEY, "RunningAppID") or 0)
        except (TypeError, ValueError):
            return None
        return value or None

    def libraries(self) -> list[Path]:
        steam = self._value(self.KEY, "SteamPath")
        return steam_libraries(Path(steam)) if isinstance(steam, str) and steam else []

    def app_info(self, app_id: int) -> SteamApp:
        """``HKCU\\Software\\Valve\\Steam\\Apps\\<id>``'s Name, and the app's folder from its
        ``appmanifest_<id>.acf`` in whichever library (``libraryfolders.vdf``) holds it."""
        name = self._value(f"{self.KEY}\\Apps\\{app_id}", "Name")
        folder = ""
        for library in self.libraries():
            installdir = vdf_value(library / "steamapps" / f"appmanifest_{app_id}.acf", "installdir")
            if installdir:
                folder = str(library / "steamapps" / "common" / installdir)
                break
        return SteamApp(app_id, name if isinstance(name, str) else "", folder)


def vdf_value(path: Path, key: str) -> str:
    """The first ``"key" "value"`` in a Valve KeyValues file (an .acf, a .vdf); "" when absent or unreadable."""
    return next(iter(vdf_values(path, key)), "")


def vdf_values(path: Path, key: str) -> list[str]:
    """Every value of ``key`` in a Valve KeyValues file, unescaped; [] when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    pattern = re.compile(r'"' + re.escape(key) + r'"\s+"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
    return [re.sub(r"\\(.)", r"\1", found) for found in pattern.findall(text)]


def steam_libraries(steam_folder: Path) -> list[Path]:
    """Steam's own folder and every library the owner added on other drives (``libraryfolders.vdf``)."""
    libraries = [steam_folder]
    for path in vdf_values(steam_folder / "steamapps" / "libraryfolders.vdf", "path"):
        library = Path(path)
        if os.path.normcase(str(library)) not in {os.path.normcase(str(p)) for p in libraries}:
            libraries.append(library)
    return libraries


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


def _spawn(command: list[str]) -> None:
    """Starts a program of the owner's desktop and leaves it running (never waited for)."""
    import subprocess
    subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True)


class TextFileOpener:
    """Opens a text file for the owner to edit where no program is set to open its kind (.toml has none on a
    fresh Windows: ShellExecute fails with error 1155), so "Open config file", the tray's only way to fix a
    broken config, always leads somewhere: Windows' Notepad, else Explorer with the file selected; macOS's
    default text editor (``open -t``); on Linux the file's folder."""

    def __init__(self, platform: str | None = None, spawn=_spawn, environ=None, exists=os.path.isfile):
        self.platform = platform or sys.platform
        self.spawn, self.exists = spawn, exists
        self.environ = os.environ if environ is None else environ

    def commands(self, path: str) -> list[list[str]]:
        """What to try, in order."""
        if self.platform == "win32":
            # By full path: a notepad.exe earlier on PATH, or in the current folder, is not the one meant.
            windows = self.environ.get("SystemRoot", r"C:\Windows")
            return [[f"{windows}\\System32\\notepad.exe", path], [f"{windows}\\explorer.exe", f"/select,{path}"]]
        if self.platform == "darwin":
            return [["/usr/bin/open", "-t", path], ["/usr/bin/open", "-R", path]]
        return [["xdg-open", os.path.dirname(path)]]

    def open(self, path: str) -> bool:
        for command in self.commands(path):
            if ("/" in command[0] or "\\" in command[0]) and not self.exists(command[0]):
                continue  # a program named by its full path that this PC lacks
            try:
                self.spawn(command)
                return True
            except OSError:
                continue
        return False
