"""Autostart: the XDG backend for real in a temporary HOME; Windows and macOS through their interfaces."""

import os
import plistlib
import shlex
import subprocess
import sys

from support.windows import FakeWinreg
from worker_app.system import autostart as A


def test_xdg_round_trip(tmp_path):
    entry = A.XdgAutostart(config_home=tmp_path, command=["/opt/my env/python", "-m", "worker_app"])
    assert entry.status() == "off"
    entry.enable()
    text = (tmp_path / "autostart" / "homefarm.desktop").read_text()
    assert 'Exec="/opt/my env/python" -m worker_app' in text and "Type=Application" in text
    assert entry.status() == "on"
    entry.disable()
    assert entry.status() == "off" and not (tmp_path / "autostart" / "homefarm.desktop").exists()


def test_xdg_respects_an_entry_the_desktop_hid(tmp_path):
    entry = A.XdgAutostart(config_home=tmp_path)
    entry.enable()
    path = tmp_path / "autostart" / "homefarm.desktop"
    path.write_text(path.read_text() + "Hidden=true\n")
    assert entry.enabled() is False


def test_cli_autostart_on_off_status(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HOMEFARM_HOME": str(tmp_path / "home")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "worker_app", "autostart", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    assert run("status").stdout.strip() == "off"
    assert run("on").returncode == 0
    assert run("status").stdout.strip() == "on"
    exec_line = next(line for line in (tmp_path / "autostart" / "homefarm.desktop").read_text().splitlines()
                     if line.startswith("Exec="))
    assert shlex.split(exec_line[5:]) == [sys.executable, "-m", "worker_app"]
    assert run("off").returncode == 0
    assert run("status").stdout.strip() == "off"


def test_windows_run_value_round_trip():
    reg = FakeWinreg()
    entry = A.WindowsAutostart(reg, command=[r"C:\Program Files\homefarm\homefarm.exe"])
    assert entry.status() == "off"
    entry.enable()
    assert reg.keys[A.RUN_KEY]["homefarm"] == r'"C:\Program Files\homefarm\homefarm.exe"'
    assert entry.status() == "on"
    entry.disable()
    assert entry.status() == "off" and "homefarm" not in reg.keys[A.RUN_KEY]


def test_windows_never_overrides_task_manager():
    reg = FakeWinreg()
    entry = A.WindowsAutostart(reg, command=["homefarm.exe"])
    entry.enable()
    # The owner switched homefarm off in Task Manager: 03 00 00 00 + a timestamp.
    reg.keys[A.APPROVED_KEY] = {"homefarm": bytes([3, 0, 0, 0]) + bytes(8)}
    assert entry.enabled() is False
    assert entry.status() == "off (switched off in Task Manager's Startup tab)"
    entry.enable()  # turning it on from homefarm does not flip the owner's switch
    assert reg.keys[A.APPROVED_KEY]["homefarm"][0] == 3
    reg.keys[A.APPROVED_KEY]["homefarm"] = bytes([2, 0, 0, 0]) + bytes(8)
    assert entry.enabled() is True


def test_macos_launch_agent(tmp_path):
    entry = A.MacAutostart(tmp_path, command=["/Applications/homefarm.app/Contents/MacOS/homefarm"])
    entry.enable()
    data = plistlib.loads((tmp_path / "dev.homefarm.worker.plist").read_bytes())
    assert data["RunAtLoad"] is True and data["ProgramArguments"] == [
        "/Applications/homefarm.app/Contents/MacOS/homefarm"]
    assert entry.status() == "on"
    entry.disable()
    assert entry.status() == "off"


def test_launch_command_when_frozen_is_always_the_tray_program(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    suffix = ".exe" if sys.platform == "win32" else ""
    for program in ("homefarm", "homefarm-cli"):  # started as the tray, or as the console CLI
        monkeypatch.setattr(sys, "executable", str(tmp_path / "bundle" / (program + suffix)))
        assert A.launch_command() == [str(tmp_path / "bundle" / ("homefarm" + suffix))]
    monkeypatch.delattr(sys, "frozen")
    assert A.launch_command() == [sys.executable, "-m", "worker_app"]
