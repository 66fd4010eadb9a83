"""What homefarm adds to a render, and what a warm Blender takes away: bare Blender, a cold job, a warm job.

Two cases, interleaved in one run so that the machine's state is the same for each:
- render-bound: the sample scene at the demo's settings (Cycles, 16 samples, 640x360, CPU);
- start-up-bound: the same scene at 128x128, 4 samples, as a web app's small preview.

For each: bare `blender -b` with the same settings (the baseline), a homefarm job with a cold Blender and one
with a warm Blender, each from the web app's submission until the server has the job `done` (a reference
server in this process on loopback, a worker on a thread: scene download, render, upload, complete). The end
is taken when the server records the completion, as a webhook would tell the app at once: polling the job's
status every few milliseconds would take CPU from Blender on a small machine and add its own delay. Then
small jobs per second: 20 small jobs submitted at once to one warm worker.

    python bench/overhead.py [--runs 7] [--device CPU|GPU]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from worker_app.app_client import AppClient
from worker_app.client import WorkerClient
from worker_app.core import Folders, Settings, Worker
from worker_app.demo import sample_scene
from worker_app.render.discovery import find_blender
from worker_app.server import JobServer

CASES = {
    "render-bound (640x360, 16 samples)": {"resolution": [640, 360], "samples": 16},
    "start-up-bound (128x128, 4 samples)": {"resolution": [128, 128], "samples": 4},
}


class Farm:
    """A server and one worker on loopback; ``job(render)`` is one job from submission to done."""

    def __init__(self, root: Path, blender, warm: bool, device: str, scene: Path | None = None, **settings):
        self.server = JobServer(root / "server").start()
        self.app = AppClient(self.server.url, self.server.store.create_token("app", "bench"))
        token = self.server.store.create_token("worker", "bench")
        make_client = lambda: WorkerClient(self.server.url, token)  # noqa: E731
        self.worker = Worker(make_client(), blender, Folders(root / "worker" / "jobs", root / "worker" / "cache"),
                             Settings(device=device, claim_wait=20, warm=warm, **settings), make_client=make_client)
        self.thread = self.worker.start_thread()
        self.scene = self.app.upload_asset(scene or sample_scene())
        self.done: dict[str, float] = {}  # job id -> when the server recorded it done
        self.changed = threading.Condition()
        complete = self.server.store.complete

        def recorded(job_id, *args, **kwargs):
            complete(job_id, *args, **kwargs)
            with self.changed:
                self.done[str(job_id)] = time.perf_counter()
                self.changed.notify_all()

        self.server.store.complete = recorded

    def job(self, render: dict, overrides: dict | None = None) -> float:
        started = time.perf_counter()
        spec = {"scene": {k: self.scene[k] for k in ("url", "sha256", "size")}, "render": render}
        if overrides:
            spec["overrides"] = overrides
        job = self.app.submit(spec)
        return self.wait(job["id"], started)

    def wait(self, job_id: str, started: float) -> float:
        deadline = time.monotonic() + 300
        with self.changed:
            while job_id not in self.done:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id}: {self.app.job(job_id)['state']} after 300 s")
                self.changed.wait(1.0)
        assert self.app.job(job_id)["state"] == "done"
        return self.done[job_id] - started

    def close(self) -> None:
        self.worker.stop()
        self.thread.join(60)
        self.server.stop()


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process (the worker's and the in-process server's), by name."""
    import psutil

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    process = psutil.Process()
    found: dict[str, float] = {}
    for thread in process.threads():
        name = names.get(thread.id, "other (a library's own threads)")
        found[name] = found.get(name, 0.0) + thread.user_time + thread.system_time
    times = process.cpu_times()
    live = sum(found.values())
    # Threads that ended since (a job's own thread, an upload's) are counted only in the process's total.
    found["threads that ended"] = times.user + times.system - live
    return found


def bare(blender: str, out: Path, render: dict, device: str) -> float:
    """Bare `blender -b` rendering frame 1 with the same engine, samples, size and device."""
    width, height = render["resolution"]
    setup = ("import bpy; s = bpy.context.scene; s.render.engine = 'CYCLES'; "
             f"s.cycles.samples = {render['samples']}; s.render.resolution_x = {width}; "
             f"s.render.resolution_y = {height}; s.render.resolution_percentage = 100; "
             f"s.cycles.device = '{'GPU' if device == 'GPU' else 'CPU'}'; s.cycles.use_denoising = False")
    started = time.perf_counter()
    subprocess.run([blender, "-b", "--factory-startup", str(sample_scene()), "--python-expr", setup,
                    "-o", str(out / "frame_####"), "-F", "PNG", "-f", "1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--device", choices=("CPU", "GPU"), default="CPU")
    args = parser.parse_args()
    blender = find_blender("")
    print(f"Blender {blender.version} at {blender.path}, device {args.device}, {args.runs} runs, interleaved")
    with tempfile.TemporaryDirectory(prefix="homefarm-bench-") as tmp:
        root = Path(tmp)
        cold = Farm(root / "cold", blender, warm=False, device=args.device)
        warm = Farm(root / "warm", blender, warm=True, device=args.device)
        try:
            times: dict[tuple[str, str], list[float]] = {}
            spent: dict[tuple[str, str], dict[str, float]] = {}  # (case, way) -> thread -> CPU seconds
            for case, size in CASES.items():
                render = {"engine": "CYCLES", "frames": "1", "format": "PNG", "device": args.device,
                          "denoise": False, **size}
                warm.job(render)  # the warm Blender starts with its first job: not measured
                for run in range(args.runs):
                    times.setdefault((case, "bare"), []).append(bare(blender.path, root / "bare", render,
                                                                     args.device))
                    for way, farm in (("cold", cold), ("warm", warm)):
                        before = thread_cpu()
                        times.setdefault((case, way), []).append(farm.job(render))
                        for name, seconds in thread_cpu().items():
                            used = spent.setdefault((case, way), {})
                            used[name] = used.get(name, 0.0) + seconds - before.get(name, 0.0)
            small = {"engine": "CYCLES", "frames": "1", "format": "PNG", "device": args.device, "denoise": False,
                     **CASES["start-up-bound (128x128, 4 samples)"]}
            started = time.perf_counter()
            scene = {k: warm.scene[k] for k in ("url", "sha256", "size")}
            ids = [warm.app.submit({"scene": scene, "render": small})["id"] for _ in range(20)]
            for job_id in ids:
                warm.wait(job_id, started)
            per_second = len(ids) / (time.perf_counter() - started)
        finally:
            cold.close()
            warm.close()
    for case in CASES:
        base = statistics.median(times[(case, "bare")])
        print(f"{case}:")
        for kind, label in (("bare", "bare blender -b"), ("cold", "homefarm, cold Blender"),
                            ("warm", "homefarm, warm Blender")):
            values = times[(case, kind)]
            median = statistics.median(values)
            print(f"  {label:24s} median {median:6.3f} s  max {max(values):6.3f} s  ratio {median / base:5.2f}")
    print(f"small jobs, 20 submitted at once to one warm worker: {per_second:.1f} jobs/s")
    print("CPU of homefarm's own threads (worker and the in-process server) per job, beside Blender:")
    for (case, way), used in spent.items():
        top = sorted(((seconds / args.runs, name) for name, seconds in used.items()), reverse=True)[:6]
        print(f"  {case}, {way}: {sum(used.values()) / args.runs * 1000:.0f} ms in all "
              f"({100 * sum(used.values()) / sum(times[(case, way)]):.1f} % of one core over the job); "
              + ", ".join(f"{name} {seconds * 1000:.0f}" for seconds, name in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
