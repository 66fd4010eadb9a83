"""The tray driving the real worker core against a real server, with the real Blender (offscreen Qt)."""

import threading
import time

import pytest
from PySide6.QtWidgets import QMessageBox

from support.harness import FAST_RENDER
from support.keyring_file_backend import MemoryKeyring
from support.running import SLOW_RENDER, blender_processes
from worker_app import config as config_mod
from worker_app.system.credentials import TokenStore
from worker_app.tray.app import Services, TrayApp
from worker_app.core import State

pytestmark = pytest.mark.blender


@pytest.fixture
def live_tray(qtbot, served, monkeypatch):
    paths = config_mod.Paths.default()
    config_mod.set_values(paths, {"server.url": served.url, "blender.device": "CPU"})
    tokens = TokenStore(MemoryKeyring())
    tokens.set(served.url, served.worker_token)

    class NoAutostart:
        def enabled(self):
            return False

    app = TrayApp(Services(paths, tokens=tokens, autostart=NoAutostart()), require_tray=False)
    quits = []
    monkeypatch.setattr(app, "app_quit", lambda: quits.append(1))
    app.quits = quits
    app.start()
    qtbot.waitUntil(lambda: app.runtime is not None, timeout=30000)
    qtbot.waitUntil(lambda: app.snapshot.state == State.WAITING, timeout=30000)
    yield app
    if app.runtime is not None:
        app.runtime.stop()
    app.close()


def test_pausing_from_the_menu_stops_claiming_within_a_second(live_tray, served, qtbot):
    claims = []
    original = served.server.store.claim

    late = threading.Event()  # a claim begun after the click

    def counting(*args, **kwargs):
        started = time.monotonic()
        if clicked is not None and started >= clicked:
            late.set()
        result = original(*args, **kwargs)
        claims.append((started, time.monotonic()))
        return result

    clicked = None
    served.server.store.claim = counting
    time.sleep(0.3)  # the worker is waiting in a long poll begun before the counting started
    clicked = time.monotonic()
    live_tray.actions.pause_for["1h"].trigger()
    qtbot.waitUntil(lambda: live_tray.snapshot.state == State.PAUSED, timeout=3000)
    paused_after = time.monotonic() - clicked
    assert paused_after < 1.0, f"took {paused_after:.2f} s"
    assert live_tray.icon_state == "paused" and live_tray.actions.job.text().startswith("Paused: paused by you")
    job = served.submit(FAST_RENDER)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not late.is_set():
        qtbot.wait(50)  # the GUI keeps running while we watch for a claim
    assert not late.is_set() and all(start < clicked for start, _ in claims), "a claim was started while paused"
    assert served.app.job(job["id"])["state"] == "queued"
    live_tray.actions.resume.trigger()
    qtbot.waitUntil(lambda: served.app.job(job["id"])["state"] == "done", timeout=60000)


def test_quitting_during_a_render_leaves_no_blender_and_requeues_the_job(live_tray, served, qtbot, monkeypatch):
    job = served.submit(SLOW_RENDER)
    jobs_dir = live_tray.paths.jobs_dir
    qtbot.waitUntil(lambda: live_tray.snapshot.state == State.RENDERING and bool(blender_processes(jobs_dir)),
                    timeout=30000)
    assert live_tray.icon_state == "rendering"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    live_tray.actions.quit.trigger()
    qtbot.waitUntil(lambda: bool(live_tray.quits), timeout=30000)
    assert blender_processes(jobs_dir) == []
    view = served.app.job(job["id"])
    assert view["state"] == "queued" and view["attempts"] == 0


def test_the_session_ending_mid_render_gives_the_job_back_before_the_process_can_be_killed(live_tray, served,
                                                                                          qtbot):
    # Sign-out, shutdown or an upgrade end the app through Qt's aboutToQuit, not our Quit; on Windows the
    # process dies right after. The job must be back in the queue by the time the handler returns.
    job = served.submit(SLOW_RENDER)
    jobs_dir = live_tray.paths.jobs_dir
    qtbot.waitUntil(lambda: live_tray.snapshot.state == State.RENDERING and bool(blender_processes(jobs_dir)),
                    timeout=30000)
    started = time.monotonic()
    live_tray.on_about_to_quit()
    took = time.monotonic() - started
    view = served.app.job(job["id"])  # at once: nothing runs after the handler on a real sign-out
    assert view["state"] == "queued" and view["attempts"] == 0, view
    assert blender_processes(jobs_dir) == []
    from worker_app import constants as C
    assert took < C.SESSION_END_STOP_S + 0.5, f"took {took:.1f} s"


def test_the_tray_program_stops_its_worker_when_qt_says_the_app_is_about_to_quit(qtbot):
    # main() connects aboutToQuit; Qt emits it when the main loop ends, however it was ended.
    import inspect
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from worker_app.tray import main as tray_main
    assert "app.aboutToQuit.connect(tray.on_about_to_quit)" in inspect.getsource(tray_main.main)
    stopped = []
    app = QApplication.instance()
    app.aboutToQuit.connect(lambda: stopped.append(1))
    QTimer.singleShot(0, app.quit)
    app.exec()
    assert stopped == [1]


@pytest.fixture
def gpu_figures(monkeypatch):
    """A GPU that gives figures (temperature, power, energy) where this machine has none: the same interface as
    NVML's provider (tests/support/fake_nvml.py); everything else is real."""
    from support.fake_nvml import DrawingProvider
    provider = DrawingProvider()
    monkeypatch.setattr("worker_app.runtime.choose_provider", lambda *args, **kwargs: (provider, ""))
    config_mod.set_values(config_mod.Paths.default(), {"guard.gpu_interval_s": 0.5})  # figures during the job
    return provider


def test_the_activity_window_shows_a_real_job_its_energy_and_a_pause_band(gpu_figures, live_tray, served, qtbot):
    """A real job rendered by the tray's worker (real Blender, real server), a pause from the menu, then the
    activity window on what the worker wrote: the job's thumbnail, today's energy, the temperature and the pause
    band. Screenshots: tests/artifacts/activity-1280x800.png and activity-800x600.png."""
    from PySide6.QtCharts import QAreaSeries

    from support.harness import TESTS
    from worker_app.runtime import ledger
    from worker_app.tray.activity import ActivityWindow

    assert live_tray.actions.activity.text() == "Activity…"
    job = served.submit({**FAST_RENDER, "frames": "1-3"})
    qtbot.waitUntil(lambda: served.app.job(job["id"])["state"] == "done", timeout=120000)
    qtbot.waitUntil(lambda: bool(ledger(live_tray.paths).thumbnails()), timeout=20000)
    live_tray.actions.pause_for["30m"].trigger()
    qtbot.waitUntil(lambda: live_tray.snapshot.state == State.PAUSED, timeout=5000)
    qtbot.wait(1500)
    live_tray.actions.resume.trigger()
    qtbot.waitUntil(lambda: live_tray.snapshot.state != State.PAUSED, timeout=5000)
    live_tray.runtime.stop()  # the minute under way is written as the worker stops
    live_tray.runtime = None
    stats = ledger(live_tray.paths)
    window = ActivityWindow(stats, live_tray.paths.data_dir, 0.30, "EUR")
    qtbot.addWidget(window)
    window.load()
    qtbot.waitUntil(lambda: window.activity is not None, timeout=10000)
    today = window.activity.days[-1]
    assert today.done == 1 and today.energy_wh is not None and today.energy_wh > 0
    assert "Today: 1 job done" in window.summary.text() and "GPU energy" in window.summary.text()
    first = window.jobs_list.item(0)
    assert first.text().startswith(f"Job {job['id']} · done") and not first.icon().isNull()
    assert window.activity.jobs[0].thumbnail, "the job's first output has its thumbnail"
    recent = window.recent_view.chart()
    assert [s.name() for s in recent.series() if isinstance(s, QAreaSeries)] == ["paused: by you"]
    assert any(s.temp_c == 64 for s in window.activity.samples)
    artifacts = TESTS / "artifacts"
    artifacts.mkdir(exist_ok=True)
    window.resize(1280, 800)
    window.show()
    qtbot.wait(100)
    window.grab().save(str(artifacts / "activity-1280x800.png"))
    window.resize(800, 600)
    qtbot.wait(100)
    window.grab().save(str(artifacts / "activity-800x600.png"))
    opened = []
    live_tray.services.activity_command = lambda: opened.append(1) or ["true"]
    live_tray.actions.activity.trigger()
    assert opened == [1] and live_tray._activity is not None
