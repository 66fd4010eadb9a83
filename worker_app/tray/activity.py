"""The activity window: what this PC did for the web app, drawn from the stats database the worker keeps
(guard/energy.py): jobs, render hours and GPU energy per day for 30 days, the last hours' GPU temperature,
power and load with the pauses as bands on the same time axis, and the recent jobs with a thumbnail each.

It runs as a process of its own (``homefarm activity``; the tray's menu starts it): the charts' library and
what drawing costs are never in the tray's memory, and all of it is returned when the window closes. The
database is read on a thread; the charts are QtCharts (PySide6's add-ons, docs/dependencies.md)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

from PySide6.QtCharts import (QAreaSeries, QBarSeries, QCategoryAxis, QBarSet, QChart, QChartView,
                              QDateTimeAxis, QLineSeries, QStackedBarSeries, QValueAxis)
from PySide6.QtCore import QDateTime, QMargins, QPointF, QSize, Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QKeySequence, QPainter, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (QApplication, QGridLayout, QLabel, QListWidget, QListWidgetItem, QScrollArea,
                               QVBoxLayout, QWidget)

from worker_app import config as config_mod
from worker_app.guard.energy import Activity, Ledger
from worker_app.tray.background import Background
from worker_app.tray.thumbnails import BOX, fill_missing, folder_of

log = logging.getLogger("homefarm.tray")

HOURS = 6.0  # the span of the "last hours" chart
# Each kind of pause (guard/causes.py PauseKind) its colour and its words in the legend.
PAUSE_COLORS = {"game": "#8e24aa", "gpu": "#6a1b9a", "fullscreen": "#ab47bc", "schedule": "#546e7a",
                "thermal": "#e53935", "manual": "#fb8c00", "active": "#3949ab", "disk": "#6d4c41",
                "hold-off": "#90a4ae", "update": "#00897b"}
PAUSE_NAMES = {"game": "game", "gpu": "other GPU use", "fullscreen": "full screen", "schedule": "schedule",
               "thermal": "too hot", "manual": "by you", "active": "you at the PC", "disk": "disk full",
               "hold-off": "waiting to resume", "update": "update needed"}
DONE, FAILED, TEMP, POWER, LOAD, OURS = "#43a047", "#e53935", "#fb8c00", "#1e88e5", "#9e9e9e", "#43a047"


def _dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.Window).lightness() < 128


def _kwh(wh: float) -> str:
    return f"{wh / 1000:.2f} kWh" if wh >= 100 else f"{wh:.1f} Wh"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _money(amount: float, currency: str) -> str:
    return f"less than 0.01 {currency}" if 0 < amount < 0.005 else f"{amount:.2f} {currency}"


def _when(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts)
    return moment.strftime("%H:%M") if moment.date() == dt.date.today() else moment.strftime("%d %b %H:%M")


class ActivityWindow(QWidget):
    """The window; ``load()`` reads the ledger on a thread and draws what it found."""

    def __init__(self, ledger: Ledger, data_dir: Path, price_per_kwh: float = 0.0, currency: str = "",
                 parent: QWidget | None = None, thumbnails_mb: float = 50.0):
        super().__init__(parent)
        self.ledger, self.data_dir, self.thumbnails_mb = ledger, data_dir, thumbnails_mb
        self.price, self.currency = price_per_kwh, currency
        self.activity: Activity | None = None
        self.setWindowTitle("homefarm — Activity")
        self.setAccessibleName("homefarm activity")
        self.background = Background()
        self.summary = QLabel("Reading this PC's history…")
        self.summary.setAccessibleName("Today and the last 30 days")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.PlainText)
        self.jobs_view, self.hours_view, self.energy_view, self.recent_view = (
            self._chart_view(name) for name in ("Jobs per day", "Render time per day", "GPU energy per day",
                                                "The last hours: GPU temperature, power, load and pauses"))
        self.energy_note = QLabel("")
        self.energy_note.setTextFormat(Qt.PlainText)
        self.energy_note.setWordWrap(True)
        self.energy_note.setAccessibleName("About the energy figures")
        self.jobs_list = QListWidget()
        self.jobs_list.setAccessibleName("Recent jobs; open one to see its outputs")
        self.jobs_list.setViewMode(QListWidget.IconMode)
        self.jobs_list.setFlow(QListWidget.LeftToRight)
        self.jobs_list.setWrapping(False)
        self.jobs_list.setIconSize(QSize(160, 90))
        self.jobs_list.setGridSize(QSize(200, 150))
        self.jobs_list.setWordWrap(True)
        self.jobs_list.setMinimumHeight(170)
        self.jobs_list.setMovement(QListWidget.Static)
        self.jobs_list.itemActivated.connect(self.open_outputs)
        self.status = QLabel("")
        self.status.setTextFormat(Qt.PlainText)
        self.status.setAccessibleName("Status")
        grid = QGridLayout()
        grid.addWidget(self.jobs_view, 0, 0)
        grid.addWidget(self.hours_view, 0, 1)
        grid.addWidget(self.energy_view, 1, 0)
        grid.addWidget(self.recent_view, 1, 1)
        grid.addWidget(self.energy_note, 2, 0, 1, 2)
        content = QWidget()
        box = QVBoxLayout(content)
        box.addWidget(self.summary)
        box.addLayout(grid)
        jobs_title = QLabel("Recent jobs (open one for its outputs)")
        box.addWidget(jobs_title)
        box.addWidget(self.jobs_list)
        box.addWidget(self.status)
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.resize(1280, 800)
        for keys in (QKeySequence.Close, QKeySequence(Qt.Key_Escape)):  # Ctrl+W (Cmd+W), Esc
            QShortcut(keys, self, activated=self.close)

    def closeEvent(self, event) -> None:
        self.background.close()  # a read still under way draws nothing into a closed window
        super().closeEvent(event)

    def _chart_view(self, name: str) -> QChartView:
        view = QChartView()
        view.setRenderHint(QPainter.Antialiasing)
        view.setMinimumSize(360, 240)
        view.setAccessibleName(name)
        return view

    # -- data --------------------------------------------------------------------------------------

    def load(self) -> None:
        """Reads the ledger on a thread (a damaged database comes back as its error, logged); the GUI thread
        only draws."""
        def read() -> Activity:
            fill_missing(self.ledger, self.data_dir, self.thumbnails_mb)
            return self.ledger.activity(hours=HOURS)
        self.background.run(read, self.show_activity)

    def show_activity(self, activity: Activity | Exception) -> None:
        if isinstance(activity, Exception):
            self.summary.setText("This PC's history could not be read; View log in the tray's menu says why.")
            return
        self.activity = activity
        theme = QChart.ChartThemeDark if _dark(self) else QChart.ChartThemeLight
        self.summary.setText(self._summary(activity))
        self.jobs_view.setChart(self._jobs_chart(activity, theme))
        self.hours_view.setChart(self._render_chart(activity, theme))
        self.energy_view.setChart(self._energy_chart(activity, theme))
        self.recent_view.setChart(self._recent_chart(activity, theme))
        self._fill_jobs(activity)

    def _summary(self, activity: Activity) -> str:
        today, days = activity.days[-1], activity.days

        def line(label: str, done: int, failed: int, render_s: float, wh: float | None) -> str:
            energy = "no power readings" if wh is None else _kwh(wh) + (
                f" ({_money(wh / 1000 * self.price, self.currency)})" if self.price else "")
            return (f"{label}: {done} job{'s' if done != 1 else ''} done, {failed} failed, "
                    f"{_duration(render_s)} rendering, GPU energy {energy}")
        month_wh = [d.energy_wh for d in days if d.energy_wh is not None]
        return "\n".join([line("Today", today.done, today.failed, today.render_s, today.energy_wh),
                          line(f"Last {len(days)} days", sum(d.done for d in days), sum(d.failed for d in days),
                               sum(d.render_s for d in days), sum(month_wh) if month_wh else None)])

    # -- charts ------------------------------------------------------------------------------------

    def _chart(self, title: str, theme) -> QChart:
        chart = QChart()
        chart.setTheme(theme)
        chart.setTitle(title)
        legend_font = chart.legend().font()
        legend_font.setPointSizeF(max(6.0, legend_font.pointSizeF() * 0.85))
        chart.legend().setFont(legend_font)
        chart.setAnimationOptions(QChart.NoAnimation)
        chart.legend().setAlignment(Qt.AlignBottom)
        chart.setMargins(QMargins(4, 4, 4, 4))
        return chart

    def _day_axis(self, activity: Activity) -> QCategoryAxis:
        """Bars stand at 0..29; a date labels every fifth day, counted back from today (always labelled)."""
        axis = QCategoryAxis()
        count = len(activity.days)
        axis.setRange(-0.5, count - 0.5)
        axis.setLabelsPosition(QCategoryAxis.AxisLabelsPositionOnValue)
        month = dt.date.fromtimestamp(activity.days[0].start).month  # the first label a number: it fits narrow
        for n in sorted(range(count - 1, -1, -5)):
            date = dt.date.fromtimestamp(activity.days[n].start)
            # The month is named where it changes and at today; the days between are numbers.
            text = f"{date.day} {date:%b}" if date.month != month or n == count - 1 else str(date.day)
            month = date.month
            axis.append(text, n)
        axis.setGridLineVisible(False)
        return axis

    def _bars(self, chart: QChart, series, activity: Activity, unit: str, top: float) -> None:
        chart.addSeries(series)
        x = self._day_axis(activity)
        y = QValueAxis()
        y.setRange(0, top * 1.15 if top > 0 else 1.0)
        y.setTitleText(unit)
        y.setLabelFormat("%.2g" if top < 1 else "%.1f" if top < 10 else "%d")
        chart.addAxis(x, Qt.AlignBottom)
        chart.addAxis(y, Qt.AlignLeft)
        series.attachAxis(x)
        series.attachAxis(y)

    def _jobs_chart(self, activity: Activity, theme) -> QChart:
        chart = self._chart("Jobs per day, last 30 days", theme)
        done, failed = QBarSet("done"), QBarSet("failed")
        done.setColor(QColor(DONE))
        failed.setColor(QColor(FAILED))
        for day in activity.days:
            done.append(day.done)
            failed.append(day.failed)
        series = QStackedBarSeries()
        series.append(done)
        series.append(failed)
        self._bars(chart, series, activity, "jobs", max(d.done + d.failed for d in activity.days))
        return chart

    def _render_chart(self, activity: Activity, theme) -> QChart:
        longest = max(d.render_s for d in activity.days)
        unit, per = ("hours", 3600.0) if longest >= 3600 else ("minutes", 60.0)
        chart = self._chart(f"Render time per day ({unit})", theme)
        hours = QBarSet(f"{unit} rendering")
        hours.setColor(QColor(POWER))
        for day in activity.days:
            hours.append(day.render_s / per)
        series = QBarSeries()
        series.append(hours)
        self._bars(chart, series, activity, unit, longest / per)
        return chart

    def _energy_chart(self, activity: Activity, theme) -> QChart:
        known = [d.energy_wh for d in activity.days if d.energy_wh is not None]
        total = sum(known)
        cost = f", {_money(total / 1000 * self.price, self.currency)}" if self.price else ""
        chart = self._chart(f"GPU energy per day (30 days: {_kwh(total)}{cost})" if known else
                            "GPU energy per day: no power readings", theme)
        unit, per = ("kWh", 1000.0) if max(known, default=0.0) >= 100 else ("Wh", 1.0)
        energy = QBarSet(unit)
        energy.setColor(QColor(TEMP))
        for day in activity.days:
            energy.append((day.energy_wh or 0.0) / per)
        series = QBarSeries()
        series.append(energy)
        self._bars(chart, series, activity, unit, max(known, default=0.0) / per)
        no_reading = [d for d in activity.days if d.energy_wh is None and d.done + d.failed]
        if not known and any(d.done + d.failed for d in activity.days):
            self.energy_note.setText("This PC's graphics card gives no power reading, so no energy is drawn for "
                                     "its jobs (0 here means not measured, not free).")
        elif no_reading:
            self.energy_note.setText(f"{len(no_reading)} day(s) with jobs had no power reading: their bars are "
                                     "empty because nothing was measured.")
        else:
            self.energy_note.setText("")
        return chart

    def _recent_chart(self, activity: Activity, theme) -> QChart:
        # The last hours, or from the first figure or pause within them (a worker that started lately), at least
        # 20 minutes: its span is what there is to see.
        first = min([s.minute for s in activity.samples] + [max(p.started, activity.since) for p in activity.pauses]
                    + [activity.now - 1200])
        since = max(activity.since, first - 60)
        span = activity.now - since
        chart = self._chart(f"The last {HOURS:g} hours" if span > HOURS * 3600 - 120 else
                            f"Since {_when(since)}", theme)
        start, end = since * 1000, (activity.now + span * 0.02) * 1000  # the last minute off the edge
        left, right = QValueAxis(), QValueAxis()
        left.setRange(0, 100)
        left.setTitleText("°C, % load")
        watts = [s.power_w for s in activity.samples if s.power_w is not None]
        right.setRange(0, max(watts, default=100) * 1.15)
        right.setTitleText("W")
        right.setLabelFormat("%d")
        time_axis = QDateTimeAxis()
        time_axis.setFormat("HH:mm")
        time_axis.setRange(QDateTime.fromMSecsSinceEpoch(int(start)), QDateTime.fromMSecsSinceEpoch(int(end)))
        time_axis.setTickCount(7 if span > 3600 else 5)
        chart.addAxis(time_axis, Qt.AlignBottom)
        chart.addAxis(left, Qt.AlignLeft)
        chart.addAxis(right, Qt.AlignRight)
        shown_kinds: set[str] = set()
        for band in activity.pauses:  # first, so the lines are drawn over them
            upper, lower = QLineSeries(chart), QLineSeries(chart)  # owned by the chart: the area uses them
            begin = max(band.started, since)
            width = self.recent_view.width() or 600  # a pause of seconds stays visible: 6 px at the least
            finish = max(min(band.ended, activity.now), begin + span * 6 / width)
            begin, finish = begin * 1000, finish * 1000
            for x in (begin, finish):
                upper.append(x, 100)
                lower.append(x, 0)
            area = QAreaSeries(upper, lower)
            area.setName(f"paused: {PAUSE_NAMES.get(band.kind, band.kind)}")
            color = QColor(PAUSE_COLORS.get(band.kind, "#757575"))
            color.setAlpha(70)
            area.setColor(color)
            area.setBorderColor(color)
            chart.addSeries(area)
            area.attachAxis(time_axis)
            area.attachAxis(left)
            if band.kind in shown_kinds:
                chart.legend().markers(area)[0].setVisible(False)
            shown_kinds.add(band.kind)
        lines = (("°C", TEMP, "temp_c", left), ("W", POWER, "power_w", right),
                 ("load %", LOAD, "load", left), ("ours %", OURS, "own_load", left))
        for name, color, field, axis in lines:
            series = QLineSeries()
            series.setName(name)
            series.setColor(QColor(color))
            points = [QPointF(s.minute * 1000, getattr(s, field)) for s in activity.samples
                      if getattr(s, field) is not None]
            if not points:
                continue
            series.append(points)
            series.setPointsVisible(len(points) < 30)  # a few minutes of figures show as dots, not nothing
            chart.addSeries(series)
            series.attachAxis(time_axis)
            series.attachAxis(axis)
        if not activity.samples:
            chart.setTitle(f"The last {HOURS:g} hours: no GPU figures (the worker was off, or no NVIDIA GPU)")
        return chart

    # -- jobs ----------------------------------------------------------------------------------

    def _fill_jobs(self, activity: Activity) -> None:
        self.jobs_list.clear()
        folder = folder_of(self.data_dir)
        placeholder = QPixmap(BOX.width() // 2, BOX.height() // 2)
        placeholder.fill(self.palette().color(QPalette.Mid))
        for job in activity.jobs:
            pixmap = QPixmap(str(folder / Path(job.thumbnail).name)) if job.thumbnail else QPixmap()
            energy = "" if job.energy_wh is None else f" · {_kwh(job.energy_wh)}"
            text = f"Job {job.job_id} · {job.outcome}\n{_when(job.finished)}{energy}"
            if job.reason and job.outcome != "done":
                text += f"\n{job.reason[:80]}"
            item = QListWidgetItem(QIcon(pixmap if not pixmap.isNull() else placeholder), text)
            item.setToolTip(text + ("" if job.thumbnail else "\n(no preview: the output is not an image Qt reads, "
                                                                "or there was none)"))
            item.setData(Qt.UserRole, job.outputs_dir)
            item.setData(Qt.AccessibleTextRole, text.replace("\n", ", "))
            self.jobs_list.addItem(item)
        if not activity.jobs:
            self.status.setText("No jobs yet: they show here once this PC renders one.")

    def open_outputs(self, item: QListWidgetItem) -> None:
        folder = item.data(Qt.UserRole) or ""
        if folder and Path(folder).is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))
            self.status.setText("")
        else:
            self.status.setText("That job's outputs are no longer on this PC; the web app has them.")


def main(paths: config_mod.Paths | None = None) -> int:
    """``homefarm activity``: the window, until it is closed."""
    from worker_app.runtime import ledger

    paths = paths or config_mod.Paths.default()
    try:
        cfg = config_mod.load(paths)
    except config_mod.ConfigError:
        cfg = config_mod.Config()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = ActivityWindow(ledger(paths), paths.data_dir, cfg.price_per_kwh, cfg.currency,
                            thumbnails_mb=cfg.thumbnails_mb)
    window.show()
    window.load()
    return int(app.exec())
