"""What the dashboard costs the server: the jobs page's answer with 10,000 jobs in the database, and 20 event
streams left open while nothing happens (database statements, CPU).

The server runs in this process on SQLite (or `--postgresql`, an engine started for the run, whose statements
pg_stat_statements counts). The jobs page's baseline, in the same run, is the API's own page of jobs
(`GET /api/v1/jobs?limit=50`) against the same data: the dashboard's JSON should cost about what the API's does.

    python bench/dashboard.py [--jobs 10000] [--rounds 50] [--streams 20] [--seconds 60] [--postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from worker_app.server import JobServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.engines import Engine  # noqa: E402

SCENE = {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 1}


def timed(session: requests.Session, url: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = session.get(url, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:200]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    engine = Engine.start("postgresql") if args.postgresql else None
    with tempfile.TemporaryDirectory() as data_dir:
        db_url = engine.new_database() if engine else None
        server = JobServer(Path(data_dir), db_url=db_url).start()
        try:
            store = server.store
            for i in range(args.jobs):
                store.submit({"scene": SCENE, "render": {"frames": [1]}}, 0, 3, f"tag-{i % 7}")
            worker = store.register_worker("pc", {})
            for _ in range(min(1000, args.jobs)):  # a tenth of the jobs rendered: attempts for the worker filter
                claimed = store.claim(worker)
                assert claimed is not None
                store.complete(claimed.job_id, claimed.lease_id, [], {"render_s": 1.0})
            last_lease_ends = time.monotonic() + store.first_lease_ttl
            app = requests.Session()
            app.headers["Authorization"] = "Bearer " + store.create_token("app", "bench")
            dash = requests.Session()
            token = store.create_token("dashboard", "bench")
            signed = dash.post(server.url + "/dashboard/sign-in", data={"token": token}, allow_redirects=False)
            assert signed.status_code == 303 and "hf_dashboard" in dash.cookies, "signed in"
            timed(dash, server.url + "/dashboard/api/jobs", 5)  # warm
            page = timed(dash, server.url + "/dashboard/api/jobs", args.rounds)
            page_state = timed(dash, server.url + "/dashboard/api/jobs?state=queued", args.rounds)
            page_words = timed(dash, server.url + "/dashboard/api/jobs?q=TAG-3", args.rounds)
            page_worker = timed(dash, server.url + "/dashboard/api/jobs?worker=pc", args.rounds)
            base = timed(app, server.url + "/api/v1/jobs?limit=50", args.rounds)
            print(f"jobs page, {args.jobs} jobs in {'PostgreSQL' if engine else 'SQLite'}, {args.rounds} rounds:")
            print(f"  dashboard /dashboard/api/jobs          median {statistics.median(page):6.2f} ms  "
                  f"max {max(page):6.2f} ms  ratio {statistics.median(page) / statistics.median(base):.2f}")
            print(f"  dashboard, state=queued               median {statistics.median(page_state):6.2f} ms  "
                  f"max {max(page_state):6.2f} ms")
            print(f"  dashboard, q=TAG-3 (words in any job)  median {statistics.median(page_words):6.2f} ms  "
                  f"max {max(page_words):6.2f} ms")
            print(f"  dashboard, worker=pc (1,000 attempts)  median {statistics.median(page_worker):6.2f} ms  "
                  f"max {max(page_worker):6.2f} ms")
            print(f"  baseline GET /api/v1/jobs?limit=50    median {statistics.median(base):6.2f} ms  "
                  f"max {max(base):6.2f} ms  ratio 1.00")

            count = engine.statement_counter(db_url) if engine else None
            opened = threading.Barrier(args.streams + 1)
            stop = threading.Event()

            def listen() -> None:
                with dash.get(server.url + "/dashboard/events", stream=True, timeout=args.seconds + 30) as events:
                    opened.wait()
                    for _ in events.iter_lines():
                        if stop.is_set():
                            return
            readers = [threading.Thread(target=listen, daemon=True) for _ in range(args.streams)]
            for reader in readers:
                reader.start()
            opened.wait()
            # The reaper looks once more when the last lease the setup made would have run out: the farm is
            # idle from then on.
            time.sleep(max(2.0, last_lease_ends - time.monotonic() + 2))
            process = psutil.Process()
            before_cpu, before = sum(process.cpu_times()[:2]), count() if count else None
            time.sleep(args.seconds)
            cpu = sum(process.cpu_times()[:2]) - before_cpu
            statements = (count() - before) if count else None
            stop.set()
            print(f"{server.dashboard_streams.count} event streams open {args.seconds:g} s with nothing happening:")
            print(f"  CPU of the whole process (server and the bench's readers): {100 * cpu / args.seconds:.2f} % "
                  f"of one core")
            print("  database statements: " + (f"{statements} ({statements * 3600 / args.seconds:.0f} an hour)"
                                              if statements is not None else "not counted on SQLite (use --postgresql)"))
        finally:
            server.stop()
    if engine:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
