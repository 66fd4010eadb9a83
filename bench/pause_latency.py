"""How fast homefarm steps aside when the owner starts a game, and what the guard costs while idle.

Each round: a worker (default settings: check every 1 s, policy requeue) renders a long job from a real
server on loopback with the real Blender; a program named like a game (a copy of `sleep`) starts; the time
until Blender's processes are gone and the job is back in the server's queue is measured. The baseline,
measured in the same run, is stopping the same kind of Blender render directly (ask, wait, kill: the floor
any pause can reach).

Then the guard and the GPU monitor run alone for a while with no game, and their CPU time is reported.

    python bench/pause_latency.py [--rounds 5] [--cold]   (the worker renders in its warm Blender by default)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.harness import FAST_RENDER, Served, wait_until  # noqa: E402
from support.fake_nvml import FakeProvider  # noqa: E402
from worker_app import config as config_mod  # noqa: E402
from worker_app.render.blender import BlenderRun  # noqa: E402
from worker_app.render.discovery import find_blender  # noqa: E402
from worker_app.demo import sample_scene  # noqa: E402
from worker_app.system.gpu import GpuMonitor  # noqa: E402
from worker_app.runtime import build_guard  # noqa: E402
from worker_app.server import JobServer  # noqa: E402
from worker_app.core import Folders, Settings, State, Worker  # noqa: E402

LONG = {**FAST_RENDER, "samples": 100000, "resolution": [160, 90]}


def blenders_in(folder: Path):
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(folder) in part for part in proc.info["cmdline"] or []):
            out.append(proc)
    return out


def baseline_round(blender, tmp: Path) -> float:
    job_dir = tmp / "direct"
    (job_dir / "out").mkdir(parents=True, exist_ok=True)
    run = BlenderRun(blender.path, sample_scene(), {"render": LONG, "frames": [1], "output_dir": str(job_dir / "out")},
                     job_dir, total_timeout=600, silence_timeout=600)
    import threading
    thread = threading.Thread(target=run.run)
    thread.start()
    wait_until(lambda: run.tracker.frame is not None, timeout=60, step=0.01)
    started = time.monotonic()
    run.stop("baseline")
    thread.join()
    return time.monotonic() - started


def pause_round(served: Served, blender, tmp: Path, index: int, cold: bool = False) -> float:
    paths = config_mod.Paths(tmp / "cfg", tmp / f"data{index}", tmp / "cache", tmp / "logs")
    cfg = config_mod.Config(server_url=served.url, games=("fakegame.exe",), hold_off_s=60)
    monitor = GpuMonitor(FakeProvider(), interval=cfg.gpu_interval_s).start()
    holder = {}
    guard = build_guard(cfg, paths, lambda: holder["w"].own_pids(), [blender.path], monitor)
    worker = Worker(served.worker_client(), blender, Folders(paths.jobs_dir, paths.scene_cache),
                    Settings(device="CPU", pause_policy=cfg.pause_policy, max_jobs=1, warm=not cold),
                    make_client=served.worker_client, guard=guard)
    holder["w"] = worker
    guard.evaluate()
    guard.start()
    job = served.submit(LONG)
    thread = worker.start_thread()
    wait_until(lambda: worker.snapshot.state == State.RENDERING and blenders_in(paths.jobs_dir), timeout=60,
               step=0.01)
    time.sleep(0.5)
    exe = tmp / "fakegame.exe"
    shutil.copy(shutil.which("sleep"), exe)
    started = time.monotonic()
    game = subprocess.Popen([str(exe), "60"])
    try:
        wait_until(lambda: not blenders_in(paths.jobs_dir)
                   and served.app.job(job["id"])["state"] == "queued")
        took = time.monotonic() - started
    finally:
        game.kill()
        game.wait()
        worker.stop()
        guard.stop()
        monitor.stop()
        thread.join(30)
        served.app.cancel(job["id"])
    return took


def idle_cost(seconds: float, tmp: Path) -> float:
    """CPU seconds per wall second that the guard and the monitor use with nothing to do."""
    paths = config_mod.Paths(tmp / "cfg", tmp / "idle", tmp / "cache", tmp / "logs")
    cfg = config_mod.Config()
    monitor = GpuMonitor(FakeProvider(), interval=cfg.gpu_interval_s).start()
    guard = build_guard(cfg, paths, lambda: set(), [], monitor)
    guard.start()
    me = psutil.Process()
    time.sleep(2)  # the first scan reads every process once; measure the steady state
    before, t0 = me.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = me.cpu_times(), time.monotonic()
    guard.stop()
    monitor.stop()
    return ((after.user - before.user) + (after.system - before.system)) / (t1 - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--cold", action="store_true", help="a Blender per job instead of the warm one")
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.ERROR)  # the worker's own notes on each release are expected here
    blender = find_blender()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = JobServer(tmp / "server").start()
        served = Served(server)
        try:
            baseline = [baseline_round(blender, tmp) for _ in range(args.rounds)]
            pauses = [pause_round(served, blender, tmp, i, args.cold) for i in range(args.rounds)]
        finally:
            server.stop()
        cost = idle_cost(args.idle_seconds, tmp)
    print(f"Blender {blender.version} ({'cold' if args.cold else 'warm'}), {args.rounds} rounds, guard checks "
          "every 1 s, policy requeue")
    print(f"baseline, stopping Blender directly:          median {statistics.median(baseline):.3f} s, "
          f"max {max(baseline):.3f} s")
    print(f"game starts -> Blender gone and job released: median {statistics.median(pauses):.3f} s, "
          f"max {max(pauses):.3f} s")
    print(f"ratio to baseline (median): {statistics.median(pauses) / statistics.median(baseline):.1f}x")
    print(f"guard + GPU monitor while idle: {cost * 100:.2f} % of one core "
          f"({psutil.cpu_count()} cores, {len(psutil.pids())} processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
