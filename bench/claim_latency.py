"""How fast a submitted job reaches a worker waiting in its long poll.

A reference server runs in its own process on loopback. A worker thread waits in `claim`; the main
thread submits a job; the time from the start of the submission until the worker holds the lease is
measured over many rounds. The baseline, measured in the same run, is one plain authenticated
request round trip (`GET /api/worker/v1/ping`) to the same server: the floor for any HTTP exchange.

    python bench/claim_latency.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from worker_app import protocol as P
from worker_app.app_client import AppClient
from worker_app.client import WorkerClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.server_process import start_server  # noqa: E402

SCENE = {"url": "/api/worker/v1/assets/" + "c" * 64, "sha256": "c" * 64, "size": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(data_dir)
        url = server.url
        try:
            app = AppClient(url, server.app_token)
            worker = WorkerClient(url, server.worker_token)
            worker_id = worker.hello(P.Hello(name="bench", os=sys.platform, app_version="0")).worker_id

            baseline = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                worker.ping()
                baseline.append(time.perf_counter() - started)

            latencies = []
            for _ in range(args.rounds):
                got = threading.Event()
                held = {}

                def wait_for_job():
                    lease = worker.claim(worker_id, 30)
                    held["at"] = time.perf_counter()
                    held["lease"] = lease
                    got.set()

                thread = threading.Thread(target=wait_for_job)
                thread.start()
                time.sleep(0.02)  # let the claim reach the server and wait there
                started = time.perf_counter()
                app.submit({"scene": SCENE})
                got.wait(30)
                thread.join()
                assert held["lease"] is not None, "the claim timed out"
                latencies.append(held["at"] - started)
                worker.release(held["lease"].job_id, held["lease"].lease_id, "benchmark")
                app.cancel(held["lease"].job_id)
        finally:
            server.stop()

    ms = 1000.0
    base_median = statistics.median(baseline)
    median = statistics.median(latencies)
    print(f"rounds: {args.rounds}, server: {url} (separate process)")
    print(f"baseline, one authenticated request round trip: median {base_median * ms:.2f} ms, "
          f"p95 {percentile(baseline, 0.95) * ms:.2f} ms")
    print(f"submit -> worker holds the lease:              median {median * ms:.2f} ms, "
          f"p95 {percentile(latencies, 0.95) * ms:.2f} ms")
    print(f"ratio to baseline (median): {median / base_median:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
