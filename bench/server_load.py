"""The job server under load: 50 workers draining 1,000 jobs (claim, upload, complete), on any database.

`homefarm serve` runs in its own process(es) on loopback, on the database given; with `--processes 2`, two
servers share it and the workers are split between them. The workers are threads in two client processes,
each speaking HTTP/1.1 with keep-alive through the standard library's `http.client` (the worker's own
`requests` client costs more CPU per call, and on a 2-core machine the load generator's CPU is the
server's). Every job must be done exactly once: the ids the workers completed are checked for repeats and
gaps, and the database for jobs not done or done on a second attempt.

Then pick-up latency: a worker waits in its long poll on the last server process; a job is submitted to the
first; the time from the submission's start until the worker holds the lease (across processes with two).

Baseline, measured in the same run against the same servers: the same workers sending plain authenticated
`GET /api/worker/v1/ping` round trips, three per job, i.e. the HTTP stack's own ceiling.

    python bench/server_load.py [--db URL | --postgresql | --mariadb] [--processes 2] [--workers 50] [--jobs 1000]

`--postgresql`/`--mariadb` start a real server with durable settings (fsync on) in a temp dir, as the tests do.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from claim_latency import percentile  # noqa: E402
from support.server_process import start_server  # noqa: E402

SCENE = {"url": "/api/worker/v1/assets/" + "c" * 64, "sha256": "c" * 64, "size": 1}
PAYLOAD = b"\x89PNG a small output" * 20
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Http:
    """One keep-alive connection, as a worker holds."""

    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.auth = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        hdrs = {**self.auth, **(headers or {})}
        if isinstance(body, dict):
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=hdrs)
        response = self.conn.getresponse()
        raw = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:200]!r}")
        return response.status, json.loads(raw) if raw else None


def _worker(url: str, token: str, n: int, mode: str, rounds: int, out: list, lock: threading.Lock) -> None:
    http_ = Http(url, token)
    worker_id = http_.call("POST", "/api/worker/v1/hello", {"name": f"bench-{n}", "os": "linux",
                                                            "app_version": "0"})[1]["worker_id"]
    if mode == "ping":
        for _ in range(rounds):
            http_.call("GET", "/api/worker/v1/ping")
        return
    while True:
        started = time.perf_counter()
        status, lease = http_.call("POST", "/api/worker/v1/jobs/claim?wait=0", {"worker_id": worker_id})
        if status == 204:
            return
        took = time.perf_counter() - started
        job, lease_id = lease["job_id"], lease["lease_id"]
        http_.call("PUT", f"/api/worker/v1/jobs/{job}/outputs/frame_0001.png", PAYLOAD,
                   {"X-Lease-Id": lease_id, "X-Content-SHA256": PAYLOAD_SHA})
        http_.call("POST", f"/api/worker/v1/jobs/{job}/complete", {"lease_id": lease_id,
                                                                   "outputs": ["frame_0001.png"], "stats": {}})
        with lock:
            out.append((job, took))


def _client_process(urls: list[str], token: str, first: int, count: int, mode: str, rounds: int, start_at: float):
    """One load-generating process: ``count`` worker threads, started together at ``start_at``."""
    out, lock = [], threading.Lock()
    threads = [threading.Thread(target=_worker, args=(urls[(first + i) % len(urls)], token, first + i, mode, rounds,
                                                      out, lock)) for i in range(count)]
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out, time.perf_counter() - started


def run_load(urls, token, workers, mode, rounds=0) -> tuple[list, float]:
    """Runs ``workers`` workers split over two client processes; returns (what they did, seconds)."""
    half = workers // 2
    start_at = time.time() + 1.0
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        parts = [pool.apply_async(_client_process, (urls, token, first, count, mode, rounds, start_at))
                 for first, count in ((0, half), (half, workers - half))]
        results = [p.get(600) for p in parts]
    return [item for out, _ in results for item in out], max(seconds for _, seconds in results)


def _cpu_seconds(servers) -> tuple[float, float]:
    """CPU time used so far by the server processes, and by the whole machine (all its busy time)."""
    server = sum(sum(psutil.Process(s.proc.pid).cpu_times()[:4]) for s in servers)
    times = psutil.cpu_times()
    return server, sum(times) - times.idle - getattr(times, "iowait", 0.0)


def pickup_latency(urls: list[str], app_token: str, worker_token: str, rounds: int) -> list[float]:
    submitter, waiter = Http(urls[0], app_token), Http(urls[-1], worker_token)
    worker_id = waiter.call("POST", "/api/worker/v1/hello", {"name": "waiter", "os": "linux",
                                                             "app_version": "0"})[1]["worker_id"]
    times = []
    for _ in range(rounds):
        got = {}

        def wait():
            got["lease"] = waiter.call("POST", "/api/worker/v1/jobs/claim?wait=10", {"worker_id": worker_id})[1]
            got["at"] = time.perf_counter()

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.05)  # the claim is waiting now
        started = time.perf_counter()
        submitter.call("POST", "/api/v1/jobs", {"scene": SCENE})
        thread.join(15)
        times.append(got["at"] - started)
        lease = got["lease"]
        waiter.call("POST", f"/api/worker/v1/jobs/{lease['job_id']}/complete",
                    {"lease_id": lease["lease_id"], "outputs": [], "stats": {}})
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", help="the database URL (default: SQLite in a temp dir)")
    where.add_argument("--postgresql", action="store_true", help="start a PostgreSQL server for the run")
    where.add_argument("--mariadb", action="store_true", help="start a MariaDB server for the run")
    parser.add_argument("--processes", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=100, help="pick-up latency rounds")
    args = parser.parse_args()

    engine = None
    if args.postgresql or args.mariadb:
        from support.engines import Engine
        engine = Engine.start("postgresql" if args.postgresql else "mariadb", durable=True)
        args.db = engine.new_database()
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in range(args.processes):
                extra = ["--db", args.db] if args.db else []
                if not args.db and n:
                    extra = ["--db", f"sqlite:///{Path(tmp) / 's0' / 'homefarm-server.sqlite3'}"]
                servers.append(start_server(Path(tmp) / f"s{n}", extra_args=extra, quiet=True))
            urls = [s.url for s in servers]
            app_token, worker_token = servers[0].app_token, servers[0].worker_token
            submitter = Http(urls[0], app_token)
            ids = [submitter.call("POST", "/api/v1/jobs", {"scene": SCENE})[1]["id"] for _ in range(args.jobs)]
            cpu_before = _cpu_seconds(servers)
            done, elapsed = run_load(urls, worker_token, args.workers, "jobs")
            server_cpu, machine_cpu = (after - before for after, before in zip(_cpu_seconds(servers), cpu_before))
            rounds = max(1, 3 * args.jobs // args.workers)
            _, ping_s = run_load(urls, worker_token, args.workers, "ping", rounds)
            states = {}
            attempts = []
            for job_id in ids:
                view = submitter.call("GET", f"/api/v1/jobs/{job_id}")[1]
                states[view["state"]] = states.get(view["state"], 0) + 1
                attempts.append(view["attempts"])
            pickup = pickup_latency(urls, app_token, worker_token, args.rounds)
        finally:
            for server in servers:
                server.stop()
            if engine:
                engine.stop()

    done_ids = [job for job, _ in done]
    claims = [took for _, took in done]
    twice = len(done_ids) - len(set(done_ids))
    never = len(set(ids) - set(done_ids))
    once = not twice and not never and states == {"done": len(ids)} and set(attempts) == {1}
    jobs_s = len(done_ids) / elapsed
    ping_jobs_s = args.workers * rounds / 3 / ping_s
    ms = 1000
    database = ("MariaDB" if args.mariadb else "PostgreSQL" if args.postgresql else
                "SQLite" if not args.db else args.db.split(":")[0].split("+")[0])
    print(f"{database}, {args.processes} server process(es), {args.workers} workers, {args.jobs} jobs")
    print(f"jobs: {jobs_s:.0f} jobs/s (claim + upload + complete); claim median {statistics.median(claims) * ms:.2f} ms, "
          f"p95 {percentile(claims, 0.95) * ms:.2f} ms")
    print(f"CPU per job: server process(es) {server_cpu / len(done_ids) * ms:.2f} ms, whole machine "
          f"{machine_cpu / len(done_ids) * ms:.2f} ms (of {psutil.cpu_count()} cores; the steadier figure when "
          f"jobs/s varies from run to run)")
    print(f"baseline: {ping_jobs_s:.0f} jobs/s worth of authenticated pings (3 per job); ratio {jobs_s / ping_jobs_s:.2f}")
    across = "on another server process" if args.processes > 1 else "on the same server process"
    print(f"pick-up, worker waiting {across}: median {statistics.median(pickup) * ms:.2f} ms, "
          f"p95 {percentile(pickup, 0.95) * ms:.2f} ms over {len(pickup)} rounds")
    print("each job done once" if once else
          f"NOT each job done once: {twice} twice, {never} never, states {states}, attempts {sorted(set(attempts))}")
    return 0 if once else 1


if __name__ == "__main__":
    raise SystemExit(main())
