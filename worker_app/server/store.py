"""The reference server's state: jobs, leases, workers, outputs and token hashes in SQLite.

One connection guarded by one lock: every change is a short transaction, and a claim (requeue the
expired leases, pick the best queued job, lease it) is atomic, so a job is never held by two workers.
Waiting claims sleep on a condition that every change which can make work available notifies; there
is no sleep-polling.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from worker_app import constants as C
from worker_app.server.schema import (ADDED_COLUMNS, SCHEMA, TOKEN_KINDS, blender_key, hash_token,
                                      newest_blender)

class LeaseLost(Exception):
    """A call made with a lease that is no longer the job's current one."""


class Canceled(LeaseLost):
    """The lease ended because the web app canceled the job."""


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The call does not fit the job's state (canceling a finished job, say)."""


@dataclass
class Claimed:
    job_id: int
    lease_id: str
    attempt: int
    spec: dict
    expires: float
    outputs: list[dict]  # what an earlier attempt already uploaded: the worker skips those frames


class Store:
    def __init__(self, db_path: Path, lease_ttl: float = C.LEASE_TTL, clock=time.time):
        self.lease_ttl = lease_ttl
        self.heartbeat_interval = min(C.HEARTBEAT_INTERVAL, lease_ttl / 4)
        # A claim's answer can be lost on its way (a proxy cut it): until the worker's first heartbeat says
        # it has the job, the lease is short, and the job soon back in the queue if the answer never came.
        self.first_lease_ttl = min(lease_ttl, max(1.0, C.FIRST_LEASE_BEATS * self.heartbeat_interval))
        self.clock = clock
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._closed = False
        self._waiting: dict[str, int] = {}  # worker id -> claims of it waiting now
        self._cancel: set[str] = set()  # workers whose waiting claims should end now
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        for table, column, definition in ADDED_COLUMNS:
            if column not in {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._blender: dict[str, int] = {}  # worker id -> its newest Blender, as blender_key
        since = self.clock() - 86400
        # The newest Blender of any worker seen in the last day: a job that needs more waits for none.
        self._newest_known = max((newest_blender(json.loads(r["info"])) for r in self._db.execute(
            "SELECT info FROM workers WHERE last_seen > ?", (since,))), default=0)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.changed.notify_all()
            self._db.close()

    # -- tokens -------------------------------------------------------------------------------

    def create_token(self, kind: str, label: str = "") -> str:
        """Makes a new token and stores only its hash; the plain token is returned once."""
        assert kind in TOKEN_KINDS
        token = f"hf{kind[0]}_" + secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute("INSERT INTO tokens (hash, kind, label, created) VALUES (?, ?, ?, ?)",
                             (hash_token(token), kind, label, self.clock()))
        return token

    def has_tokens(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] > 0

    def check_token(self, token: str, kind: str) -> bool:
        digest = hash_token(token)
        with self._lock:
            rows = self._db.execute("SELECT hash FROM tokens WHERE kind = ?", (kind,)).fetchall()
        # Compare against every stored hash in constant time, not with an indexed lookup.
        found = False
        for row in rows:
            found |= hmac.compare_digest(row["hash"], digest)
        return found

    # -- workers ------------------------------------------------------------------------------

    def register_worker(self, name: str, info: dict) -> str:
        now = self.clock()
        worker_id = "w_" + secrets.token_hex(8)
        with self._lock:
            self._db.execute("INSERT INTO workers (id, name, info, first_seen, last_seen) "
                             "VALUES (?, ?, ?, ?, ?)", (worker_id, name, json.dumps(info), now, now))
            self._blender[worker_id] = newest_blender(info)
            self._newest_known = max(self._newest_known, self._blender[worker_id])
        return worker_id

    def _someone_has(self, key: int) -> bool:
        """Whether a worker seen lately has a Blender at least as new as ``key``."""
        return self._newest_known >= key

    def _worker_blender(self, worker_id: str) -> int:
        if worker_id not in self._blender:
            row = self._db.execute("SELECT info FROM workers WHERE id = ?", (worker_id,)).fetchone()
            self._blender[worker_id] = newest_blender(json.loads(row["info"])) if row else 0
        return self._blender[worker_id]

    def worker_exists(self, worker_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM workers WHERE id = ?", (worker_id,)).fetchone()
            if row:
                self._db.execute("UPDATE workers SET last_seen = ? WHERE id = ?",
                                 (self.clock(), worker_id))
        return row is not None

    def list_workers(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM workers ORDER BY last_seen DESC").fetchall()
        return [{"id": r["id"], "name": r["name"], "info": json.loads(r["info"]),
                 "last_seen": r["last_seen"]} for r in rows]

    # -- jobs: the web app's side -------------------------------------------------------------

    def submit(self, spec: dict, priority: int, max_attempts: int, tag: str | None) -> int:
        now = self.clock()
        min_blender = blender_key((spec.get("blender") or {}).get("min_version"))
        with self.changed:
            cur = self._db.execute(
                "INSERT INTO jobs (spec, tag, priority, max_attempts, min_blender, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (json.dumps(spec), tag, priority, max_attempts, min_blender, now,
                                                 now))
            self.changed.notify_all()
            return cur.lastrowid

    def get(self, job_id: int) -> dict:
        with self._lock:
            self._requeue_expired()
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job_id}")
            outputs = self._db.execute("SELECT name, sha256, size FROM outputs WHERE job_id = ? "
                                       "ORDER BY name", (job_id,)).fetchall()
        return self._view(row, outputs)

    def list(self, state: str | None = None, limit: int = 100) -> list[dict]:
        with self._lock:
            self._requeue_expired()
            if state:
                rows = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?",
                                        (state, limit)).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?",
                                        (limit,)).fetchall()
        return [self._view(row, None) for row in rows]

    def cancel(self, job_id: int) -> dict:
        now = self.clock()
        with self.changed:
            row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job_id}")
            if row["state"] in ("done", "failed", "canceled"):
                raise Conflict(f"job {job_id} is already {row['state']}")
            # A leased job stays canceled; its worker learns it at the next heartbeat and stops.
            self._db.execute("UPDATE jobs SET state = 'canceled', cancel_requested = 1, updated = ?, "
                             "finished = ?, lease_expires = NULL WHERE id = ?", (now, now, job_id))
        return self.get(job_id)

    # -- jobs: the worker's side --------------------------------------------------------------

    def claim(self, worker_id: str, wait: float) -> Claimed | None:
        """Leases the best queued job, waiting up to ``wait`` seconds for one to appear."""
        deadline = time.monotonic() + wait
        with self.changed:
            self._waiting[worker_id] = self._waiting.get(worker_id, 0) + 1
            try:
                return self._claim_waiting(worker_id, deadline)
            finally:
                self._waiting[worker_id] -= 1
                if not self._waiting[worker_id]:
                    del self._waiting[worker_id]
                    self._cancel.discard(worker_id)

    def cancel_claims(self, worker_id: str) -> bool:
        """Ends the worker's waiting claims now with no job (it paused or quits); False if none waits."""
        with self.changed:
            if worker_id not in self._waiting:
                return False
            self._cancel.add(worker_id)
            self.changed.notify_all()
            return True

    def _claim_waiting(self, worker_id: str, deadline: float) -> Claimed | None:
        while not self._closed:
            if worker_id in self._cancel:
                return None
            claimed = self._try_claim(worker_id)
            if claimed is not None:
                return claimed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            next_expiry = self._db.execute(
                "SELECT MIN(lease_expires) FROM jobs WHERE state = 'leased'").fetchone()[0]
            if next_expiry is not None:
                # Wake when the earliest lease runs out: its job goes back in the queue then.
                remaining = min(remaining, max(0.01, next_expiry - self.clock()))
            self.changed.wait(remaining)
        return None

    def _try_claim(self, worker_id: str) -> Claimed | None:
        self._requeue_expired()
        # A job that needs a newer Blender than this worker has waits for a worker that has it; when no worker
        # seen lately has it, any worker takes it and fails it with the reason, rather than it waiting forever.
        row = self._db.execute("SELECT id, spec, attempts FROM jobs WHERE state = 'queued' "
                               "AND (min_blender <= ? OR min_blender > ?) ORDER BY priority DESC, id LIMIT 1",
                               (self._worker_blender(worker_id), self._newest_known)).fetchone()
        if row is None:
            return None
        now = self.clock()
        lease_id = "l_" + secrets.token_urlsafe(16)
        expires = now + self.first_lease_ttl
        self._db.execute("UPDATE jobs SET state = 'leased', lease_id = ?, worker_id = ?, "
                         "lease_expires = ?, attempts = attempts + 1, claimed = ?, updated = ?, "
                         "progress = NULL WHERE id = ? AND state = 'queued'",
                         (lease_id, worker_id, expires, now, now, row["id"]))
        outputs = [dict(o) for o in self._db.execute(
            "SELECT name, sha256, size FROM outputs WHERE job_id = ? ORDER BY name", (row["id"],))]
        return Claimed(row["id"], lease_id, row["attempts"] + 1, json.loads(row["spec"]), expires, outputs)

    def _requeue_expired(self) -> None:
        now = self.clock()
        expired = self._db.execute("SELECT id, attempts, max_attempts FROM jobs "
                                   "WHERE state = 'leased' AND lease_expires < ?", (now,)).fetchall()
        for row in expired:
            if row["attempts"] >= row["max_attempts"]:
                self._db.execute("UPDATE jobs SET state = 'failed', lease_id = NULL, "
                                 "lease_expires = NULL, error = ?, updated = ?, finished = ? "
                                 "WHERE id = ?", (f"lease expired on attempt {row['attempts']} of "
                                                  f"{row['max_attempts']}", now, now, row["id"]))
            else:
                self._db.execute("UPDATE jobs SET state = 'queued', lease_id = NULL, worker_id = NULL, "
                                 "lease_expires = NULL, updated = ? WHERE id = ?", (now, row["id"]))
        if expired:
            self.changed.notify_all()

    def _leased_row(self, job_id: int, lease_id: str) -> sqlite3.Row:
        """The job's row if ``lease_id`` is its current, unexpired lease; else LeaseLost."""
        self._requeue_expired()
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row["lease_id"] != lease_id or row["state"] not in ("leased", "canceled"):
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id} "
                            f"(the job is {row['state']})")
        return row

    def heartbeat(self, job_id: int, lease_id: str, progress: dict) -> tuple[bool, float]:
        """Renews the lease; returns (cancel, seconds until it expires)."""
        now = self.clock()
        with self._lock:
            row = self._leased_row(job_id, lease_id)
            if row["state"] == "canceled":
                return True, 0.0
            self._db.execute("UPDATE jobs SET lease_expires = ?, progress = ?, updated = ? WHERE id = ?",
                             (now + self.lease_ttl, json.dumps(progress), now, job_id))
        return False, self.lease_ttl

    def check_lease(self, job_id: int, lease_id: str) -> None:
        with self._lock:
            row = self._leased_row(job_id, lease_id)
            if row["state"] == "canceled":
                raise Canceled(f"job {job_id} was canceled")

    def output(self, job_id: int, name: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT name, sha256, size FROM outputs WHERE job_id = ? AND name = ?",
                                   (job_id, name)).fetchone()
        return dict(row) if row else None

    def add_output(self, job_id: int, lease_id: str, name: str, sha256: str, size: int) -> None:
        with self._lock:
            self._leased_row(job_id, lease_id)
            self._db.execute("INSERT OR REPLACE INTO outputs (job_id, name, sha256, size, created) "
                             "VALUES (?, ?, ?, ?, ?)", (job_id, name, sha256, size, self.clock()))

    def complete(self, job_id: int, lease_id: str, outputs: list[str], stats: dict,
                 warnings: list[dict] | None = None) -> None:
        now = self.clock()
        with self._lock:
            row = self._leased_row(job_id, lease_id)
            if row["state"] == "canceled":
                raise Canceled(f"job {job_id} was canceled")
            stored = {r["name"] for r in self._db.execute(
                "SELECT name FROM outputs WHERE job_id = ?", (job_id,))}
            missing = [name for name in outputs if name not in stored]
            if missing:
                raise Conflict(f"outputs not uploaded: {', '.join(missing)}")
            self._db.execute("UPDATE jobs SET state = 'done', lease_id = NULL, lease_expires = NULL, "
                             "stats = ?, warnings = ?, updated = ?, finished = ?, error = NULL WHERE id = ?",
                             (json.dumps(stats), json.dumps(warnings or []), now, now, job_id))

    def fail(self, job_id: int, lease_id: str, reason: str, log_tail: str, retryable: bool,
             needs_blender: str | None = None) -> str:
        """Fails the attempt; a retryable failure with attempts left requeues the job. A scene saved by a
        newer Blender than the worker's goes back to the queue, attempt uncounted, when a worker seen in the
        last day has that Blender; with none, the job fails with the reason."""
        now = self.clock()
        with self.changed:
            row = self._leased_row(job_id, lease_id)
            if row["state"] == "canceled":
                return "canceled"
            if needs_blender and self._someone_has(blender_key(needs_blender)):
                self._db.execute("UPDATE jobs SET state = 'queued', lease_id = NULL, worker_id = NULL, "
                                 "lease_expires = NULL, attempts = MAX(attempts - 1, 0), error = ?, log_tail = ?, "
                                 "min_blender = MAX(min_blender, ?), updated = ? WHERE id = ?",
                                 (f"{reason}; waiting for a worker with Blender {needs_blender} or newer", log_tail,
                                  blender_key(needs_blender), now, job_id))
                self.changed.notify_all()
                return "queued"
            state = "queued" if retryable and row["attempts"] < row["max_attempts"] else "failed"
            self._db.execute("UPDATE jobs SET state = ?, lease_id = NULL, worker_id = NULL, "
                             "lease_expires = NULL, error = ?, log_tail = ?, updated = ?, finished = ? "
                             "WHERE id = ?", (state, reason, log_tail, now,
                                              None if state == "queued" else now, job_id))
            if state == "queued":
                self.changed.notify_all()
        return state

    def release(self, job_id: int, lease_id: str, reason: str) -> None:
        """Gives the job back unfinished; a release does not count as an attempt."""
        now = self.clock()
        with self.changed:
            row = self._leased_row(job_id, lease_id)
            if row["state"] == "canceled":
                return
            self._db.execute("UPDATE jobs SET state = 'queued', lease_id = NULL, worker_id = NULL, "
                             "lease_expires = NULL, attempts = MAX(attempts - 1, 0), "
                             "progress = ?, updated = ? WHERE id = ?",
                             (json.dumps({"message": reason}), now, job_id))
            self.changed.notify_all()

    # -- views --------------------------------------------------------------------------------

    @staticmethod
    def _view(row: sqlite3.Row, outputs) -> dict:
        view = {
            "id": str(row["id"]),
            "state": row["state"],
            "tag": row["tag"],
            "priority": row["priority"],
            "attempts": row["attempts"],
            "max_attempts": row["max_attempts"],
            "worker_id": row["worker_id"],
            "progress": json.loads(row["progress"]) if row["progress"] else None,
            "error": row["error"],
            "stats": json.loads(row["stats"]) if row["stats"] else None,
            "warnings": json.loads(row["warnings"]) if row["warnings"] else [],
            "created": row["created"],
            "updated": row["updated"],
            "claimed": row["claimed"],
            "finished": row["finished"],
            "spec": json.loads(row["spec"]),
        }
        if outputs is not None:
            view["outputs"] = [dict(o) for o in outputs]
            view["log_tail"] = row["log_tail"]
        return view
