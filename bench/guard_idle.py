"""What the game detector costs on each guard tick while idle: the real process table of this machine, the
real detector, and how often it resolves an executable's path (on Windows each ``os.path.realpath`` opens the
file: with ~300 processes and a tick a second, ~300 file opens a second before paths were cached).

The baseline, in the same run: the same ticks with the cache bypassed (every path resolved every tick, as
before). Prints the median time of a tick and the realpath calls per tick for each, and their ratios.

    python bench/guard_idle.py [--ticks 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

from worker_app.guard import detectors as D
from worker_app.system.desktop import SteamStatus


def run(ticks: int, cached: bool) -> tuple[float, float]:
    """(median seconds per tick, realpath calls per tick) over ``ticks`` checks."""
    calls = [0]
    real = os.path.realpath

    def counting(path, *args, **kwargs):
        calls[0] += 1
        return real(path, *args, **kwargs)

    D.os.path.realpath = counting
    original = D.resolved
    if not cached:  # as before: every process's path resolved on every tick
        D.resolved = lambda exe: os.path.normcase(counting(exe))  # type: ignore[assignment]
    else:
        D.resolved.cache_clear()
    try:
        detector = D.GameDetector(names=[], own_paths=["/usr/bin/blender"], steam=SteamStatus())
        detector.check(dt.datetime.now())  # the table's first full scan is not a tick
        calls[0] = 0
        times = []
        for _ in range(ticks):
            started = time.perf_counter()
            detector.check(dt.datetime.now())
            times.append(time.perf_counter() - started)
        return statistics.median(times), calls[0] / ticks
    finally:
        D.os.path.realpath = real
        D.resolved = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    processes = len(D.psutil.pids())
    rows = {True: [], False: []}
    for _ in range(args.rounds):  # interleaved, so drift in the machine's speed hits both alike
        for cached in (False, True):
            rows[cached].append(run(args.ticks, cached))
    print(f"{processes} processes, {args.ticks} ticks x {args.rounds} rounds")
    for cached, label in ((False, "baseline (no cache)"), (True, "homefarm (cached)")):
        tick = statistics.median(r[0] for r in rows[cached])
        calls = statistics.median(r[1] for r in rows[cached])
        print(f"{label:<22} tick median {tick * 1000:7.3f} ms   realpath calls per tick {calls:7.1f}")
    base_tick = statistics.median(r[0] for r in rows[False])
    tick = statistics.median(r[0] for r in rows[True])
    base_calls = statistics.median(r[1] for r in rows[False])
    calls = statistics.median(r[1] for r in rows[True])
    print(f"ratio homefarm / baseline: tick {tick / base_tick:.2f}x, realpath calls "
          f"{(calls / base_calls) if base_calls else 0:.3f}x")


if __name__ == "__main__":
    main()
