"""Many workers on one server: claims per second and claim latency under load.

A reference server runs in its own process on loopback. N simulated workers (threads, each with its own
HTTP session) long-poll it; J jobs are submitted in one burst; each worker claims, uploads a small output
and completes until the queue is empty. Every job must be done exactly once. The baseline, measured in
the same run on the same server, is one worker alone doing the same J/N jobs' worth of claims.

    python bench/claim_load.py [--workers 50] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from worker_app import protocol as P
from worker_app.app_client import AppClient
from worker_app.client import WorkerClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from claim_latency import percentile  # noqa: E402
from server_process import start_server  # noqa: E402

SCENE = {"url": "/api/worker/v1/assets/" + "c" * 64, "sha256": "c" * 64, "size": 1}


def drain(url: str, token: str, workers: int, payload: Path) -> tuple[list[str], list[float], float]:
    """Workers claim until the queue is empty; returns the job ids done, claim latencies, elapsed."""
    sha = hashlib.sha256(payload.read_bytes()).hexdigest()
    done, latencies, lock = [], [], threading.Lock()

    def worker(n: int) -> None:
        client = WorkerClient(url, token)
        worker_id = client.hello(P.Hello(name=f"bench-{n}", os=sys.platform, app_version="0")).worker_id
        while True:
            started = time.perf_counter()
            lease = client.claim(worker_id, 1)
            if lease is None:
                break
            took = time.perf_counter() - started
            client.upload(lease.job_id, lease.lease_id, payload.name, payload, sha)
            client.complete(lease.job_id, lease.lease_id, [payload.name], {})
            with lock:
                done.append(lease.job_id)
                latencies.append(took)
        client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done, latencies, time.perf_counter() - started - 1.0  # the last empty claim waits 1 s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(data_dir)
        url, worker_token = server.url, server.worker_token
        try:
            app = AppClient(url, server.app_token)
            payload = Path(data_dir) / "frame_0001.png"
            payload.write_bytes(b"\x89PNG small output")
            baseline_jobs = max(1, args.jobs // args.workers)
            ids = [app.submit({"scene": SCENE})["id"] for _ in range(baseline_jobs)]
            base_done, base_lat, base_s = drain(url, worker_token, 1, payload)
            assert sorted(base_done) == sorted(ids)
            ids = [app.submit({"scene": SCENE})["id"] for _ in range(args.jobs)]
            done, lat, elapsed = drain(url, worker_token, args.workers, payload)
        finally:
            server.stop()
    twice = len(done) - len(set(done))
    missing = set(ids) - set(done)
    ms = 1000
    print(f"server in its own process; {args.workers} workers, {args.jobs} jobs")
    print(f"baseline, 1 worker: {len(base_done) / base_s:.0f} jobs/s, claim median {statistics.median(base_lat) * ms:.2f} ms")
    print(f"{args.workers} workers: {len(done) / elapsed:.0f} jobs/s (claim + upload + complete), "
          f"claim median {statistics.median(lat) * ms:.2f} ms, p95 {percentile(lat, 0.95) * ms:.2f} ms")
    print(f"throughput ratio to one worker: {(len(done) / elapsed) / (len(base_done) / base_s):.2f}x")
    print(f"jobs done twice: {twice}, jobs never done: {len(missing)}")
    return 1 if twice or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
