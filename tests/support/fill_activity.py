"""Fills a stats database as 30 days of a worker would: jobs on most days (a gap of days off, some failed),
GPU minutes for the last hours with a game's pause and a schedule pause, optionally a card with no power
readings (energy and power stay empty)."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

from worker_app.guard.energy import Ledger


def fill(path: Path, now: float, power: bool = True, seed: int = 7) -> Ledger:
    rng = random.Random(seed)
    clock = {"t": now}
    ledger = Ledger(path, clock=lambda: clock["t"])
    today = dt.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range(30):
        if back in (9, 10, 11, 20):  # days the PC was off
            continue
        day = (today - dt.timedelta(days=back)).timestamp()
        for n in range(rng.randint(1, 12)):
            clock["t"] = min(day + 3600 + n * 1800 + rng.random() * 900, now - 60)
            render = rng.uniform(30, 900)
            failed = rng.random() < 0.12
            ledger.record(f"{1000 - back * 20 - n}", "https://render.example.com", "failed" if failed else "done",
                          render + 8, render, render * 210 / 3600 if power else None,
                          "scene: saved by Blender 4.5; this PC has 3.4.1" if failed else "", "")
    for minute in range(int(now - 6 * 3600) // 60, int(now) // 60):
        t = minute * 60.0
        phase = (now - t) / 3600
        rendering = not (1.0 < phase < 2.0)  # an hour's game, an hour ago
        load = 97.0 if rendering else 88.0
        ledger.add_sample(t, 55 + 18 * rendering + 3 * math.sin(t / 600), (205.0 if rendering else 160.0)
                          if power else None, load, 95.0 if rendering else 0.0)
    ledger.pause_began(now - 2 * 3600, "game", "Paused: eldenring.exe is running")
    ledger.pause_ended(now - 3600)
    ledger.pause_began(now - 5.5 * 3600, "schedule", "Paused until 01:00 (schedule)")
    ledger.pause_ended(now - 5.2 * 3600)
    clock["t"] = now
    return ledger
