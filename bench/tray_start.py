"""How long the tray takes from launch to its icon in the panel, under Xvfb with trayer.

Each round starts the program on a fresh X display with a tray host and times until a window of the
program is embedded in trayer's panel. The baseline, in the same run, is a bare PySide6 program that
only shows a tray icon: the floor any Qt tray app starts in.

    python bench/tray_start.py [--rounds 5] [--command /opt/homefarm/homefarm]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

BARE = ("import sys; from PySide6.QtWidgets import QApplication, QSystemTrayIcon; "
        "from PySide6.QtGui import QIcon, QPixmap; app = QApplication(sys.argv); p = QPixmap(22, 22); "
        "p.fill(); t = QSystemTrayIcon(QIcon(p)); t.setToolTip('bare'); t.show(); app.exec()")


def start_display():
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    display = ":" + number.decode().strip()
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                               "--height", "32", "--SetDockType", "true"],
                              env={**os.environ, "DISPLAY": display}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "panel" not in tree(display):
        time.sleep(0.05)
    return display, [trayer, xvfb]


def tree(display: str) -> str:
    return subprocess.run(["xwininfo", "-root", "-tree"], env={**os.environ, "DISPLAY": display},
                          capture_output=True, text=True).stdout


def embedded(display: str) -> bool:
    lines = tree(display).splitlines()
    for i, line in enumerate(lines):
        if '"panel"' in line:
            return any(line.startswith(" " * 9) and "0x" in line and "has no name" not in line
                       for line in lines[i + 1:i + 8])
    return False


def one_round(command: list[str], home: str) -> float:
    display, helpers = start_display()
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "HOMEFARM_HOME": home}
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < 60 and not embedded(display):
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)
        for helper in helpers:
            helper.terminate()
            helper.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--command", default=f"{sys.executable} -m worker_app")
    args = parser.parse_args()
    command = shlex.split(args.command)
    with tempfile.TemporaryDirectory() as home:
        bare = [one_round([sys.executable, "-c", BARE], home) for _ in range(args.rounds)]
        ours = [one_round(command, home) for _ in range(args.rounds)]
    print(f"{args.rounds} rounds under Xvfb + trayer")
    print(f"baseline, a bare PySide6 tray icon: median {statistics.median(bare):.2f} s")
    print(f"{args.command}: median {statistics.median(ours):.2f} s, max {max(ours):.2f} s")
    print(f"ratio to baseline (median): {statistics.median(ours) / statistics.median(bare):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
