"""What a job cost in GPU energy, and the running totals the owner sees in `homefarm stats`.

Energy comes from NVML's total-energy counter where the GPU has one (Volta and newer), else from the
power draw integrated over the job's samples. It is the GPU's energy while the job ran, idle draw
included; the PC's other parts are not measured.
"""

from __future__ import annotations

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
"""


@dataclass
class Totals:
    jobs: int
    render_s: float
    energy_wh: float

    def cost(self, price_per_kwh: float) -> float:
        return self.energy_wh / 1000.0 * price_per_kwh


class Ledger:
    """Every job this PC worked on, kept locally, for per-day and per-month totals."""

    def __init__(self, path: Path, clock=time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=5)

    def record(self, job_id: str, server: str, outcome: str, wall_s: float, render_s: float,
               energy_wh: float | None) -> None:
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (job_id, server, self.clock(), outcome, wall_s, render_s, energy_wh))

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
