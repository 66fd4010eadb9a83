"""The tray offscreen with pytest-qt: icons, tooltip, every menu action, settings, single instance."""

import subprocess
import sys
import time

import logging

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QMessageBox

from support.keyring_file_backend import MemoryKeyring
from worker_app import config as config_mod
from worker_app.system.credentials import TokenStore
from worker_app.guard import ManualPause
from worker_app.tray import status
from worker_app.tray.app import STATUS_CHARS, STATUS_WIDTH, Services, TrayApp
from worker_app.tray.icons import icon
from worker_app.tray.settings import SettingsDialog
from worker_app.tray.single import SingleInstance
from worker_app.core import JobProgress, LastJob, Link, LinkProblem, Outcome, Pause, Snapshot, State, Update

RENDERING = Snapshot(state=State.RENDERING, message="job 42: rendering",
                     job=JobProgress("42", "rendering", frame=3, frames_done=2, frame_count=10, percent=37.0,
                                     eta_s=65.0),
                     gpu={"name": "RTX 4070", "load": 97, "temp_c": 71, "power_w": 182.4,
                          "vram_used": 3 * 1024**3, "vram_total": 12 * 1024**3})


def test_core_modules_do_not_import_qt():
    code = ("import sys; import worker_app.cli, worker_app.core, worker_app.runtime, worker_app.server, "
            "worker_app.guard, worker_app.render.blender, worker_app.system.gpu, worker_app.tray.status, "
            "worker_app.tray.notices; print(any(m.startswith('PySide6') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


GAME_PAUSE = Pause("game", "Paused: eldenring.exe is running")


@pytest.mark.parametrize("snapshot, signed_in, expected", [
    (Snapshot(state=State.WAITING), True, "waiting"),
    (RENDERING, True, "rendering"),
    (Snapshot(state=State.DOWNLOADING, job=JobProgress("1")), True, "rendering"),
    (Snapshot(state=State.UPLOADING, job=JobProgress("1")), True, "rendering"),
    (Snapshot(state=State.PAUSED, pause=GAME_PAUSE), True, "paused"),
    (Snapshot(state=State.BACKING_OFF, link=Link(LinkProblem.UNREACHABLE, 1.0)), True, "offline"),
    (Snapshot(state=State.BACKING_OFF, link=Link(LinkProblem.UNAUTHORIZED, 1.0)), True, "error"),
    (Snapshot(state=State.STOPPED), True, "offline"),
    (Snapshot(state=State.WAITING), False, "error"),
])
def test_state_to_icon(snapshot, signed_in, expected):
    assert status.icon_state(snapshot, signed_in) == expected


def test_icons_are_distinct_and_show_progress(qapp):
    images = {state: icon(state).pixmap(32, 32).toImage() for state in status.ICON_STATES}
    for a in status.ICON_STATES:
        for b in status.ICON_STATES:
            if a < b:
                assert images[a] != images[b], (a, b)
    assert icon("rendering", 10).pixmap(64, 64).toImage() != icon("rendering", 70).pixmap(64, 64).toImage()
    assert all(not icon(state).isNull() for state in status.ICON_STATES)


def test_tooltip_and_status_lines():
    assert status.tooltip(RENDERING) == "homefarm — Rendering job 42 — frame 3/10, 37 %, about 1 min left"
    assert status.gpu_line(RENDERING) == "RTX 4070: 97 % load, 71 °C, 182 W, 3.0/12 GB"
    assert status.today_line(3, 1500.0, 0.30, "EUR") == "Today: 3 jobs, 1.50 kWh, 0.45 EUR"
    assert status.job_line(Snapshot(state=State.PAUSED, pause=Pause("schedule", "Paused until 01:00 (schedule)"))) \
        == "Paused until 01:00 (schedule)"
    down = Snapshot(state=State.BACKING_OFF, link=Link(LinkProblem.UNREACHABLE, 1000.0, retry_at=1030.0))
    assert status.job_line(down, now=1010.0) == "Server unreachable; retrying in 20 s; rendered results are kept"


class FakeGuard:
    """The guard's face towards the tray: asked to decide now, after the owner paused or resumed."""

    def __init__(self):
        self.checks: list[bool] = []  # owner_resumed of each check_now

    def check_now(self, owner_resumed: bool = False) -> None:
        self.checks.append(owner_resumed)


class FakeRuntime:
    def __init__(self):
        self.guard = FakeGuard()
        self.stopped = False
        self.reconfigured = []

    def stop(self):
        self.stopped = True

    def reconfigure(self, cfg, blenders=None):
        self.reconfigured.append(cfg)
        return True


class FakeAutostart:
    def __init__(self):
        self.on = False

    def enabled(self):
        return self.on

    def enable(self):
        self.on = True

    def disable(self):
        self.on = False


def signed_in_tray(monkeypatch) -> TrayApp:
    """A tray signed in to a server, its worker a FakeRuntime (``fake_runtime``), what it opened in ``opened``."""
    tokens = TokenStore(MemoryKeyring())
    tokens.set("http://127.0.0.1:8750", "hfw_test")
    runtime = FakeRuntime()
    services = Services(config_mod.Paths.default(), tokens=tokens, autostart=FakeAutostart(),
                        start_runtime=lambda cfg, token, on_snapshot, on_job_end: runtime)
    app = TrayApp(services, require_tray=False)
    app.fake_runtime = runtime
    app.opened = []
    monkeypatch.setattr("worker_app.tray.app.QDesktopServices.openUrl", lambda url: app.opened.append(url) or True)
    return app


@pytest.fixture
def tray(qtbot, tmp_path, monkeypatch):
    app = signed_in_tray(monkeypatch)
    runtime = app.fake_runtime
    app.start()
    qtbot.waitUntil(lambda: app.runtime is runtime)
    yield app
    app.close()


def background_done(qtbot, app):
    """Every background task has finished and its callback has run (callbacks may start more tasks)."""
    qtbot.waitUntil(lambda: app.background.pending == 0, timeout=10000)


def test_menu_shows_status_lines(tray, qtbot):
    tray.on_snapshot(RENDERING)
    assert tray.actions.job.text() == "Rendering job 42 — frame 3/10, 37 %, about 1 min left"
    assert tray.actions.gpu.text().startswith("RTX 4070: 97 % load")
    # Today's figures are read from the ledger on a background thread.
    qtbot.waitUntil(lambda: tray.actions.today.text() == "Today: 0 jobs, 0.00 kWh, 0.00 EUR", timeout=10000)
    assert tray.icon_state == "rendering"
    labels = [a.text() for a in tray.menu.actions() if a.text()]
    for wanted in ("Pause", "Resume", "Pause while gaming", "Start at login", "Open outputs folder", "View log",
                   "Settings…", "Sign out", "About homefarm", "Quit"):
        assert wanted in labels


@pytest.mark.parametrize("key", ["30m", "1h", "tomorrow", "indefinitely"])
def test_pause_actions(tray, qtbot, key):
    tray.actions.pause_for[key].trigger()
    background_done(qtbot, tray)
    cause = ManualPause(tray.paths.data_dir / "pause.json").check(__import__("datetime").datetime.now())
    assert cause is not None and cause.kind == "manual"
    assert tray.fake_runtime.guard.checks == [False]
    tray.actions.resume.trigger()
    background_done(qtbot, tray)
    assert not (tray.paths.data_dir / "pause.json").exists()
    assert tray.fake_runtime.guard.checks == [False, True]


def test_pause_while_gaming_toggle_saves_the_config(tray, qtbot):
    assert tray.actions.gaming.isChecked()
    tray.actions.gaming.trigger()
    background_done(qtbot, tray)
    assert config_mod.load(tray.paths).pause_while_gaming is False
    assert tray.fake_runtime.reconfigured[-1].pause_while_gaming is False


def test_start_at_login_toggle(tray, qtbot):
    tray.actions.autostart.trigger()
    background_done(qtbot, tray)
    assert tray.services.autostart.on is True and tray.actions.autostart.isChecked()
    tray.actions.autostart.trigger()
    background_done(qtbot, tray)
    assert tray.services.autostart.on is False


def test_folders_settings_and_about(tray, qtbot, monkeypatch):
    tray.actions.outputs.trigger()
    background_done(qtbot, tray)
    tray.actions.log.trigger()
    background_done(qtbot, tray)
    qtbot.waitUntil(lambda: len(tray.opened) == 2)
    assert [u.toLocalFile() for u in tray.opened] == [str(tray.paths.jobs_dir), str(tray.paths.log_dir)]
    tray.actions.settings.trigger()
    assert tray.settings_dialog.isVisible()
    tray.settings_dialog.reject()
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda *args: shown.append(args[2]))
    tray.actions.about.trigger()
    assert "homefarm" in shown[0]


def test_sign_out_and_sign_in(tray, qtbot):
    tray.actions.sign_out.trigger()
    qtbot.waitUntil(lambda: tray.actions.sign_in.isVisible())
    assert tray.fake_runtime.stopped and tray.services.tokens.get("http://127.0.0.1:8750") is None
    assert tray.icon_state == "error" and ("Sign in needed", ) == tray.notifications[-1][:1]
    tray.actions.sign_in.trigger()
    assert tray.sign_in_dialog.isVisible()
    tray.sign_in_dialog.url.setText("ftp://nowhere")
    tray.sign_in_dialog.sign_in()
    assert "server.url" in tray.sign_in_dialog.message.text()


def test_quit_during_a_render_asks_first(tray, qtbot, monkeypatch):
    tray.on_snapshot(RENDERING)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)
    tray.actions.quit.trigger()
    assert not tray.quitting and not tray.fake_runtime.stopped
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    quits = []
    monkeypatch.setattr(tray, "app_quit", lambda: quits.append(1))
    tray.actions.quit.trigger()
    qtbot.waitUntil(lambda: bool(quits))
    assert tray.fake_runtime.stopped


def test_notifications(tray):
    tray.on_snapshot(Snapshot(state=State.PAUSED, pause=GAME_PAUSE))
    assert tray.notifications[-1] == ("Paused for your game", "eldenring.exe is running")
    tray.on_snapshot(Snapshot(state=State.PAUSED, pause=Pause("hold-off", "Resuming in 60 s")))
    assert tray.notifications[-1][0] == "Paused for your game", "the hold-off is still the game's pause"
    tray.on_snapshot(Snapshot(state=State.WAITING))
    assert tray.notifications[-1][0] == "Rendering again"
    failed = LastJob("7", Outcome.FAILED, "render.camera: the scene has no active camera")
    tray.on_snapshot(Snapshot(state=State.WAITING, jobs_failed=1, last_job=failed))
    assert tray.notifications[-1] == ("A job failed", "Job 7 failed: render.camera: the scene has no active camera")


def test_server_unreachable_is_told_once_after_a_while(tray):
    """The outage's start stays put through every retry and through waiting/rendering states in between."""
    clock = [1000.0]
    tray.notices.clock = lambda: clock[0]
    link = Link(LinkProblem.UNREACHABLE, since=1000.0)
    tray.on_snapshot(Snapshot(state=State.BACKING_OFF, link=link))
    tray.on_snapshot(Snapshot(state=State.WAITING, link=link))
    clock[0] += 60
    tray.on_snapshot(Snapshot(state=State.RENDERING, job=JobProgress("3", "rendering"), link=link))
    assert not [n for n in tray.notifications if n[0] == "Server unreachable"]
    clock[0] += 200
    for state in (State.BACKING_OFF, State.WAITING, State.BACKING_OFF):
        tray.on_snapshot(Snapshot(state=state, link=link))
    assert [n for n in tray.notifications if n[0] == "Server unreachable"] == [tray.notifications[-1]]
    tray.on_snapshot(Snapshot(state=State.WAITING))  # back online: a later outage is told again
    clock[0] += 1000
    tray.on_snapshot(Snapshot(state=State.BACKING_OFF, link=Link(LinkProblem.UNREACHABLE, since=clock[0] - 400)))
    assert len([n for n in tray.notifications if n[0] == "Server unreachable"]) == 2


def test_a_late_background_result_never_touches_a_closed_tray(qtbot, tmp_path):
    """Closing the tray while a background task runs: its result is dropped, not applied to freed widgets."""
    import threading
    paths = config_mod.Paths.default()
    services = Services(paths, tokens=TokenStore(MemoryKeyring()), autostart=FakeAutostart(),
                        start_runtime=lambda *args: None)
    app = TrayApp(services, require_tray=False)
    release = threading.Event()
    applied = []
    thread = app.background.run(lambda: release.wait(10), lambda result: applied.append(app.actions.today.text()))
    app.background.close = lambda timeout=5.0, close=app.background.close: close(0.0)  # do not wait for it
    app.close()
    release.set()
    thread.join(10)
    QApplication.processEvents()  # a delivery the thread queued before it ended runs here, or never
    assert not thread.is_alive() and applied == []


class Now:
    """Runs background work at once, on the calling thread (a dialog's tests need no threads)."""

    def run(self, fn, on_done=None):
        result = fn()
        if on_done:
            on_done(result)


def test_settings_refuse_bad_values_beside_the_field(qtbot, tmp_path):
    paths = config_mod.Paths.default()
    cfg = config_mod.load(paths)
    saved = []
    dialog = SettingsDialog(cfg, Now(), save=lambda values, on_saved=None: saved.append(values))
    qtbot.addWidget(dialog)
    dialog.inputs["server.url"].setText("http://render.example.com")
    dialog.inputs["blender.gpu_indices"].setText("0, x")
    dialog.inputs["guard.never"].setPlainText("18:00-23:00\nevery evening")
    dialog.try_save()
    assert saved == []
    assert "plain http" in dialog.errors["server.url"].text() and not dialog.errors["server.url"].isHidden()
    assert "GPU numbers" in dialog.errors["blender.gpu_indices"].text()
    assert "'every evening' is not a window" in dialog.errors["guard.never"].text()
    assert dialog.errors["worker.name"].isHidden()
    dialog.inputs["server.url"].setText("https://render.example.com")
    dialog.inputs["blender.gpu_indices"].setText("0, 1")
    dialog.inputs["guard.never"].setPlainText("18:00-23:00")
    dialog.try_save()
    assert saved[0]["server.url"] == "https://render.example.com"
    assert saved[0]["blender.gpu_indices"] == [0, 1] and saved[0]["guard.never"] == ["18:00-23:00"]
    config_mod.set_values(paths, saved[0])
    assert config_mod.load(paths).never == ("18:00-23:00",)


def test_single_instance(qtbot, tmp_path):
    name = f"homefarm-test-{time.time_ns()}"
    first = SingleInstance(str(tmp_path / "tray.lock"), name)
    second = SingleInstance(str(tmp_path / "tray.lock"), name)
    assert first.acquire() is True
    assert second.acquire() is False
    with qtbot.waitSignal(first.show_requested, timeout=5000):
        assert second.notify_running() is True
    first.release()
    assert second.acquire() is True
    second.release()


def test_update_notice(tray):
    tray.on_snapshot(Snapshot(state=State.WAITING, update=Update("0.9.0")))
    assert tray.actions.update.isVisible()
    assert tray.actions.update.text() == "A new version is available: homefarm 0.9.0"
    assert tray.notifications[-1][0] == "A new version is available"
    tray.on_snapshot(Snapshot(state=State.PAUSED, update=Update("1.0.0", required=True),
                              pause=Pause("update", "Paused: this server needs homefarm 1.0.0 or newer")))
    assert tray.actions.update.text() == "Update needed: homefarm 1.0.0"


def test_never_pause_for_a_program_that_is_no_game(tray, qtbot):
    tray.on_snapshot(Snapshot(state=State.PAUSED, pause=Pause("game", "Paused: MyLauncher.exe is running",
                                                              program="MyLauncher.exe")))
    assert tray.actions.not_a_game.isVisible() and tray.actions.not_a_game.text() == "Never pause for MyLauncher.exe"
    tray.actions.not_a_game.trigger()
    qtbot.waitUntil(lambda: bool(tray.fake_runtime.reconfigured), timeout=10000)
    assert config_mod.load(tray.paths).not_games == ("MyLauncher.exe",)
    assert tray.fake_runtime.reconfigured[-1].not_games == ("MyLauncher.exe",)
    tray.on_snapshot(Snapshot(state=State.WAITING))
    assert not tray.actions.not_a_game.isVisible()


def test_closing_the_tray_closes_its_dialogs(qtbot):
    """A dialog left open by a closed tray was freed later by Python's GC, in the middle of Qt's event loop:
    a crash in whatever ran next."""
    paths = config_mod.Paths.default()
    services = Services(paths, tokens=TokenStore(MemoryKeyring()), autostart=FakeAutostart(),
                        start_runtime=lambda *args: None)
    app = TrayApp(services, require_tray=False)
    app.open_settings()
    app.open_sign_in()
    settings, sign_in = app.settings_dialog, app.sign_in_dialog
    assert settings.isVisible() and sign_in.isVisible()
    app.close()
    assert app.settings_dialog is None and app.sign_in_dialog is None
    assert not settings.isVisible() and not sign_in.isVisible()


def test_pause_controls_follow_the_worker_and_sign_out_only_when_signed_in(qtbot, tmp_path, monkeypatch):
    paths = config_mod.Paths.default()
    tokens = TokenStore(MemoryKeyring())
    services = Services(paths, tokens=tokens, autostart=FakeAutostart(),
                        start_runtime=lambda cfg, token, on_snapshot, on_job_end: FakeRuntime())
    app = TrayApp(services, require_tray=False)
    try:
        assert not app.actions.sign_out.isVisible() and not app.actions.sign_in.isVisible()  # not known yet
        assert not app.actions.pause_menu.isEnabled() and not app.actions.resume.isEnabled()
        app.start()
        qtbot.waitUntil(lambda: app.actions.sign_in.isVisible(), timeout=10000)
        assert not app.actions.sign_out.isVisible(), "never signed in: nothing to sign out of"
        assert not app.actions.pause_menu.isEnabled() and not app.actions.resume.isEnabled()
    finally:
        app.close()

    tokens.set("http://127.0.0.1:8750", "hfw_test")
    broken = Services(paths, tokens=tokens, autostart=FakeAutostart(),
                      start_runtime=lambda *args: (_ for _ in ()).throw(RuntimeError("Blender was not found")))
    app = TrayApp(broken, require_tray=False)
    try:
        app.start()
        qtbot.waitUntil(lambda: app.actions.job.text().startswith("Cannot start"), timeout=10000)
        assert app.actions.sign_out.isVisible()
        assert not app.actions.pause_menu.isEnabled() and not app.actions.resume.isEnabled(), "no worker to pause"
    finally:
        app.close()


def test_a_folder_nothing_opens_is_told_in_words_and_the_log_shows_in_a_window(tray, qtbot, monkeypatch):
    monkeypatch.setattr("worker_app.tray.app.QDesktopServices.openUrl", lambda url: False)
    tray.actions.outputs.trigger()
    background_done(qtbot, tray)
    qtbot.waitUntil(lambda: bool(tray.notifications) and tray.notifications[-1][0] == "Nothing here opens it")
    assert "homefarm doctor" in tray.notifications[-1][1]
    logging.getLogger("homefarm.tray").info("a line for the log window")
    for handler in logging.getLogger().handlers:
        handler.flush()
    tray.actions.log.trigger()
    background_done(qtbot, tray)
    qtbot.waitUntil(lambda: getattr(tray, "log_window", None) is not None)
    background_done(qtbot, tray)
    assert tray.log_window.isVisible() and tray.log_window.windowTitle() == "homefarm log"
    assert "Reading the log" not in tray.log_window.text.toPlainText()


def test_a_long_status_line_is_cut_to_the_menu_width_with_the_whole_text_in_its_tooltip(tray):
    long = "Cannot start: " + "the server at render.example.com answered something very long " * 6
    tray._line(tray.actions.job, long)
    assert tray.actions.job.text().endswith("…") and len(tray.actions.job.text()) <= STATUS_CHARS
    tray.menu.aboutToShow.emit()  # as the menu opens, each line is cut to the pixel
    shown = tray.actions.job.text()
    assert shown.endswith("…") and len(shown) < len(long)
    assert tray.menu.fontMetrics().horizontalAdvance(shown) <= STATUS_WIDTH
    assert tray.actions.job.toolTip() == long and tray.menu.toolTipsVisible()
    tray._line(tray.actions.job, "Waiting for a job")
    assert tray.actions.job.text() == tray.actions.job.toolTip() == "Waiting for a job"  # (a tooltip left empty shows the text)


def test_a_config_with_a_mistake_starts_the_tray_in_an_error_state_until_it_is_fixed(qtbot, monkeypatch):
    paths = config_mod.Paths.default()
    config_mod.load(paths)  # writes the default file
    good = paths.config_file.read_text()
    assert "\nmax_gpu_temp_c = 85\n" in good
    paths.config_file.write_text(good.replace("\nmax_gpu_temp_c = 85\n", '\nmax_gpu_temp_c = "hot"\n'))
    app = signed_in_tray(monkeypatch)
    runtime, opened = app.fake_runtime, app.opened
    try:
        app.start()
        text = app.actions.job.toolTip()  # the whole line (its text may be cut to the menu width)
        assert text == 'Fix the config file: guard.max_gpu_temp_c = "hot" is not allowed; it must be a whole number ' \
                       'from 0 to 120'
        assert app.icon_state == "error" and app.runtime is None and app.actions.config_file.isVisible()
        assert app.notifications[-1][0] == "homefarm's settings need fixing"
        app.actions.config_file.trigger()
        assert opened[-1].toLocalFile() == str(paths.config_file)
        paths.config_file.write_text(good)  # the owner fixed it; the menu opens again
        app.menu.aboutToShow.emit()
        qtbot.waitUntil(lambda: app.runtime is runtime, timeout=10000)
        assert not app.actions.config_file.isVisible()
    finally:
        app.close()


def test_a_job_s_end_is_logged_and_told_when_the_owner_asked(tray, qtbot, caplog):
    from worker_app.core import Outcome
    from worker_app.core.job import JobReport

    caplog.set_level(logging.INFO, logger="homefarm.tray")
    tray.bridge.job_ended.emit(JobReport("42", Outcome.DONE, stages={"render": 61.0, "upload": 2.0}))
    assert "job 42 done" in caplog.text and not any(t.startswith("Job 42") for t, _ in tray.notifications)
    tray.cfg = config_mod.Config(notify_jobs=True)
    tray.bridge.job_ended.emit(JobReport("43", Outcome.FAILED, reason="render.camera: no camera named 'Cam2'"))
    assert tray.notifications[-1] == ("Job 43 failed", "render.camera: no camera named 'Cam2'")
    tray.bridge.job_ended.emit(JobReport("44", Outcome.DONE, stages={"render": 61.0, "upload": 2.0}))
    assert tray.notifications[-1] == ("Job 44 done", "Rendered and sent in 1 min.")
    background_done(qtbot, tray)


def test_settings_errors_sit_below_their_fields_and_fields_show_their_format(qtbot):
    dialog = SettingsDialog(config_mod.Config(), Now(), save=lambda values, on_saved=None: None)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.inputs["guard.render_only"].placeholderText() == "mon-fri 01:00-08:00\n18:00-23:00"
    blender = dialog.inputs["blender.path"]
    assert blender.width() >= blender.fontMetrics().horizontalAdvance(blender.placeholderText()), "not cut"
    dialog.inputs["guard.render_only"].setPlainText("weekends")
    dialog.inputs["server.url"].setText("render.example.com")
    dialog.try_save()
    for key in ("guard.render_only", "server.url"):
        field, error = dialog.inputs[key], dialog.errors[key]
        assert error.isVisible()
        top_of_error = error.mapTo(dialog.content, error.rect().topLeft()).y()
        bottom_of_field = field.mapTo(dialog.content, field.rect().bottomLeft()).y()
        assert top_of_error > bottom_of_field, (key, top_of_error, bottom_of_field)
        assert error.height() >= error.heightForWidth(error.width()), f"{key}: the error is cut"
    assert "'weekends' is not a window such as 'mon-fri 01:00-08:00'" in dialog.errors["guard.render_only"].text()


def test_an_open_menu_that_grows_stays_on_the_screen(tray, qtbot):
    tray._line(tray.actions.job, "Connecting to the server")
    screen = tray.menu.screen().availableGeometry()
    tray.menu.popup(QPoint(screen.right() - 10, screen.top() + 10))
    qtbot.waitUntil(tray.menu.isVisible)
    narrow = tray.menu.geometry()
    assert narrow.right() <= screen.right()
    tray._line(tray.actions.job, "Server unreachable: " + "127.0.0.1:8757 answers in plain http, not https " * 3)
    grown = tray.menu.geometry()
    assert grown.width() > narrow.width() and grown.right() <= screen.right(), (narrow, grown, screen)
    tray.menu.hide()


def test_open_config_file_falls_back_to_notepad_then_explorer_where_no_program_opens_toml(qtbot, monkeypatch):
    # A fresh Windows has no program for .toml (ShellExecute: error 1155); "Open config file" is the tray's
    # only way to mend a broken config, so it must lead somewhere.
    from worker_app.system.desktop import TextFileOpener
    started = []
    notepad = r"C:\Windows\System32\notepad.exe"
    opener = TextFileOpener("win32", spawn=started.append, environ={"SystemRoot": r"C:\Windows"},
                            exists=lambda path: True)
    tray = signed_in_tray(monkeypatch)
    tray.services.text_opener = opener
    monkeypatch.setattr("worker_app.tray.app.QDesktopServices.openUrl", lambda url: False)
    try:
        tray.open_config_file()
        config = str(tray.paths.config_file)
        assert started == [[notepad, config]] and not tray.notifications
        # No Notepad (removed as an optional feature): Explorer shows the file in its folder.
        opener.exists = lambda path: path != notepad
        tray.open_config_file()
        assert started[-1] == [r"C:\Windows\explorer.exe", f"/select,{config}"]
        # macOS opens it in the default text editor, whatever opens .toml there.
        assert TextFileOpener("darwin").commands("/Users/kim/config.toml")[0] == ["/usr/bin/open", "-t",
                                                                                   "/Users/kim/config.toml"]
    finally:
        tray.close()


def test_a_job_needing_a_blender_asks_once_and_the_owner_installs_it_from_the_menu(tray, qtbot, tmp_path, blender):
    """`blender.auto_install = "ask"`: one notification per series; the menu's entry (or a click on the
    notification) installs it off the GUI thread (here from an archive mirror on loopback, a real archive), its
    progress in the menu; the worker is told, and the entry goes."""
    from dataclasses import replace
    from types import SimpleNamespace

    from support.blender_mirror import Mirror, build_release
    from worker_app.core.events import BlenderAdded

    posted = []
    tray.fake_runtime.worker = SimpleNamespace(post=posted.append)
    wanted = Snapshot(state=State.WAITING, blenders_wanted=("3.4",))
    with Mirror(tmp_path / "release") as mirror:
        build_release(tmp_path / "release", blender.version, blender.path, padding=2_000_000)
        tray.cfg = replace(tray.cfg, blender_sources=("archives",), blender_mirror=mirror.url)
        tray.on_snapshot(wanted)
        tray.on_snapshot(wanted)
        asked = [n for n in tray.notifications if n[0] == "A job needs Blender 3.4"]
        assert len(asked) == 1 and "about 1 GB" in asked[0][1], tray.notifications
        entry = tray.actions.install_blender
        assert entry.isVisible() and entry.isEnabled() and entry.text() == "Install Blender 3.4 (a job needs it)"
        entry.trigger()
        assert not entry.isEnabled() and entry.text().startswith("Installing Blender 3.4")
        tray.install_blender("3.4")  # a second click while it installs starts nothing
        qtbot.waitUntil(lambda: len(posted) == 1, timeout=60000)
    assert isinstance(posted[0], BlenderAdded) and posted[0].install.version == blender.version
    assert tray.notifications[-1] == (f"Blender {blender.version} installed",
                                      "The jobs that need it render on this PC now.")
    assert not tray.actions.install_blender.isVisible()
    assert len([path for path, _ in mirror.requests if path.endswith(".tar.xz")]) == 1


def test_a_blender_that_cannot_be_installed_is_said_in_words(tray, qtbot, tmp_path):
    from dataclasses import replace

    tray.cfg = replace(tray.cfg, blender_sources=("archives",), blender_mirror="http://mirror.example.com/release")
    tray.on_snapshot(Snapshot(state=State.WAITING, blenders_wanted=("4.5",)))
    tray._message_clicked()  # the owner clicked the notification
    qtbot.waitUntil(lambda: tray.notifications[-1][0] == "Blender 4.5 was not installed", timeout=10000)
    assert "plain http to another machine" in tray.notifications[-1][1]
    assert tray.actions.install_blender.isVisible() and tray.actions.install_blender.isEnabled(), "it can be tried again"


def test_settings_install_a_blender_version_and_remove_one_homefarm_installed(tray, qtbot, monkeypatch, tmp_path):
    """The Settings dialog's Blender row: "Install a Blender version…" asks the series and installs it as the
    menu's entry does; "Remove one…" lists only the Blenders homefarm installed and removes the one chosen."""
    import json
    from worker_app.render import installs
    from worker_app.render.environment import MODULE_MARK

    venv = tray.paths.data_dir / installs.BLENDERS / "bpy-4.5"
    installs.python_of(venv).parent.mkdir(parents=True)
    installs.python_of(venv).write_text("")
    (venv / MODULE_MARK).write_text(json.dumps({"version": "4.5.15"}))
    asked = []
    monkeypatch.setattr(tray, "install_blender", asked.append)
    tray.open_settings()
    dialog = tray.settings_dialog
    qtbot.waitUntil(lambda: "Blender 4.5.15, installed by homefarm (module)" in dialog.blender_version.text(),
                    timeout=10000)
    monkeypatch.setattr("worker_app.tray.settings.QInputDialog.getText", lambda *a, **k: ("latest", True))
    dialog.add_blender_button.click()
    assert asked == [] and "not a Blender series such as 4.5" in dialog.blender_version.text()
    monkeypatch.setattr("worker_app.tray.settings.QInputDialog.getText", lambda *a, **k: ("5.0", True))
    dialog.add_blender_button.click()
    assert asked == ["5.0"]
    offered = []
    monkeypatch.setattr("worker_app.tray.settings.QInputDialog.getItem",
                        lambda parent, title, label, items, *a: offered.append(list(items)) or (items[0], True))
    dialog.remove_blender_button.click()
    qtbot.waitUntil(lambda: not venv.exists(), timeout=10000)
    assert offered == [["4.5.15"]], "only what homefarm installed is offered"
    background_done(qtbot, tray)
    assert tray.fake_runtime.reconfigured, "the worker is told its Blenders changed"
