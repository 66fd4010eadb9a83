"""What an idle job server costs its database: statements an hour with no worker, and with one worker waiting
in its long polls, on MariaDB (the MySQL protocol, as TiDB Serverless meters it in Request Units) and
PostgreSQL, counted by the engine itself (MariaDB's Questions, which include every COMMIT, ROLLBACK and SET;
PostgreSQL's pg_stat_statements). Each engine is started for the run, so nothing else is counted.

The server runs as it ships, with its real cadences (the reaper and the webhook sender look every 10 minutes
when nothing is held or due, retention every 15, a waiting claim asks the database only when a job may be
there); so the window must be long enough to see each at least once. The budget it is measured against, in
the same run: 60 statements an hour with no worker, 120 with one waiting (docs/server.md, "What idle costs").

    python bench/idle_cost.py [--minutes 20] [--engines mariadb,postgresql]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from worker_app import protocol as P
from worker_app.client import WorkerClient
from worker_app.server import JobServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.engines import Engine  # noqa: E402

BUDGET = {0: 60, 1: 120}  # statements an hour, by waiting workers


def measure(kind: str, minutes: float, results: dict[str, list[tuple[int, int, float]]]) -> None:
    engine = Engine.start(kind)
    try:
        db_url = engine.new_database()
        count = engine.statement_counter(db_url)
        with tempfile.TemporaryDirectory() as data_dir:
            server = JobServer(Path(data_dir), db_url=db_url).start()
            try:
                token = server.store.create_token("worker", "bench")
                client = WorkerClient(server.url, token)
                worker_id = client.hello(P.Hello(name="bench", os="linux", app_version="0")).worker_id
                time.sleep(5)  # start-up's statements (schema check, first reaper and retention rounds) settle
                for waiting in (0, 1):
                    stop = threading.Event()
                    poller = None
                    if waiting:
                        def poll() -> None:
                            while not stop.is_set():
                                client.claim(worker_id, 20)  # the worker's own wait
                        poller = threading.Thread(target=poll, daemon=True)
                        poller.start()
                    before, started = count(), time.monotonic()
                    time.sleep(minutes * 60)
                    after, elapsed = count(), time.monotonic() - started
                    stop.set()
                    if poller is not None:
                        client.cancel_claim(worker_id)
                        poller.join(30)
                    results.setdefault(kind, []).append((waiting, after - before, elapsed))
            finally:
                server.stop()
    finally:
        engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="each window (default 20)")
    parser.add_argument("--engines", default="mariadb,postgresql")
    args = parser.parse_args()
    results: dict[str, list[tuple[int, int, float]]] = {}
    threads = [threading.Thread(target=measure, args=(kind, args.minutes, results))
               for kind in args.engines.split(",")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"idle job server, windows of {args.minutes:g} min, statements counted by the engine")
    ok = True
    for kind, rows in sorted(results.items()):
        for waiting, statements, elapsed in rows:
            per_hour = statements * 3600 / elapsed
            budget = BUDGET[waiting]
            ok = ok and per_hour <= budget
            print(f"  {kind:<10}  {waiting} worker(s) waiting: {statements:4d} statements in {elapsed / 60:.1f} min"
                  f" = {per_hour:6.1f}/hour  budget {budget}/hour  ratio {per_hour / budget:.2f}")
    return 0 if ok and len(results) == len(threads) else 1


if __name__ == "__main__":
    sys.exit(main())
