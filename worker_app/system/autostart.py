"""Start homefarm when the owner signs in: one small interface, one backend per OS.

- Windows: the ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` value, honouring
  ``...\\Explorer\\StartupApproved\\Run``: what the owner switched off in Task Manager stays off.
- macOS: a LaunchAgent plist with ``RunAtLoad``.
- Linux and other XDG desktops: an autostart ``.desktop`` file.

The command stored is the frozen executable when homefarm runs frozen, else this interpreter running the
module, so the entry keeps working from a virtual environment.
"""

from __future__ import annotations

import os
import plistlib
import sys
from pathlib import Path

from worker_app.system.files import write_atomic

APP_ID = "homefarm"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"


# The bundle's two programs (installer/homefarm.spec): the windowed tray and the console CLI beside it.
TRAY_PROGRAM = "homefarm"


def launch_command() -> list[str]:
    """How to start the tray app: the bundle's tray program, or this interpreter with the module.

    Always the tray program, even when ``homefarm-cli autostart on`` asks: registering the console program
    would open a console window at every sign-in (closing it would end homefarm) and would no longer match
    the value the installer writes."""
    if getattr(sys, "frozen", False):
        suffix = ".exe" if sys.platform == "win32" else ""
        return [str(Path(sys.executable).with_name(TRAY_PROGRAM + suffix))]
    executable = sys.executable
    if sys.platform == "win32":
        # pythonw.exe opens no console window at sign-in.
        windowed = Path(executable).with_name("pythonw.exe")
        if windowed.exists():
            executable = str(windowed)
    return [executable, "-m", "worker_app"]


def _quote_windows(args: list[str]) -> str:
    # Every argument quoted, the setup's Run value the same: the two must write identical strings.
    return " ".join(f'"{a}"' for a in args)


class Autostart:
    def enabled(self) -> bool:
        raise NotImplementedError

    def enable(self) -> None:
        raise NotImplementedError

    def disable(self) -> None:
        raise NotImplementedError

    def status(self) -> str:
        return "on" if self.enabled() else "off"


class XdgAutostart(Autostart):
    def __init__(self, config_home: Path | None = None, command: list[str] | None = None):
        base = config_home or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = base / "autostart" / f"{APP_ID}.desktop"
        self.command = command or launch_command()

    def enabled(self) -> bool:
        if not self.path.is_file():
            return False
        text = self.path.read_text(encoding="utf-8", errors="replace")
        return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text

    def enable(self) -> None:
        exec_line = " ".join(_desktop_quote(a) for a in self.command)
        write_atomic(self.path, "[Desktop Entry]\nType=Application\nName=homefarm\n"
                                "Comment=Renders your web app's Blender jobs on this PC\n"
                                f"Exec={exec_line}\nIcon=homefarm\nTerminal=false\nX-GNOME-Autostart-enabled=true\n")

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)


def _desktop_quote(arg: str) -> str:
    # The Desktop Entry spec: quote arguments with reserved characters, escaping \ " ` $.
    if not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


class WindowsAutostart(Autostart):
    """The Run value; ``registry`` is winreg or a fake with the same functions."""

    def __init__(self, registry=None, command: list[str] | None = None):
        self.registry = registry
        self.command = command or launch_command()

    @property
    def reg(self):
        if self.registry is None:
            import winreg
            self.registry = winreg
        return self.registry

    def _value(self, key_path: str):
        reg = self.reg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, key_path) as key:
                return reg.QueryValueEx(key, APP_ID)[0]
        except OSError:
            return None

    def approved_by_owner(self) -> bool:
        """False when the owner switched homefarm off in Task Manager's Startup tab."""
        data = self._value(APPROVED_KEY)
        # The first byte is 2 (or 6) for on, 3 (or 7) for off: https://superuser.com/a/1317567
        return not (isinstance(data, (bytes, bytearray)) and data and data[0] & 1)

    def enabled(self) -> bool:
        return self._value(RUN_KEY) is not None and self.approved_by_owner()

    def enable(self) -> None:
        reg = self.reg
        with reg.CreateKey(reg.HKEY_CURRENT_USER, RUN_KEY) as key:
            reg.SetValueEx(key, APP_ID, 0, reg.REG_SZ, _quote_windows(self.command))
        # The StartupApproved value is the owner's choice in Task Manager: never written here.

    def disable(self) -> None:
        reg = self.reg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
                reg.DeleteValue(key, APP_ID)
        except OSError:
            pass

    def status(self) -> str:
        if self._value(RUN_KEY) is not None and not self.approved_by_owner():
            return "off (switched off in Task Manager's Startup tab)"
        return super().status()


class MacAutostart(Autostart):
    LABEL = "dev.homefarm.worker"

    def __init__(self, agents_dir: Path | None = None, command: list[str] | None = None):
        self.path = (agents_dir or Path.home() / "Library" / "LaunchAgents") / f"{self.LABEL}.plist"
        self.command = command or launch_command()

    def enabled(self) -> bool:
        if not self.path.is_file():
            return False
        try:
            return bool(plistlib.loads(self.path.read_bytes()).get("RunAtLoad"))
        except plistlib.InvalidFileException:
            return False

    def enable(self) -> None:
        data = {"Label": self.LABEL, "ProgramArguments": self.command, "RunAtLoad": True,
                "ProcessType": "Interactive", "KeepAlive": False}
        write_atomic(self.path, plistlib.dumps(data))

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)


def for_this_os() -> Autostart:
    if sys.platform == "win32":
        return WindowsAutostart()
    if sys.platform == "darwin":
        return MacAutostart()
    return XdgAutostart()
