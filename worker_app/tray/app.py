"""The tray app: the icon, its menu, notifications, and the worker core running beside it.

The GUI thread only shows snapshots and sends commands. Everything that touches the network, the disk,
the keyring or Blender runs on plain threads (``Background``) and reports back through Qt signals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
import logging
import time

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox, QSystemTrayIcon

from worker_app import __version__
from worker_app import config as config_mod
from worker_app import constants as C
from worker_app.core import Snapshot
from worker_app.core.activity import activity_log
from worker_app.tray import status
from worker_app.tray.background import Background
from worker_app.tray.icons import icon
from worker_app.tray.menu import build_menu
from worker_app.tray.notices import Notices
from worker_app.tray.services import Bridge, Services

log = logging.getLogger("homefarm.tray")
STATUS_WIDTH = 380  # px: the widest a status line in the menu gets before it is cut (with "…")
STATUS_CHARS = 64  # the same, roughly, in characters, until the menu first opens


class TrayApp(QObject):
    def __init__(self, services: Services, require_tray: bool = True):
        super().__init__()
        self.services = services
        self.paths = services.paths
        self.require_tray = require_tray
        # A config the owner broke must not make the tray vanish (launched at login, nobody sees stderr):
        # it starts with the defaults, says what to fix, and starts the worker once the file is right.
        self.config_problem = ""
        try:
            self.cfg = config_mod.load(self.paths)
        except config_mod.ConfigError as error:
            self.cfg = config_mod.Config()
            self.config_problem = status.config_problem(error)
            log.warning("config: %s", error)
        self._log_snapshot, self._log_job_end = activity_log(log)
        self.closed = False
        self.background = Background()
        self.bridge = Bridge()
        self.bridge.snapshot.connect(self.on_snapshot)
        self.bridge.job_ended.connect(self.on_job_ended)
        self.runtime = None
        self.signed_in: bool | None = None  # None until the token store has answered
        self.owner_paused = False  # the owner chose a pause in this menu (the worker's snapshot follows)
        self.snapshot = Snapshot()
        self.quitting = False
        self.notices = Notices()
        self.icon_state = "offline"
        self.notifications: list[tuple[str, str]] = []  # what was shown, newest last
        self.tray = QSystemTrayIcon(icon("offline"), self)
        self.tray.setToolTip("homefarm — starting")
        self.menu = QMenu()
        self._lines = {}  # status line -> its whole text
        self._measured = False  # the menu has opened: lines are cut to the pixel
        self.actions = build_menu(self.menu, self, self.cfg.pause_while_gaming)
        self._update_sign_in_actions()
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._activated)
        self.tray.messageClicked.connect(self._message_clicked)
        self._activity = None  # the activity window's process, while it is open
        self._blenders_asked: set[str] = set()  # series the owner was asked about (once each)
        self._blender_notice = ""  # the series the latest notification asked about
        self._installing = ""  # the series being installed
        self._install_text = [""]  # its progress, written by the install's thread
        self._install_timer = QTimer(self)
        self._install_timer.timeout.connect(self._show_install_progress)
        self._stats_timer = QTimer(self)
        self._stats_timer.timeout.connect(self.refresh_stats)
        self._tray_timer = QTimer(self)
        self._tray_timer.timeout.connect(self._show_when_tray_is_there)

    # -- the menu -----------------------------------------------------------------------------

    # -- start --------------------------------------------------------------------------------

    def start(self) -> None:
        self._show_when_tray_is_there()
        self.background.run(self.services.autostart.enabled, self._autostart_known)
        self.refresh_stats()
        self._stats_timer.start(int(C.STATS_REFRESH * 1000))
        self.start_worker()

    def _show_when_tray_is_there(self) -> None:
        """Panels that start after us: keep looking for the tray instead of giving up."""
        if QSystemTrayIcon.isSystemTrayAvailable() or not self.require_tray:
            self._tray_timer.stop()
            self.tray.show()
        elif not self._tray_timer.isActive():
            log.info("no system tray yet; waiting for the panel")
            self._tray_timer.start(int(C.TRAY_RETRY * 1000))

    def _line(self, action, text: str) -> None:
        """A status line, cut to the menu's width with the whole text in its tooltip: a long error must not
        make the menu as wide as the screen."""
        self._lines[action] = text
        self._show_line(action, text)
        if self.menu.isVisible():
            self._keep_menu_on_screen()  # a longer line came while the menu is open: it grew

    def fit_lines(self) -> None:
        """As the menu opens: from now on lines are cut to the pixel."""
        self._measured = True
        for action, text in self._lines.items():
            self._show_line(action, text)

    def _show_line(self, action, text: str) -> None:
        # By characters until the menu first opens: measuring text loads the fonts, which a tray whose menu
        # nobody opened does not need (3 MiB).
        if self._measured:
            shown = self.menu.fontMetrics().elidedText(text, Qt.ElideRight, STATUS_WIDTH)
        else:
            shown = text if len(text) <= STATUS_CHARS else text[:STATUS_CHARS - 1].rstrip() + "…"
        action.setText(shown.replace("&", "&&"))
        action.setToolTip(text if shown != text else "")

    def _keep_menu_on_screen(self) -> None:
        """Moves an open menu that grew past the screen's edge back within it."""
        self.menu.adjustSize()
        screen = self.menu.screen().availableGeometry()
        geometry = self.menu.geometry()
        x = max(screen.x(), min(geometry.x(), screen.x() + screen.width() - geometry.width()))
        y = max(screen.y(), min(geometry.y(), screen.y() + screen.height() - geometry.height()))
        if (x, y) != (geometry.x(), geometry.y()):
            self.menu.move(x, y)

    def _show_config_problem(self) -> None:
        self._line(self.actions.job, self.config_problem)
        self._set_icon("error")
        self.tray.setToolTip("homefarm — the settings need fixing")
        self.actions.config_file.setVisible(True)
        self.notify("homefarm's settings need fixing", self.config_problem)

    def recheck_config(self) -> None:
        """While the config is broken: read it again (each time the menu opens); once it is right, start."""
        if not self.config_problem:
            return
        paths = self.paths

        def read():
            return config_mod.load(paths)

        def done(result):
            if isinstance(result, config_mod.ConfigError):
                problem = status.config_problem(result)
                if problem != self.config_problem:
                    self.config_problem = problem
                    self._line(self.actions.job, problem)
                return
            if isinstance(result, Exception) or not self.config_problem:
                return
            log.info("config fixed; starting")
            self.config_problem = ""
            self.actions.config_file.setVisible(False)
            self._line(self.actions.job, "Starting")
            self.apply_config(result)
        self.background.run(read, done)

    def start_worker(self) -> None:
        if self.config_problem:
            self._show_config_problem()
            return
        cfg = self.cfg

        def begin():
            token = self.services.tokens.get(cfg.server_url)
            if not token:
                return None
            return self.services.start_runtime(cfg, token, *self.bridge.callbacks())

        self.background.run(begin, self._worker_started)

    def _worker_started(self, result) -> None:
        if isinstance(result, Exception):
            self.signed_in = True
            self._line(self.actions.job, f"Cannot start: {result}")
            self._set_icon("error")
            self.notify("homefarm cannot start", str(result))
        elif result is None:
            self.signed_in = False
            self._line(self.actions.job, "Sign in to start rendering")
            self._set_icon("error")
            self.tray.setToolTip(status.tooltip(self.snapshot, signed_in=False))
            self.notify("Sign in needed", "Choose “Sign in…” in the homefarm menu to connect to your server.")
        else:
            self.signed_in = True
            self.runtime = result
            if self.quitting:
                self.quit(confirm=False)
        self._update_sign_in_actions()

    def _update_sign_in_actions(self) -> None:
        self.actions.sign_in.setVisible(self.signed_in is False)
        self.actions.sign_out.setVisible(self.signed_in is True)
        self._update_pause_controls()

    def _update_pause_controls(self) -> None:
        """Pause and Resume act on a running worker: with none (signed out, cannot start) they are greyed."""
        running = self.runtime is not None
        self.actions.pause_menu.setEnabled(running)
        self.actions.resume.setEnabled(running and (self.snapshot.pause is not None or self.owner_paused))

    # -- showing the worker -------------------------------------------------------------------

    @Slot(object)
    def on_snapshot(self, snapshot: Snapshot) -> None:
        if self.closed:
            return
        previous, self.snapshot = self.snapshot, snapshot
        kind = status.icon_state(snapshot, self.signed_in)
        job = snapshot.job
        self._set_icon(kind, job.percent if kind == "rendering" and job else None)
        self.tray.setToolTip(status.tooltip(snapshot, self.signed_in))
        self._log_snapshot(snapshot)
        self._line(self.actions.job, status.job_line(snapshot))
        self._line(self.actions.gpu, status.gpu_line(snapshot))
        self._update_pause_controls()
        program = snapshot.pause.program if snapshot.pause and snapshot.pause.kind in ("game", "gpu") else ""
        self.actions.not_a_game.setText(f"Never pause for {program}")
        self.actions.not_a_game.setVisible(bool(program))
        if snapshot.update.version:
            self._line(self.actions.update, f"Update needed: homefarm {snapshot.update.version}"
                       if snapshot.update.required else f"A new version is available: homefarm {snapshot.update.version}")
            self.actions.update.setVisible(True)
        for title, message in self.notices.changes(previous, snapshot, gaming_notices=self.cfg.notify_gaming,
                                                   server=self.cfg.server_url):
            self.notify(title, message)
        self._ask_for_blenders(snapshot)

    # -- a Blender a job needs (blender.auto_install = "ask") ----------------------------------------

    def _ask_for_blenders(self, snapshot: Snapshot) -> None:
        """Once per series a job needs: a notification; while it is needed, a menu entry that installs it."""
        for series in snapshot.blenders_wanted:
            if series not in self._blenders_asked:
                self._blenders_asked.add(series)
                self.notify(f"A job needs Blender {series}",
                            f"A job needs Blender {series}, which this PC lacks (about 1 GB to download). Click "
                            f"here, or choose \u201cInstall Blender {series}\u201d in homefarm's menu, to install "
                            "it; the job waits on the server meanwhile.")
                self._blender_notice = series
        if not self._installing:
            wanted = snapshot.blenders_wanted
            self.actions.install_blender.setVisible(bool(wanted))
            if wanted:
                self.actions.install_blender.setEnabled(True)
                self._line(self.actions.install_blender, f"Install Blender {wanted[0]} (a job needs it)")

    @Slot()
    def _message_clicked(self) -> None:
        if self._blender_notice and self._blender_notice in self.snapshot.blenders_wanted:
            self.install_blender(self._blender_notice)

    def open_activity(self) -> None:
        """The activity window, in a process of its own: the tray's memory stays the tray's; one at a time."""
        import subprocess

        from worker_app.render import procs

        if self._activity is not None and self._activity.poll() is None:
            return  # open already
        try:
            self._activity = subprocess.Popen(self.services.activity_command(), stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              **procs.backend().popen_kwargs())
        except OSError as error:
            log.warning("could not open the activity window: %s", error)
            self.notify("Activity", "The activity window could not be opened; View log says why.")

    def install_blender(self, series: str = "") -> None:
        """Installs the Blender a job needs, off the GUI thread, its progress in the menu; the worker then
        tells the server, which hands the job back."""
        series = series or next(iter(self.snapshot.blenders_wanted), "")
        if not series or self._installing:
            return
        self._installing, self._blender_notice = series, ""
        text = self._install_text = [f"Installing Blender {series}…"]

        def say(line: str) -> None:
            text[0] = line

        def progress(done: int, total: int) -> None:
            if total:
                text[0] = f"Installing Blender {series}: {done * 100 // total} % of {total / 1e6:.0f} MB"
        cfg = self.cfg
        self.actions.install_blender.setEnabled(False)
        self.actions.install_blender.setVisible(True)  # the install's progress, whoever asked for it
        self._show_install_progress()
        self._install_timer.start(500)
        self.background.run(lambda: self.services.install_blender(cfg, series, say, progress),
                            lambda result: self._blender_installed(series, result))

    def _show_install_progress(self) -> None:
        self._line(self.actions.install_blender, self._install_text[0])

    def _blender_installed(self, series: str, result) -> None:
        from worker_app.core.events import BlenderAdded
        from worker_app.render.installs import InstallError

        self._install_timer.stop()
        self._installing = ""
        if isinstance(result, InstallError):
            self.notify(f"Blender {series} was not installed", str(result))
        elif isinstance(result, Exception):
            self.notify(f"Blender {series} was not installed", "Something went wrong; View log says what.")
        else:
            worker = getattr(self.runtime, "worker", None)
            if worker is not None:
                worker.post(BlenderAdded(result))
            self.notify(f"Blender {result.version} installed", "The jobs that need it render on this PC now.")
            self.snapshot = replace(self.snapshot, blenders_wanted=tuple(
                s for s in self.snapshot.blenders_wanted if s != series))
        self._ask_for_blenders(self.snapshot)

    def _set_icon(self, kind: str, percent: float | None = None) -> None:
        self.icon_state = kind
        self.tray.setIcon(icon(kind, percent))

    def notify(self, title: str, message: str) -> None:
        self.notifications.append((title, message))
        if self.tray.isVisible():
            self.tray.showMessage(title, message, icon(self.icon_state), 8000)

    @Slot(object)
    def on_job_ended(self, report) -> None:
        if self.closed:
            return
        self._log_job_end(report)
        self._keep_thumbnail(report)
        self.refresh_stats()
        if self.cfg.notify_jobs:
            notice = status.job_notice(report)
            if notice:
                self.notify(*notice)

    def _keep_thumbnail(self, report) -> None:
        """A small copy of the job's first output for the activity window, made on a background thread."""
        from worker_app.runtime import ledger
        from worker_app.tray import thumbnails

        if not report.outputs:
            return
        paths, cfg, outputs = self.paths, self.cfg, list(report.outputs)
        self.background.run(lambda: thumbnails.keep(ledger(paths), paths.data_dir, cfg.server_url, report.job_id,
                                                    outputs, cfg.thumbnails_mb))

    def refresh_stats(self) -> None:
        from worker_app.runtime import ledger

        paths, cfg = self.paths, self.cfg

        def read():
            return ledger(paths).summary()["today"]

        def show(today):
            if not isinstance(today, Exception):
                self._line(self.actions.today, status.today_line(today.jobs, today.energy_wh, cfg.price_per_kwh,
                                                                cfg.currency))
        self.background.run(read, show)

    # -- commands -----------------------------------------------------------------------------

    def pause(self, how: str) -> None:
        from worker_app.guard import parse_duration
        from worker_app.runtime import manual_pause

        when = parse_duration(how, dt.datetime.now())
        pause, runtime = manual_pause(self.paths), self.runtime

        def apply():
            pause.pause(**when)
            if runtime is not None:
                runtime.guard.check_now()  # now, not at the next check: claiming stops at once
        self.owner_paused = True
        self._update_pause_controls()
        self.background.run(apply, self._pause_saved)

    def resume(self) -> None:
        from worker_app.runtime import manual_pause

        pause, runtime = manual_pause(self.paths), self.runtime

        def apply():
            pause.resume()
            if runtime is not None:
                runtime.guard.check_now(owner_resumed=True)
        self.owner_paused = False
        self.background.run(apply, self._pause_saved)

    def _pause_saved(self, result) -> None:
        if isinstance(result, OSError):
            self.notify("Pause not changed", "homefarm could not save the pause: another program holds its "
                                             "file. Try again in a moment.")

    def never_pause_for_program(self) -> None:
        """The program that paused homefarm is no game (a launcher, a tool): never pause for it again."""
        pause = self.snapshot.pause
        if pause is None or not pause.program:
            return
        listed = tuple(dict.fromkeys((*self.cfg.not_games, pause.program)))
        self.save_settings({"guard.not_games": list(listed)})

    def set_pause_while_gaming(self, on: bool) -> None:
        self.save_settings({"guard.pause_while_gaming": on})

    def _autostart_known(self, enabled) -> None:
        if isinstance(enabled, bool):
            self.actions.autostart.blockSignals(True)
            self.actions.autostart.setChecked(enabled)
            self.actions.autostart.blockSignals(False)

    def set_autostart(self, on: bool) -> None:
        entry = self.services.autostart
        self.background.run(lambda: (entry.enable() if on else entry.disable(), entry.enabled())[1],
                            self._autostart_known)

    def save_settings(self, values: dict, on_saved=None) -> None:
        paths = self.paths

        def write():
            return config_mod.set_values(paths, values)

        def applied(cfg):
            if isinstance(cfg, Exception):
                self.notify("Settings not saved", str(cfg))
                return
            self.apply_config(cfg)
            if on_saved:
                on_saved(cfg)
        self.background.run(write, applied)

    def apply_config(self, cfg: config_mod.Config) -> None:
        """Takes new settings: live where it can, by restarting the worker where it must (another server)."""
        self.cfg = cfg
        self.actions.gaming.blockSignals(True)
        self.actions.gaming.setChecked(cfg.pause_while_gaming)
        self.actions.gaming.blockSignals(False)
        runtime = self.runtime
        if runtime is None:
            self.start_worker()
            return

        def apply():
            from worker_app.render.discovery import find_all
            if runtime.reconfigure(cfg, find_all(cfg.blender_path, self.paths.data_dir)):
                return "applied"
            runtime.stop()
            return "restart"

        def done(result):
            if result == "restart":
                self.runtime = None
                self.start_worker()
        self.background.run(apply, done)

    def open_outputs(self) -> None:
        folder = self.paths.jobs_dir

        def make():
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        self.background.run(make, self._open_path)

    def view_log(self) -> None:
        log_file, log_dir = self.paths.log_dir / "tray.log", self.paths.log_dir
        self.background.run(lambda: log_file if log_file.exists() else log_dir,
                            lambda path: self._open_path(path, show_log=True))

    def open_config_file(self) -> None:
        self._open_path(self.paths.config_file, text_file=True)

    def _open_path(self, path, show_log: bool = False, text_file: bool = False) -> None:
        if isinstance(path, Exception):
            self.notify("homefarm could not open it", "The folder could not be made; the log has the details.")
            log.warning("could not open a folder: %s", path)
        elif not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            if text_file and self.services.text_opener.open(str(path)):
                return  # no program is set for .toml files: Notepad, or the file shown in its folder
            if show_log:  # no program opens text files here: show the log in a window of our own
                from worker_app.tray.logview import LogWindow
                self.log_window = LogWindow(self.paths.log_dir / "tray.log", self.background)
                self.log_window.show()
                self.log_window.raise_()
                return
            self.notify("Nothing here opens it", "No program on this PC is set to open folders or text files; "
                        "`homefarm doctor` shows where homefarm keeps them.")

    def open_settings(self) -> None:
        from worker_app.tray.settings import SettingsDialog

        self.settings_dialog = SettingsDialog(self.cfg, self.background, save=self.save_settings,
                                              data_dir=self.paths.data_dir, install_blender=self.install_blender,
                                              blenders_changed=lambda: self.apply_config(self.cfg))
        self.settings_dialog.show()
        self.settings_dialog.raise_()

    def open_sign_in(self) -> None:
        from worker_app.tray.signin import SignInDialog

        self.sign_in_dialog = SignInDialog(self.cfg, self.services.tokens, self.background,
                                           on_signed_in=self._signed_in)
        self.sign_in_dialog.show()
        self.sign_in_dialog.raise_()

    def _signed_in(self, url: str) -> None:
        self.save_settings({"server.url": url})

    def sign_out(self) -> None:
        tokens, url, runtime = self.services.tokens, self.cfg.server_url, self.runtime
        self.runtime = None

        def work():
            if runtime is not None:
                runtime.stop()
            tokens.delete(url)

        def done(result):
            self.signed_in = False
            self._update_sign_in_actions()
            self._worker_started(None)
        self.background.run(work, done)

    def about(self) -> None:
        QMessageBox.about(None, "About homefarm",
                          f"<b>homefarm {__version__}</b><p>Renders your web app's Blender jobs on this PC, "
                          "and steps aside while you play.</p>"
                          f"<p>Server: {self.cfg.server_url}<br>Config: {self.paths.config_file}</p>")

    def _activated(self, reason) -> None:
        if reason == QSystemTrayIcon.Trigger:
            self.menu.popup(self.tray.geometry().center())

    def show_yourself(self) -> None:
        """Another launch asked this instance to show itself."""
        self.notify("homefarm is running", status.job_line(self.snapshot))

    def quit(self, confirm: bool = True) -> None:
        """Quits; during a render it asks first, then stops Blender and gives the job back to the server."""
        if confirm and self.snapshot.busy:
            answer = QMessageBox.question(
                None, "Quit homefarm?",
                f"homefarm is working on job {self.snapshot.job_id}. Quitting stops Blender and gives the "
                "job back to the server, which hands it to a worker again later.",
                QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if answer != QMessageBox.Yes:
                return
        self.quitting = True
        self.actions.quit.setEnabled(False)
        self._line(self.actions.job, "Stopping…")
        runtime, self.runtime = self.runtime, None

        def stop():
            if runtime is not None:
                runtime.stop()

        def done(result):
            self.tray.hide()
            self.app_quit()
        self.background.run(stop, done)

    def app_quit(self) -> None:
        QApplication.instance().quit()

    def on_about_to_quit(self) -> None:
        """The application is ending without our Quit: the session ends (sign-out, shutdown, restart), or an
        installer closes homefarm to upgrade it. On Windows the process is killed right after this returns
        (qtbase qwindowscontext.cpp answers WM_ENDSESSION by quitting), so the worker stops here, bounded in
        time: Blender ends and the job goes back to the server at once instead of waiting out its lease. The
        one place the GUI thread waits on work: nothing is left to draw."""
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            started = time.monotonic()
            runtime.stop(timeout=C.SESSION_END_STOP_S)
            log.info("the session ends: the worker stopped in %.1f s", time.monotonic() - started)

    def close(self) -> None:
        """Ends the tray's work: nothing pending is applied after this. Takes the icon down before its menu
        can go: the icon does not own the menu it shows, and Python may free the two in any order."""
        self.closed = True
        self.background.close()
        if self._activity is not None and self._activity.poll() is None:
            self._activity.terminate()  # the activity window goes with the tray that opened it
        for name in ("settings_dialog", "sign_in_dialog", "log_window"):  # no dialog outlives the tray it belongs to
            dialog = getattr(self, name, None)
            if dialog is not None:
                dialog.close()
                dialog.deleteLater()
                setattr(self, name, None)
        self.bridge.snapshot.disconnect(self.on_snapshot)
        self.bridge.job_ended.disconnect(self.on_job_ended)
        self._stats_timer.stop()
        self._tray_timer.stop()
        self.tray.hide()
        self.tray.setContextMenu(None)
        self.tray.deleteLater()
        self.menu.deleteLater()
