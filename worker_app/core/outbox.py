"""The durable outbox: everything the server must learn is written here first, then sent until acknowledged.

An output, a complete, a fail or a release is a row in SQLite (``outbox.sqlite3`` in the data dir) before any
attempt to send it, so a crash, a reboot or a dead network loses nothing: the ``OutboxSender`` thread sends
rows in order, job by job, backing off exponentially with jitter while the server is unreachable, and
deletes a row only when the server has acknowledged it (an output by its SHA-256). Output files stay on disk
until then. A job whose lease the server says is gone has its rows dropped: the server already gave the job
to another worker or to the queue, which renders only what it does not have yet.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from worker_app import constants as C
from worker_app import protocol as P
from worker_app.client import LeaseLost, NotFound, Rejected, Unauthorized, Unreachable, backoff_delay
from worker_app.core.events import LinkChanged, ResultsSent, SentKind

if TYPE_CHECKING:
    from worker_app.core.ports import ClientPort

log = logging.getLogger("homefarm.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    kind TEXT NOT NULL,           -- output, complete, fail, release
    name TEXT,                    -- output: its name on the server
    path TEXT,                    -- output: the file on disk
    sha256 TEXT,                  -- output: its content
    payload TEXT,                 -- complete/fail/release: the call's fields
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    upload TEXT                   -- output sent straight to S3: its upload id and the parts sent so far
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_output ON outbox (job_id, kind, name) WHERE kind = 'output';
"""
TERMINAL = ("complete", "fail", "release")


@dataclass(frozen=True)
class Entry:
    id: int
    job_id: str
    lease_id: str
    kind: str
    name: str | None
    path: str | None
    sha256: str | None
    payload: dict[str, Any]
    attempts: int
    upload: dict[str, Any]

    def report(self) -> P.CompleteReport | P.FailReport | P.ReleaseReport:
        return P.REPORTS[self.kind](**self.payload)


class Outbox:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a row written is a row kept, through a power cut
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "upload" not in columns:  # an outbox from an earlier release
            self._db.execute("ALTER TABLE outbox ADD COLUMN upload TEXT")
        self._gone: set[tuple[str, str]] = set()  # (job, lease) the server said are over: nothing more is kept

    def forget(self, job_id: str, lease_id: str) -> int:
        """The lease is over (lost or canceled): drops the job's rows and refuses new ones for that lease."""
        with self.changed:
            self._gone.add((job_id, lease_id))
        return self.drop_job(job_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_output(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str) -> None:
        with self.changed:
            if (job_id, lease_id) in self._gone:
                return
            self._db.execute("INSERT OR IGNORE INTO outbox (job_id, lease_id, kind, name, path, sha256, created) "
                             "VALUES (?, ?, 'output', ?, ?, ?, ?)",
                             (job_id, lease_id, name, str(path), sha256, time.time()))
            self.changed.notify_all()

    def add_report(self, job_id: str, lease_id: str, report: P.CompleteReport | P.FailReport | P.ReleaseReport) -> None:
        with self.changed:
            if (job_id, lease_id) in self._gone:
                return
            self._db.execute("INSERT INTO outbox (job_id, lease_id, kind, payload, created) VALUES (?, ?, ?, ?, ?)",
                             (job_id, lease_id, report.kind, json.dumps(report.to_json()), time.time()))
            self.changed.notify_all()

    def next(self) -> Entry | None:
        """The oldest row: a job's outputs go before its report, jobs in the order they were written."""
        with self._lock:
            row = self._first()
        return None if row is None else _entry(row)

    def wait_next(self, timeout: float, stopping: Callable[[], bool] = lambda: False) -> Entry | None:
        """The oldest row; when there is none, waits up to ``timeout`` for one to be added, unless
        ``stopping()``. The look and the wait hold one lock, which ``add_*`` (and a sender's stop) take to
        notify: a row added just after an empty look wakes the wait instead of sitting out the timeout (a
        looked-then-waited outbox once held a job's results 5 s, and a stopping worker 5 s more)."""
        with self.changed:
            row = self._first()
            if row is None and not stopping():
                self.changed.wait(timeout)
                row = self._first()
        return None if row is None else _entry(row)

    def _first(self) -> tuple[Any, ...] | None:
        """The oldest row as stored; the caller holds the lock."""
        row: tuple[Any, ...] | None = self._db.execute("SELECT * FROM outbox ORDER BY id LIMIT 1").fetchone()
        return row

    def done(self, entry: Entry) -> None:
        with self.changed:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))
            self.changed.notify_all()

    def save_upload(self, entry: Entry, state: dict[str, Any]) -> None:
        """Keeps how far a direct upload got, so that a restart resumes it."""
        with self._lock:
            self._db.execute("UPDATE outbox SET upload = ? WHERE id = ?", (json.dumps(state), entry.id))

    def failed_attempt(self, entry: Entry, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                             (error[:500], entry.id))

    def drop_job(self, job_id: str) -> int:
        with self.changed:
            count = self._db.execute("DELETE FROM outbox WHERE job_id = ?", (job_id,)).rowcount
            self.changed.notify_all()
            return count

    def pending(self, job_id: str | None = None) -> int:
        with self._lock:
            if job_id is None:
                return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE job_id = ?", (job_id,)).fetchone()[0])

    def has_report(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM outbox WHERE job_id = ? AND kind IN (?, ?, ?)",
                                    (job_id, *TERMINAL)).fetchone() is not None

    def wait_until_sent(self, job_id: str | None, timeout: float) -> bool:
        """Waits until nothing (of ``job_id``) is pending; False at the timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                query = "SELECT COUNT(*) FROM outbox" + (" WHERE job_id = ?" if job_id else "")
                if self._db.execute(query, (job_id,) if job_id else ()).fetchone()[0] == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(min(remaining, 0.5))


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(id=row[0], job_id=row[1], lease_id=row[2], kind=row[3], name=row[4], path=row[5], sha256=row[6],
                 payload=json.loads(row[7]) if row[7] else {}, attempts=row[9],
                 upload=json.loads(row[11]) if len(row) > 11 and row[11] else {})


class OutboxSender:
    """Sends the outbox's rows, oldest first, until each is acknowledged; on its own thread.

    It tells the worker loop what happens through ``post``: the link (offline, back online) and each job
    whose results left the outbox (``ResultsSent``: complete, fail, release, lost, canceled).
    """

    def __init__(self, outbox: Outbox, client: ClientPort, post: Callable[[object], None] | None = None):
        self.outbox = outbox
        self.client = client
        self.post = post or (lambda event: None)
        self.backoff = backoff_delay
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxSender:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self.outbox.changed:  # under the lock wait_next looks under: the sender cannot miss it
            self._stop.set()
            self.outbox.changed.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            entry = self.outbox.wait_next(5.0, self._stop.is_set)
            if entry is not None and not self._stop.is_set():
                self.send_one(entry)

    def send_one(self, entry: Entry) -> bool:
        """One attempt at one row; True when it left the outbox (sent, or dropped as hopeless)."""
        try:
            self._send(entry)
        except Unreachable as error:
            self.failures += 1
            self.outbox.failed_attempt(entry, str(error))
            delay = self.backoff(self.failures - 1, cap=C.BACKOFF_CAP)
            log.warning("could not send the %s of job %s: %s; retrying in %.0f s", entry.kind, entry.job_id,
                        error, delay)
            self.post(LinkChanged(online=False, detail=str(error), retry_at=time.time() + delay))
            self._stop.wait(delay)
            return False
        except (LeaseLost, NotFound) as error:
            canceled = isinstance(error, LeaseLost) and error.canceled
            dropped = self.outbox.forget(entry.job_id, entry.lease_id)
            log.warning("job %s: %s; %d unsent result(s) dropped: %s", entry.job_id, error, dropped,
                        "the job was canceled" if canceled else "the server hands the job out again")
            self.post(ResultsSent(entry.job_id, SentKind.CANCELED if canceled else SentKind.LOST))
            return True
        except Unauthorized as error:
            self.failures += 1
            self.post(LinkChanged(online=False, unauthorized=True, detail=str(error)))
            self._stop.wait(self.backoff(self.failures - 1))
            return False
        except (Rejected, OSError) as error:
            # Malformed or unreadable: sending it again cannot help. Keep going with the rest.
            log.error("job %s: dropping the unsendable %s: %s", entry.job_id, entry.kind, error)
            self.outbox.done(entry)
            return True
        if self.failures:
            self.post(LinkChanged(online=True))
        self.failures = 0
        self.outbox.done(entry)
        if entry.kind in TERMINAL:
            self.post(ResultsSent(entry.job_id, SentKind(entry.kind)))
        return True

    def _send(self, entry: Entry) -> None:
        if entry.kind == "output":
            assert entry.path is not None and entry.name is not None and entry.sha256 is not None
            self.client.upload(entry.job_id, entry.lease_id, entry.name, Path(entry.path), entry.sha256,
                               state=entry.upload, save=lambda state: self.outbox.save_upload(entry, state))
        else:
            self.client.report(entry.job_id, entry.lease_id, entry.report())
