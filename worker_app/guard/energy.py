"""What a job cost in GPU energy, and the running totals the owner sees in `homefarm stats`.

Energy comes from NVML's total-energy counter where the GPU has one (Volta and newer), else from the
power draw integrated over the job's samples. It is the GPU's energy while the job ran, idle draw
included; the PC's other parts are not measured.
"""

from __future__ import annotations

import bisect
import datetime as dt
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from worker_app.system.gpu import GpuSnapshot

JOULES_PER_WH = 3600.0


@dataclass
class EnergyReading:
    wh: float | None
    source: str  # "counter", "power", or "none"


class EnergyMeter:
    """Measures one job: ``start()``, feed it every GPU snapshot with ``add()``, then ``stop()``."""

    def __init__(self, first: GpuSnapshot | None = None):
        self._lock = threading.Lock()
        self._start_mj: int | None = None
        self._last_mj: int | None = None
        self._joules = 0.0
        self._last: tuple[float, float] | None = None  # (time, watts)
        self._counter_ok = True
        if first is not None:
            self.add(first)

    @staticmethod
    def _energy(snapshot: GpuSnapshot) -> int | None:
        values = [g.energy_mj for g in snapshot.gpus]
        return sum(values) if values and all(v is not None for v in values) else None

    @staticmethod
    def _power(snapshot: GpuSnapshot) -> float | None:
        values = [g.power_w for g in snapshot.gpus]
        return sum(values) if values and all(v is not None for v in values) else None

    def add(self, snapshot: GpuSnapshot) -> None:
        if not snapshot.available or not snapshot.gpus:
            return
        with self._lock:
            energy = self._energy(snapshot)
            if energy is None:
                self._counter_ok = False
            elif self._start_mj is None:
                self._start_mj = energy
            self._last_mj = energy if energy is not None else self._last_mj
            watts = self._power(snapshot)
            if watts is not None:
                if self._last is not None and snapshot.time > self._last[0]:
                    # Trapezoids between samples.
                    self._joules += (snapshot.time - self._last[0]) * (watts + self._last[1]) / 2
                self._last = (snapshot.time, watts)

    def reading(self) -> EnergyReading:
        with self._lock:
            if self._counter_ok and self._start_mj is not None and self._last_mj is not None:
                return EnergyReading((self._last_mj - self._start_mj) / 1000.0 / JOULES_PER_WH, "counter")
            if self._last is not None:
                return EnergyReading(self._joules / JOULES_PER_WH, "power")
            return EnergyReading(None, "none")


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT NOT NULL,
    server TEXT NOT NULL,
    finished REAL NOT NULL,
    outcome TEXT NOT NULL,
    wall_s REAL NOT NULL,
    render_s REAL NOT NULL,
    energy_wh REAL
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished);
CREATE TABLE IF NOT EXISTS samples (
    minute REAL PRIMARY KEY,  -- the minute's start (epoch seconds): one row a minute, the mean of its samples
    temp_c REAL,
    power_w REAL,
    load REAL,  -- the GPU's load, percent
    own_load REAL  -- our Blender's share of it, where NVML says per process
);
CREATE TABLE IF NOT EXISTS pauses (
    started REAL NOT NULL,
    ended REAL,  -- NULL while it lasts
    kind TEXT NOT NULL,  -- game, gpu, schedule, thermal, manual, ...
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pauses_started ON pauses (started);
"""
KEEP_DAYS = 30  # the activity window's history: GPU minutes, pauses and thumbnails older than this are removed
ADDED_COLUMNS = (("reason", "TEXT"), ("outputs_dir", "TEXT"), ("thumbnail", "TEXT"))


@dataclass
class Totals:
    jobs: int
    render_s: float
    energy_wh: float

    def cost(self, price_per_kwh: float) -> float:
        return self.energy_wh / 1000.0 * price_per_kwh


@dataclass
class Day:
    start: float  # local midnight
    done: int = 0
    failed: int = 0
    render_s: float = 0.0
    energy_wh: float | None = None  # None: no job that day had a power reading


@dataclass(frozen=True)
class Sample:
    minute: float
    temp_c: float | None
    power_w: float | None
    load: float | None
    own_load: float | None


@dataclass(frozen=True)
class PauseBand:
    started: float
    ended: float
    kind: str
    reason: str


@dataclass(frozen=True)
class JobRow:
    job_id: str
    finished: float
    outcome: str
    reason: str
    wall_s: float
    energy_wh: float | None
    outputs_dir: str
    thumbnail: str | None


@dataclass(frozen=True)
class Activity:
    now: float
    since: float  # the start of the last hours' axis
    days: list[Day]
    samples: list[Sample]
    pauses: list[PauseBand]
    jobs: list[JobRow]


class MinuteSampler:
    """Turns the GPU monitor's samples (every few seconds) into one row a minute in the ledger: the means of
    the first GPU's temperature, power and load, and our Blender's share of the load. No sampling of its own:
    it takes the samples the worker already gets."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.minute: float | None = None
        self.sums: dict[str, list[float]] = {}

    def add(self, snapshot: GpuSnapshot, own_pids: set[int]) -> None:
        if not snapshot.available or not snapshot.gpus:
            return
        minute = snapshot.time - snapshot.time % 60
        if self.minute is not None and minute != self.minute:
            self.flush()
        self.minute = minute
        gpu = snapshot.gpus[0]
        if own_pids:  # rendering: our processes' share, where NVML gives it per process
            own = [p.load for p in gpu.processes if p.pid in own_pids and p.load is not None]
            own_load = sum(own) if own else None
        else:  # no Blender of ours: none of the load is ours
            own_load = 0 if gpu.load is not None else None
        for key, value in (("temp_c", gpu.temp_c), ("power_w", gpu.power_w), ("load", gpu.load),
                           ("own_load", own_load)):
            if value is not None:
                self.sums.setdefault(key, []).append(float(value))

    def flush(self) -> None:
        if self.minute is None or not self.sums:
            return
        mean = {key: sum(values) / len(values) for key, values in self.sums.items()}
        self.ledger.add_sample(self.minute, mean.get("temp_c"), mean.get("power_w"), mean.get("load"),
                               mean.get("own_load"))
        self.sums = {}


class Ledger:
    """Every job this PC worked on, kept locally, for per-day and per-month totals."""

    def __init__(self, path: Path, clock=time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, kind in ADDED_COLUMNS:  # a ledger from before the activity window
                if column not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=5)

    def record(self, job_id: str, server: str, outcome: str, wall_s: float, render_s: float,
               energy_wh: float | None, reason: str = "", outputs_dir: str = "") -> None:
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO jobs (job_id, server, finished, outcome, wall_s, render_s, energy_wh, reason, "
                       "outputs_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, server, self.clock(), outcome, wall_s, render_s, energy_wh, reason, outputs_dir))

    def set_thumbnail(self, job_id: str, name: str) -> None:
        """The small copy of the job's first output (its file name in the thumbnails folder)."""
        with self._lock, self._connect() as db:
            db.execute("UPDATE jobs SET thumbnail = ? WHERE rowid = (SELECT MAX(rowid) FROM jobs WHERE job_id = ?)",
                       (name, job_id))

    def add_sample(self, minute: float, temp_c: float | None, power_w: float | None, load: float | None,
                   own_load: float | None) -> None:
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)",
                       (minute, temp_c, power_w, load, own_load))

    def pause_began(self, at: float, kind: str, reason: str) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE pauses SET ended = ? WHERE ended IS NULL", (at,))  # another kind took over
            db.execute("INSERT INTO pauses VALUES (?, NULL, ?, ?)", (at, kind, reason))

    def pause_ended(self, at: float) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE pauses SET ended = ? WHERE ended IS NULL", (at,))

    def prune(self, keep_days: float = KEEP_DAYS, now: float | None = None) -> list[str]:
        """Removes the activity window's history older than ``keep_days`` (GPU minutes, pauses, the jobs'
        thumbnails); returns the thumbnails to delete. A job's own row stays: `homefarm stats` counts every
        month and all time."""
        cutoff = (self.clock() if now is None else now) - keep_days * 86400
        with self._lock, self._connect() as db:
            gone = [row[0] for row in db.execute("SELECT thumbnail FROM jobs WHERE finished < ? AND thumbnail "
                                                 "IS NOT NULL", (cutoff,))]
            db.execute("UPDATE jobs SET thumbnail = NULL WHERE finished < ?", (cutoff,))
            db.execute("DELETE FROM samples WHERE minute < ?", (cutoff,))
            db.execute("DELETE FROM pauses WHERE COALESCE(ended, started) < ?", (cutoff,))
        return gone

    def close_open_pauses(self, at: float) -> None:
        """At start: a pause the last run left open ended when that run did (or now, at the latest)."""
        with self._lock, self._connect() as db:
            last = db.execute("SELECT MAX(minute) FROM samples").fetchone()[0]
            db.execute("UPDATE pauses SET ended = MAX(started, ?) WHERE ended IS NULL",
                       (min(at, (last or at) + 60),))

    def thumbnails(self) -> list[tuple[str, str]]:
        """(job id, thumbnail name) of every job that has one, newest first."""
        with self._connect() as db:
            return db.execute("SELECT job_id, thumbnail FROM jobs WHERE thumbnail IS NOT NULL "
                              "ORDER BY finished DESC").fetchall()

    def lacking_thumbnails(self, limit: int = 30) -> list[tuple[str, str, str]]:
        """(job id, server, outputs folder) of the recent done jobs without a thumbnail (a headless worker's)."""
        with self._connect() as db:
            return db.execute("SELECT job_id, server, outputs_dir FROM (SELECT * FROM jobs ORDER BY finished DESC "
                              "LIMIT ?) WHERE thumbnail IS NULL AND outcome = 'done' AND outputs_dir != ''",
                              (limit,)).fetchall()

    def forget_thumbnail(self, name: str) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE jobs SET thumbnail = NULL WHERE thumbnail = ?", (name,))

    def activity(self, now: float | None = None, days: int = KEEP_DAYS, hours: float = 6.0,
                 recent: int = 30) -> Activity:
        """What the activity window draws: per day (local midnights) for ``days`` days up to today, the last
        ``hours`` hours' samples and pauses, and the ``recent`` last jobs."""
        now = self.clock() if now is None else now
        today = dt.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        starts = [(today - dt.timedelta(days=n)).timestamp() for n in range(days - 1, -1, -1)]
        since = now - hours * 3600
        with self._connect() as db:
            rows = db.execute("SELECT finished, outcome, render_s, energy_wh FROM jobs WHERE finished >= ?",
                              (starts[0],)).fetchall()
            samples = db.execute("SELECT minute, temp_c, power_w, load, own_load FROM samples WHERE minute >= ? "
                                 "ORDER BY minute", (since,)).fetchall()
            pauses = db.execute("SELECT started, COALESCE(ended, ?), kind, reason FROM pauses WHERE "
                                "COALESCE(ended, ?) >= ? ORDER BY started", (now, now, since)).fetchall()
            jobs = db.execute("SELECT job_id, finished, outcome, COALESCE(reason, ''), wall_s, energy_wh, "
                              "COALESCE(outputs_dir, ''), thumbnail FROM jobs ORDER BY finished DESC LIMIT ?",
                              (recent,)).fetchall()
        per_day = [Day(start) for start in starts]
        for finished, outcome, render_s, energy_wh in rows:
            day = per_day[bisect.bisect_right(starts, finished) - 1]
            day.done += outcome == "done"
            day.failed += outcome == "failed"
            day.render_s += render_s or 0.0
            if energy_wh is not None:
                day.energy_wh = (day.energy_wh or 0.0) + energy_wh
        return Activity(now, since, per_day, [Sample(*row) for row in samples],
                        [PauseBand(*row) for row in pauses], [JobRow(*row) for row in jobs])

    def totals(self, since: float, until: float | None = None) -> Totals:
        with self._connect() as db:
            # A job counts once it is done; released, lost and failed attempts still count their time and energy.
            row = db.execute("SELECT COUNT(DISTINCT CASE WHEN outcome = 'done' THEN job_id || ' ' || server END), "
                             "COALESCE(SUM(render_s), 0), COALESCE(SUM(energy_wh), 0) "
                             "FROM jobs WHERE finished >= ? AND finished < ?",
                             (since, until if until is not None else float("inf"))).fetchone()
        return Totals(row[0], row[1], row[2])

    def recent(self, limit: int = 10) -> list[tuple]:
        with self._connect() as db:
            return db.execute("SELECT job_id, finished, outcome, wall_s, render_s, energy_wh FROM jobs "
                              "ORDER BY finished DESC LIMIT ?", (limit,)).fetchall()

    def summary(self, now: dt.datetime | None = None) -> dict[str, Totals]:
        now = now or dt.datetime.now()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        return {"today": self.totals(day.timestamp()), "this month": self.totals(month.timestamp()),
                "all time": self.totals(0.0)}
