"""The activity window: its figures from a stats database filled as 30 days of a worker would (gaps, failures,
a card without power readings), the minutes and pauses the worker writes, thumbnails within their bound, and the
window itself after a real job rendered through the tray's worker, with screenshots in tests/artifacts/ for a
person to look at (activity-1280x800.png, activity-800x600.png, activity-no-power.png)."""

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtCharts import QAreaSeries, QLineSeries

from support.fill_activity import fill
from support.harness import FAST_RENDER, TESTS
from support.pngio import write_png
from worker_app.guard.energy import Ledger, MinuteSampler
from worker_app.system.gpu import GpuProcess, GpuSample, GpuSnapshot
from worker_app.tray import thumbnails
from worker_app.tray.activity import ActivityWindow

ARTIFACTS = TESTS / "artifacts"
NOW = time.time()  # the moment every filled database of this module was filled up to


@pytest.fixture(scope="module")
def filled_files(tmp_path_factory):
    """The two databases (a card with power readings, one without), filled once for the module: filling one
    takes the real ledger's calls, a connection and a commit each."""
    folder = tmp_path_factory.mktemp("filled")
    return {power: fill(folder / f"stats-{power}.sqlite3", NOW, power=power).path for power in (True, False)}


@pytest.fixture
def filled(filled_files, tmp_path):
    """A copy of a filled database in the test's own folder, as a Ledger."""
    def copy(power: bool = True) -> Ledger:
        target = tmp_path / f"stats-{power}.sqlite3"
        shutil.copyfile(filled_files[power], target)
        return Ledger(target)
    return copy


def test_thirty_days_are_counted_per_local_day_with_the_gaps_empty(filled):
    now = NOW
    ledger = filled()
    activity = ledger.activity(now, hours=6)
    assert len(activity.days) == 30
    assert dt.date.fromtimestamp(activity.days[-1].start) == dt.date.fromtimestamp(now)
    for back in (9, 10, 11, 20):  # the days the PC was off
        day = activity.days[-1 - back]
        assert (day.done, day.failed, day.render_s, day.energy_wh) == (0, 0, 0.0, None)
    assert sum(d.done + d.failed for d in activity.days) == ledger.totals(activity.days[0].start).jobs + \
        sum(d.failed for d in activity.days)
    assert any(d.failed for d in activity.days)
    assert 359 <= len(activity.samples) <= 360 and {p.kind for p in activity.pauses} == {"game", "schedule"}
    no_power = filled(power=False).activity(now)
    assert all(d.energy_wh is None for d in no_power.days) and all(s.power_w is None for s in no_power.samples)


def test_a_minute_of_gpu_samples_is_one_row_of_their_means_with_our_share():
    written = []

    class Sink:
        def add_sample(self, *row):
            written.append(row)
    sampler = MinuteSampler(Sink())
    base = 1_800_000_000.0  # a minute's start
    for n, (temp, power, load, ours) in enumerate([(60, 200.0, 90, 80), (62, 210.0, 100, 90)]):
        gpu = GpuSample(0, "RTX", load=load, temp_c=temp, power_w=power,
                        processes=(GpuProcess(7, "blender", "compute", load=ours), GpuProcess(9, "game", "graphics",
                                                                                          load=10)))
        sampler.add(GpuSnapshot(base + n * 5, (gpu,)), {7})
    assert written == [], "nothing is written until the minute is over"
    sampler.add(GpuSnapshot(base + 61, (GpuSample(0, "RTX", load=0, temp_c=40, power_w=30.0),)), set())
    assert written == [(base, 61.0, 205.0, 95.0, 85.0)]
    sampler.flush()
    assert written[-1] == (base + 60, 40.0, 30.0, 0.0, 0.0), "not rendering: our share is 0"


def test_pauses_are_intervals_and_one_left_open_is_closed_at_the_next_start(tmp_path):
    ledger = Ledger(tmp_path / "stats.sqlite3")
    ledger.add_sample(1000.0, 50, 100, 90, 80)
    ledger.pause_began(1010.0, "game", "Paused: game.exe is running")
    ledger.pause_began(1020.0, "thermal", "Paused: the GPU is at 90 °C")  # another kind takes over
    ledger.close_open_pauses(5000.0)  # the worker stopped mid-pause; it started again much later
    bands = ledger.activity(now=2000.0, hours=1).pauses
    assert [(b.started, b.ended, b.kind) for b in bands] == [(1010.0, 1020.0, "game"), (1020.0, 1060.0, "thermal")]


def test_thumbnails_stay_within_their_bound_oldest_first_and_go_with_their_history(tmp_path, qapp):
    ledger = Ledger(tmp_path / "stats.sqlite3")
    outputs = tmp_path / "out"
    outputs.mkdir()
    for n in range(12):
        png = write_png(outputs / f"frame_{n:04d}.png", 640, 360, (n * 20, 90, 200 - n * 10))
        ledger.record(str(n), "https://render.example.com", "done", 10, 9, 1.0, "", str(outputs))
        assert thumbnails.keep(ledger, tmp_path, "https://render.example.com", str(n), [png], max_mb=0.004)
    folder = thumbnails.folder_of(tmp_path)
    sizes = [p.stat().st_size for p in folder.iterdir()]
    assert sum(sizes) <= 0.004 * 1024 * 1024 and len(sizes) >= 1, sizes
    kept = ledger.thumbnails()
    assert [job for job, _ in kept] == [str(n) for n in range(11, 11 - len(kept), -1)], "the newest are kept"
    assert {name for _, name in kept} == {p.name for p in folder.iterdir()}
    exr = outputs / "frame.exr"
    exr.write_bytes(b"v/1\x01 not an image Qt reads")
    ledger.record("12", "s", "done", 1, 1, None, "", "")
    assert thumbnails.keep(ledger, tmp_path, "s", "12", [exr], max_mb=50) is None
    # After 30 days the job's history in the window goes, and its thumbnail with it; `homefarm stats` still
    # counts the job in its month and all time.
    later = time.time() + 31 * 86400
    for name in ledger.prune(keep_days=30, now=later):
        (folder / name).unlink()
    assert not list(folder.iterdir()) and ledger.thumbnails() == []
    assert ledger.totals(0.0).jobs == 13


def _window(ledger, data_dir, qtbot, now):
    window = ActivityWindow(ledger, data_dir, 0.30, "EUR")
    qtbot.addWidget(window)
    window.show_activity(ledger.activity(now, hours=6))
    return window


def test_the_window_draws_thirty_days_the_last_hours_and_says_when_a_card_gives_no_power(filled, tmp_path, qtbot):
    now = NOW
    ARTIFACTS.mkdir(exist_ok=True)
    window = _window(filled(), tmp_path, qtbot, now)
    window.resize(1280, 800)
    window.show()
    assert window.summary.text().startswith("Today: ") and "GPU energy" in window.summary.text()
    recent = window.recent_view.chart()
    areas = [s for s in recent.series() if isinstance(s, QAreaSeries)]
    assert sorted(a.name() for a in areas) == ["paused: game", "paused: schedule"]
    assert {s.name() for s in recent.series() if isinstance(s, QLineSeries)} == {"°C", "W", "load %", "ours %"}
    assert window.energy_view.chart().title().startswith("GPU energy per day (30 days: ")
    assert window.energy_note.text() == ""
    for view in (window.jobs_view, window.hours_view, window.energy_view, window.recent_view, window.jobs_list):
        assert view.accessibleName(), view
    assert window.jobs_list.count() == 30
    window.grab().save(str(ARTIFACTS / "activity-filled-1280x800.png"))

    dark = _window(filled(power=False), tmp_path, qtbot, now)
    dark.resize(800, 600)
    dark.show()
    assert dark.energy_view.chart().title() == "GPU energy per day: no power readings"
    assert "gives no power reading" in dark.energy_note.text() and "not measured" in dark.energy_note.text()
    assert "GPU energy no power readings" in dark.summary.text()
    dark.grab().save(str(ARTIFACTS / "activity-no-power.png"))


def test_a_dark_desktop_gets_dark_charts(filled, tmp_path, qtbot, qapp):
    from PySide6.QtCharts import QChart
    from PySide6.QtGui import QColor, QPalette

    now = NOW
    window = ActivityWindow(filled(), tmp_path)
    qtbot.addWidget(window)
    dark = QPalette(window.palette())
    for role, color in ((QPalette.Window, "#202124"), (QPalette.WindowText, "#e8eaed"), (QPalette.Base, "#2b2c2f"),
                        (QPalette.Text, "#e8eaed")):
        dark.setColor(role, QColor(color))
    window.setPalette(dark)
    window.show_activity(window.ledger.activity(now, hours=6))
    assert all(view.chart().theme() == QChart.ChartThemeDark for view in (window.jobs_view, window.recent_view))
    window.resize(1280, 800)
    window.show()
    window.grab().save(str(ARTIFACTS / "activity-dark.png"))


def test_the_window_reads_off_the_gui_thread_and_draws_well_under_a_second(filled, tmp_path, qtbot):
    window = ActivityWindow(filled(), tmp_path)
    qtbot.addWidget(window)
    started = time.monotonic()
    window.load()
    qtbot.waitUntil(lambda: window.activity is not None, timeout=10000)
    assert window.jobs_list.count() == 30
    print(f"read and drawn in {time.monotonic() - started:.3f} s")


def test_a_job_whose_outputs_are_gone_says_so_and_one_on_disk_opens(tmp_path, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr("worker_app.tray.activity.QDesktopServices.openUrl", lambda url: opened.append(url) or True)
    ledger = Ledger(tmp_path / "stats.sqlite3")
    ledger.record("1", "s", "done", 1, 1, None, "", str(tmp_path))
    ledger.record("2", "s", "done", 1, 1, None, "", str(tmp_path / "gone"))
    window = _window(ledger, tmp_path, qtbot, time.time())
    window.open_outputs(window.jobs_list.item(0))  # newest first: job 2
    assert "no longer on this PC" in window.status.text() and not opened
    window.open_outputs(window.jobs_list.item(1))
    assert opened and Path(opened[0].toLocalFile()) == tmp_path
