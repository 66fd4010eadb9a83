"""`homefarm` with no arguments: the tray app."""

from __future__ import annotations

import logging
import logging.handlers
import signal
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from worker_app import config as config_mod
from worker_app.tray.app import Services, TrayApp
from worker_app.tray.single import SingleInstance


# The tray's log; `homefarm run` has its own (homefarm.log): Windows cannot rotate a file two processes
# write, and a second tray that only asks the first to show itself must not touch the first one's log.
TRAY_LOG = "tray.log"


def _setup_logging(paths: config_mod.Paths) -> None:
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        handlers=[logging.handlers.RotatingFileHandler(paths.log_dir / TRAY_LOG,
                                                                       maxBytes=2_000_000, backupCount=3,
                                                                       encoding="utf-8"),
                                  logging.StreamHandler(sys.stderr)])
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def hold_setup_mutex(kernel32=None):
    """Windows: a named mutex the setup waits for (AppMutex in installer/homefarm.iss), so that an upgrade
    or an uninstall does not replace files the running tray uses. Released by Windows when we exit."""
    if sys.platform != "win32" and kernel32 is None:
        return None
    import ctypes
    kernel32 = kernel32 or ctypes.WinDLL("kernel32", use_last_error=True)
    return kernel32.CreateMutexW(None, False, "homefarm-tray")


def main(argv: list[str] | None = None) -> int:
    paths = config_mod.Paths.default()
    app = QApplication(sys.argv[:1] if argv is None else argv)
    app.setApplicationName("homefarm")
    app.setQuitOnLastWindowClosed(False)  # closing a dialog must not end the tray
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    single = SingleInstance(str(paths.tray_lock))
    if not single.acquire():
        single.notify_running()
        print("homefarm is already running; it was asked to show itself")
        return 0
    _setup_logging(paths)
    single.setup_mutex = hold_setup_mutex()  # held while the tray runs
    tray = TrayApp(Services(paths))  # a config with a mistake shows in the tray, which starts anyway
    single.show_requested.connect(tray.show_yourself)
    # Ctrl+C and SIGTERM quit cleanly (Blender stopped, job released). Qt's loop does not run Python's
    # signal handlers by itself; a once-a-second timer lets them run, at no measurable cost.
    signal.signal(signal.SIGINT, lambda *_: tray.quit(confirm=False))
    signal.signal(signal.SIGTERM, lambda *_: tray.quit(confirm=False))
    tick = QTimer()
    tick.start(1000)
    tick.timeout.connect(lambda: None)
    app.aboutToQuit.connect(tray.on_about_to_quit)  # sign-out and shutdown end the app without our Quit
    tray.start()
    code = app.exec()
    tray.close()
    single.release()
    return code
