"""What the activity window costs the tray: the tray (signed in, its worker waiting) on Xvfb with a tray host,
the window opened from its menu and closed, ten times, over a stats database of 30 days
(tests/support/fill_activity.py). Prints the tray's idle memory (its process tree's resident set) before, with
the window open (the window is a process of its own, so it shows as the tree's growth), and after each close,
and the difference after the ten.

    python bench/activity_memory.py [--times 10] [--settle 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "tray"))
sys.path.insert(0, str(ROOT / "bench"))
from support.fill_activity import fill  # noqa: E402
from test_tray_x11 import find_icon, open_menu, windows  # noqa: E402
from tray_idle import server_and_display, signed_in_env, tree_figures  # noqa: E402

TITLE = "homefarm — Activity"


def rss_mib(pid: int) -> float:
    return tree_figures(pid)[1] / 2**20


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10)


def activity_window(display: str):
    found = [w for w in windows(display) if w[1] == TITLE and w[4] >= 400]
    return found[0] if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--settle", type=float, default=10, help="seconds after start (and after each close)")
    args = parser.parse_args()
    with server_and_display() as (tmp, server, display):
        home = tmp / "home"
        env = signed_in_env(home, display, server)
        fill(home / "data" / "stats.sqlite3", time.time())
        tray = subprocess.Popen([sys.executable, "-m", "worker_app"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            icon = find_icon(display, tray, tmp, time.monotonic() + 60)
            time.sleep(args.settle)
            idle = rss_mib(tray.pid)
            print(f"tray idle: {idle:.1f} MiB")
            # The menu itself, opened once and closed: the fonts it measures stay loaded (tray/app.py).
            open_menu(display, icon, time.monotonic() + 20)
            xdotool(display, "key", "Escape")
            time.sleep(args.settle)
            menu_once = rss_mib(tray.pid)
            print(f"tray idle after its menu opened once: {menu_once:.1f} MiB ({menu_once - idle:+.1f} MiB)")
            after, opened, shown = [], [], []
            for n in range(args.times):
                open_menu(display, icon, time.monotonic() + 20)
                # Signed in, the worker waiting: "Pause", "Pause while gaming", "Start at login", "Activity…".
                for key in ("Down", "Down", "Down", "Down"):
                    xdotool(display, "key", key)
                    time.sleep(0.1)
                clicked = time.monotonic()
                xdotool(display, "key", "Return")
                deadline = time.monotonic() + 30
                window = None
                while window is None and time.monotonic() < deadline:
                    window = activity_window(display)
                    time.sleep(0.1)
                shown.append(time.monotonic() - clicked)
                if window is None:
                    raise SystemExit(f"the activity window did not open (time {n + 1}); windows: {windows(display)}")
                time.sleep(2)  # read and drawn
                opened.append(rss_mib(tray.pid))
                xdotool(display, "windowfocus", "--sync", window[0])
                xdotool(display, "key", "Escape")
                deadline = time.monotonic() + 20
                while activity_window(display) is not None and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(args.settle)
                after.append(rss_mib(tray.pid))
                print(f"  {n + 1:2d}: on screen in {shown[-1]:.2f} s, open {opened[-1]:.1f} MiB, closed "
                      f"{after[-1]:.1f} MiB")
            print(f"the window on screen {statistics.median(shown):.2f} s (median) after the click")
            print(f"tray idle before: {idle:.1f} MiB; with the window open: median {statistics.median(opened):.1f} "
                  f"MiB (the window's process: {statistics.median(opened) - idle:+.1f} MiB); after {args.times} "
                  f"opens and closes: {after[-1]:.1f} MiB ({after[-1] - idle:+.1f} MiB; {after[-1] - menu_once:+.1f} "
                  "MiB against the idle tray whose menu was opened once)")
        finally:
            tray.terminate()
            tray.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
