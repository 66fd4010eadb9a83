"""What the tray needs from the outside world (tests replace parts of it), and the bridge that carries the
worker core's callbacks from its threads to the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from worker_app import config as config_mod


class Bridge(QObject):
    """Carries the core's callbacks, which come on its threads, to the GUI thread.

    It has no Qt parent and the core's callbacks hold it, so a late callback emits on a live object."""
    snapshot = Signal(object)
    job_ended = Signal(object)

    def callbacks(self):
        return (lambda snapshot: self.snapshot.emit(snapshot)), (lambda report: self.job_ended.emit(report))


class Services:
    """What the tray needs from the outside world; tests replace parts of it."""

    def __init__(self, paths: config_mod.Paths, tokens=None, autostart=None, start_runtime=None,
                 text_opener=None):
        from worker_app.system import autostart as autostart_mod
        from worker_app.system.credentials import TokenStore
        from worker_app.system.desktop import TextFileOpener

        self.paths = paths
        self.text_opener = text_opener or TextFileOpener()
        self.tokens = tokens or TokenStore()
        self.autostart = autostart or autostart_mod.for_this_os()
        self.start_runtime = start_runtime or self._start_runtime

    def activity_command(self) -> list[str]:
        """The activity window's process: this program with the ``activity`` command (frozen: the program
        itself; from source: this Python, windowless where the OS has such a Python)."""
        import sys
        from pathlib import Path

        if getattr(sys, "frozen", False):
            return [sys.executable, "activity"]
        python = Path(sys.executable)
        windowless = python.with_name("pythonw.exe")
        return [str(windowless if sys.platform == "win32" and windowless.exists() else python), "-m", "worker_app",
                "activity"]

    def install_blender(self, cfg, series: str, say, progress):
        """Installs the newest Blender of ``series`` from the owner's sources (render/installs.py); returns it."""
        from worker_app.render import installs

        return installs.install(self.paths.data_dir, series, cfg.blender_sources, cfg.blender_mirror,
                                cfg.allow_insecure_http, say=say, progress=progress)

    def _start_runtime(self, cfg, token, on_snapshot, on_job_end):
        from worker_app import runtime
        from worker_app.render.discovery import find_all
        from worker_app.render.installs import remove_unused

        remove_unused(self.paths.data_dir, cfg.keep_unused_days)
        rt = runtime.build(cfg, self.paths, token, find_all(cfg.blender_path, self.paths.data_dir), on_snapshot=on_snapshot,
                           on_job_end=on_job_end, asks_owner=True)
        rt.start()
        return rt
