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

from worker_app import constants as C
from worker_app.client import LeaseLost, NotFound, Rejected, Unauthorized, Unreachable, backoff_delay

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
    last_error TEXT
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
    payload: dict
    attempts: int


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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_output(self, job_id: str, lease_id: str, name: str, path: Path, sha256: str) -> None:
        with self.changed:
            self._db.execute("INSERT OR IGNORE INTO outbox (job_id, lease_id, kind, name, path, sha256, created) "
                             "VALUES (?, ?, 'output', ?, ?, ?, ?)",
                             (job_id, lease_id, name, str(path), sha256, time.time()))
            self.changed.notify_all()

    def add_report(self, job_id: str, lease_id: str, kind: str, payload: dict) -> None:
        assert kind in TERMINAL
        with self.changed:
            self._db.execute("INSERT INTO outbox (job_id, lease_id, kind, payload, created) VALUES (?, ?, ?, ?, ?)",
                             (job_id, lease_id, kind, json.dumps(payload), time.time()))
            self.changed.notify_all()

    def next(self) -> Entry | None:
        """The oldest row: a job's outputs go before its report, jobs in the order they were written."""
        with self._lock:
            row = self._db.execute("SELECT * FROM outbox ORDER BY id LIMIT 1").fetchone()
        return None if row is None else _entry(row)

    def done(self, entry: Entry) -> None:
        with self.changed:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))
            self.changed.notify_all()

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
                return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE job_id = ?", (job_id,)).fetchone()[0]

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

    def wait_for_new(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)


def _entry(row) -> Entry:
    return Entry(id=row[0], job_id=row[1], lease_id=row[2], kind=row[3], name=row[4], path=row[5], sha256=row[6],
                 payload=json.loads(row[7]) if row[7] else {}, attempts=row[9])


class OutboxSender:
    """Sends the outbox's rows, oldest first, until each is acknowledged; on its own thread."""

    def __init__(self, outbox: Outbox, client, on_state=None, on_job_sent=None):
        self.outbox = outbox
        self.client = client
        self.on_state = on_state or (lambda offline, message, retry_at: None)
        self.on_job_sent = on_job_sent or (lambda job_id, kind: None)
        self.backoff = backoff_delay
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxSender:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self.outbox.changed:
            self.outbox.changed.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            entry = self.outbox.next()
            if entry is None:
                self.outbox.wait_for_new(5.0)
                continue
            self.send_one(entry)

    def send_one(self, entry: Entry) -> bool:
        """One attempt at one row; True when it left the outbox (sent, or dropped as hopeless)."""
        try:
            self._send(entry)
        except Unreachable as error:
            self.failures += 1
            self.outbox.failed_attempt(entry, str(error))
            delay = self.backoff(self.failures - 1, cap=C.BACKOFF_CAP)
            self.on_state(True, f"offline: {error}; retrying in {delay:.0f} s", time.time() + delay)
            self._stop.wait(delay)
            return False
        except (LeaseLost, NotFound) as error:
            dropped = self.outbox.drop_job(entry.job_id)
            log.warning("job %s: %s; %d unsent result(s) dropped: the server hands the job out again",
                        entry.job_id, error, dropped)
            self.on_job_sent(entry.job_id, "lost")
            return True
        except (Rejected, Unauthorized, OSError) as error:
            if isinstance(error, Unauthorized):
                self.failures += 1
                self.on_state(True, f"the server refused the worker token; sign in again ({error})", None)
                self._stop.wait(self.backoff(self.failures - 1))
                return False
            # Malformed or unreadable: sending it again cannot help. Keep going with the rest.
            log.error("job %s: dropping the unsendable %s: %s", entry.job_id, entry.kind, error)
            self.outbox.done(entry)
            return True
        if self.failures:
            self.on_state(False, "back online", None)
        self.failures = 0
        self.outbox.done(entry)
        if entry.kind in TERMINAL:
            self.on_job_sent(entry.job_id, entry.kind)
        return True

    def _send(self, entry: Entry) -> None:
        if entry.kind == "output":
            self.client.upload(entry.job_id, entry.lease_id, entry.name, Path(entry.path), entry.sha256)
        elif entry.kind == "complete":
            self.client.complete(entry.job_id, entry.lease_id, entry.payload["outputs"], entry.payload["stats"])
        elif entry.kind == "fail":
            p = entry.payload
            self.client.fail(entry.job_id, entry.lease_id, p["reason"], p.get("log_tail", ""),
                             p.get("retryable", False))
        elif entry.kind == "release":
            self.client.release(entry.job_id, entry.lease_id, entry.payload.get("reason", "released"))
