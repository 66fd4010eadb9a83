"""The job server's state: jobs, leases, workers, outputs and token hashes, on SQLite, PostgreSQL or MySQL/TiDB.

Every call is one short transaction; none is held open while a claim waits (the waiting is the HTTP
layer's, ``server/wakeups.py``). A claim leases a job with a compare-and-set ``UPDATE … WHERE id = ? AND
state = 'queued'`` checked by its row count, so a job is leased once on every engine, TiDB included (it
parses ``FOR UPDATE SKIP LOCKED`` but does not lock). Several server processes may share one database:
whichever sees an expired lease first puts its job back in the queue.

Each change that can make work available is announced: to this process's waiting claims through
``listeners``, and on PostgreSQL to the other processes' through ``NOTIFY homefarm`` in the same
transaction (delivered only if it commits).
"""

from __future__ import annotations

import base64
import enum
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from worker_app import constants as C
from worker_app.server.schema import (ANY_BLENDER, TOKEN_KINDS, blender_key, hash_token, idempotency, jobs,
                                      migrate, newest_blender, outputs, tokens, webhooks, workers)

NOTIFY_CHANNEL = "homefarm"


class WakeKind(enum.StrEnum):
    JOBS = "jobs"  # work may be available
    CANCEL = "cancel"  # one worker's waiting claims end now (it paused or quits)
    CLOSING = "closing"  # this server process shuts down: every waiting claim ends now


@dataclass(frozen=True)
class Wakeup:
    """What wakes waiting claims, in this process (the store's listeners) and in the others (PostgreSQL's
    NOTIFY payload, as text: "jobs", "cancel <worker id>", "closing")."""
    kind: WakeKind
    worker_id: str = ""

    def text(self) -> str:
        return f"{self.kind} {self.worker_id}" if self.kind == WakeKind.CANCEL else str(self.kind)

    @classmethod
    def parse(cls, text: str) -> Wakeup | None:
        """A payload another process sent; None for one this version does not know (it is ignored)."""
        kind, _, worker_id = text.partition(" ")
        try:
            found = WakeKind(kind)
        except ValueError:
            return None
        return cls(found, worker_id if found == WakeKind.CANCEL else "")


JOBS = Wakeup(WakeKind.JOBS)
TOKEN_CACHE_S = 10.0  # a revoked token keeps working this long at most, in a process that just saw it
TOUCH_EVERY_S = 30.0  # a worker's last_seen is written at most this often
NEWEST_CACHE_S = 5.0
POOL_SIZE = 10  # connections per server process to PostgreSQL or MySQL; --db-pool changes it
KEEP_FAILED_S = 3600.0  # outputs of failed and canceled jobs are deleted this long after the job ended
KEEP_OUTPUTS_S = 30 * 86400.0  # and every job's outputs this long after it ended (0: kept until deleted)
WEBHOOK_HOLD_S = 60.0  # a sender holds a delivery this long; if it dies, another process sends it then
ENDED = {"done": "job.done", "failed": "job.failed", "canceled": "job.canceled"}


class LeaseLost(Exception):
    """A call made with a lease that is no longer the job's current one."""


class Canceled(LeaseLost):
    """The lease ended because the web app canceled the job."""


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The call does not fit the job's state (canceling a finished job, say)."""


class KeyReused(Exception):
    """An Idempotency-Key sent again with another request."""


@dataclass
class Claimed:
    job_id: int
    lease_id: str
    attempt: int
    spec: dict
    expires: float
    outputs: list[dict]  # what an earlier attempt already uploaded: the worker skips those frames


# The statements of a job's way from claim to done are built once, with bind parameters: SQLAlchemy then
# neither builds nor keys them again on each call (about 60 µs of CPU a statement, measured on PostgreSQL).
_bp = sa.bindparam
_LEASE_HELD = sa.and_(jobs.c.id == _bp("w_job"), jobs.c.lease_id == _bp("w_lease"), jobs.c.state == "leased",
                      jobs.c.lease_expires >= _bp("w_now"))
_LEASE_ROW = sa.select(jobs.c.id, jobs.c.state, jobs.c.lease_id, jobs.c.lease_expires, jobs.c.attempts,
                       jobs.c.max_attempts, jobs.c.min_blender, jobs.c.has_outputs).where(jobs.c.id == _bp("w_job"))
_OUTPUT_ROW = sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size).where(
    outputs.c.job_id == _bp("w_job"), outputs.c.name == _bp("w_name"))
_JOB_OUTPUTS = sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size).where(
    outputs.c.job_id == _bp("w_job")).order_by(outputs.c.name)
_STORED_NAMES = sa.select(outputs.c.name).where(outputs.c.job_id == _bp("w_job"))
_CLAIMED = (jobs.c.id, jobs.c.spec, jobs.c.attempts, jobs.c.has_outputs)  # what a claim reads of its job
_CLAIMED_ROW = sa.select(*_CLAIMED).where(jobs.c.id == _bp("w_job"))
_END_ROW = sa.select(jobs.c.tag, jobs.c.error, jobs.c.attempts, jobs.c.webhook_url).where(jobs.c.id == _bp("w_job"))


def _finish(dialect: str) -> sa.Update:
    """A job's usual end in one statement: its lease held, every output it names stored, no webhook to queue.
    (On PostgreSQL the names go as one array: an expanding IN list is built anew on every call.)"""
    named = outputs.c.name == sa.any_(_bp("w_names", type_=postgresql.ARRAY(sa.String))) \
        if dialect == "postgresql" else outputs.c.name.in_(_bp("w_names", expanding=True))
    stored = sa.select(sa.func.count()).where(outputs.c.job_id == _bp("w_job"), named).scalar_subquery()
    return jobs.update().where(_LEASE_HELD, jobs.c.webhook_url.is_(None), stored == _bp("w_count")).values(
        state="done", lease_id=None, lease_expires=None, stats=_bp("v_stats"), warnings=_bp("v_warnings"),
        updated=_bp("v_now"), finished=_bp("v_now"), error=None)


@lru_cache(maxsize=None)
def _leased_update(columns: tuple[str, ...]) -> sa.Update:
    """``UPDATE jobs SET <columns> WHERE <the lease is held>``, one statement per set of columns."""
    return jobs.update().where(_LEASE_HELD).values({column: _bp("v_" + column) for column in columns})


def _claim_statements(dialect: str) -> tuple:
    """(pick, lease): the best queued job this worker can run, and its lease as a compare-and-set; on
    PostgreSQL and SQLite the lease is one statement that picks too and returns the job."""
    # A job that needs a newer Blender than this worker has waits for a worker that has it; when no worker
    # seen lately has it, any worker takes it and fails it with the reason, rather than it waiting forever.
    eligible = sa.and_(jobs.c.state == "queued",
                       sa.or_(jobs.c.min_blender <= _bp("w_mine"), jobs.c.min_blender > _bp("w_newest")))
    values = dict(state="leased", lease_id=_bp("v_lease"), worker_id=_bp("v_worker"),
                  lease_expires=_bp("v_expires"), attempts=jobs.c.attempts + 1, claimed=_bp("v_now"),
                  updated=_bp("v_now"), progress=None)
    pick = sa.select(jobs.c.id).where(eligible).order_by(jobs.c.priority.desc(), jobs.c.id).limit(1)
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    if dialect in ("postgresql", "sqlite"):
        # SQLite has one writer at a time; PostgreSQL skips rows that other claims hold.
        return pick, jobs.update().where(jobs.c.id == pick.scalar_subquery(), jobs.c.state == "queued") \
            .values(**values).returning(*_CLAIMED)
    return pick, jobs.update().where(jobs.c.id == _bp("w_job"), jobs.c.state == "queued").values(**values)


def _output_upsert(dialect: str):
    """Records an output, replacing the row an earlier attempt left under the same name. On PostgreSQL in
    one statement with the lease's check (a row comes back only if the lease was held); elsewhere the caller
    checks the lease in the same transaction."""
    # (Named unlike any column: an UPDATE would take a parameter named after one of its columns as a value.)
    values = dict(job_id=_bp("o_job"), name=_bp("o_name"), sha256=_bp("o_sha256"), size=_bp("o_size"),
                  created=_bp("o_created"))
    if dialect == "postgresql":
        held = jobs.update().where(_LEASE_HELD).values(has_outputs=1).returning(jobs.c.id).cte("held")
        insert = postgresql.insert(outputs).from_select(
            ["job_id", "name", "sha256", "size", "created"],
            sa.select(held.c.id, values["name"], values["sha256"], values["size"], values["created"]))
        return insert.on_conflict_do_update(index_elements=[outputs.c.job_id, outputs.c.name], set_={
            "sha256": insert.excluded.sha256, "size": insert.excluded.size, "created": insert.excluded.created,
        }).returning(outputs.c.job_id)
    if dialect == "sqlite":
        insert = sqlite_dialect.insert(outputs).values(**values)
        return insert.on_conflict_do_update(index_elements=[outputs.c.job_id, outputs.c.name], set_={
            "sha256": insert.excluded.sha256, "size": insert.excluded.size, "created": insert.excluded.created})
    insert = mysql.insert(outputs).values(**values)
    return insert.on_duplicate_key_update(sha256=insert.inserted.sha256, size=insert.inserted.size,
                                          created=insert.inserted.created)


def connect(url: str, pool_size: int = POOL_SIZE) -> sa.Engine:
    """An engine for ``url`` with the settings each kind of database needs here."""
    url = _driver_url(url)
    if url.startswith("sqlite"):
        # One connection shared in turn: SQLite takes one writer at a time, and a queue for the pool wakes
        # the next caller at once where SQLite's own busy wait would sleep for up to 100 ms.
        engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                  connect_args={"check_same_thread": False, "isolation_level": None})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # A fixed pool: a connection opened per burst and closed after costs a new server process on PostgreSQL
    # (milliseconds) each time. Hosted databases close idle connections (TiDB Serverless after some
    # minutes): recycle well before, and check a connection before use only when it sat idle (pre_ping
    # would cost a round trip per transaction). READ COMMITTED on MySQL too (PostgreSQL's default): its
    # REPEATABLE READ takes gap locks on the queue's index that deadlock claims against submits.
    return sa.create_engine(url, pool_size=pool_size, max_overflow=0, pool_recycle=240, pool_timeout=30,
                            pool_pre_ping=False, isolation_level="READ COMMITTED")


def _driver_url(url: str) -> str:
    """The URL with homefarm's chosen driver for each scheme (psycopg 3, PyMySQL) unless one is named."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("a database URL looks like sqlite:///path, postgresql://user@host/db or "
                         "mysql://user@host/db")
    drivers = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
               "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "tidb": "mysql+pymysql",
               "sqlite": "sqlite"}
    if scheme in drivers:
        scheme = drivers[scheme]
    elif scheme.split("+")[0] not in drivers:
        raise ValueError(f"unsupported database {scheme!r}: use sqlite, postgresql, mysql or mariadb")
    url = f"{scheme}://{rest}"
    if scheme.endswith("pymysql") and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    for pragma in ("busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=OFF"):
        dbapi_connection.execute(f"PRAGMA {pragma}")
    # Switching a new file to WAL takes a lock that SQLite does not wait for: several server processes
    # opening one new file at once would fail with "database is locked". Each tries again for a while.
    deadline = time.monotonic() + 10
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Store:
    def __init__(self, url: str, lease_ttl: float = C.LEASE_TTL, clock=time.time, pool_size: int = POOL_SIZE,
                 keep_failed: float = KEEP_FAILED_S, keep_outputs: float = KEEP_OUTPUTS_S,
                 webhook_url: str | None = None):
        self.lease_ttl = lease_ttl
        self.keep_failed = keep_failed
        self.keep_outputs = keep_outputs
        self.webhook_url = webhook_url  # every job's end goes there, besides a job's own webhook_url
        self.heartbeat_interval = min(C.HEARTBEAT_INTERVAL, lease_ttl / 4)
        # A claim's answer can be lost on its way (a proxy cut it): until the worker's first heartbeat says
        # it has the job, the lease is short, and the job soon back in the queue if the answer never came.
        self.first_lease_ttl = min(lease_ttl, max(1.0, C.FIRST_LEASE_BEATS * self.heartbeat_interval))
        self.clock = clock
        self.engine = connect(url, pool_size)
        self.dialect = self.engine.dialect.name
        # On PostgreSQL a lone statement runs in autocommit: no BEGIN and COMMIT round trips around it.
        self._auto = self.engine.execution_options(isolation_level="AUTOCOMMIT") \
            if self.dialect == "postgresql" else None
        migrate(self.engine)
        self.listeners: list[Callable[[str], None]] = []  # told of announcements made by this process
        self._cache_lock = threading.Lock()
        self._token_cache: dict[str, tuple[str | None, float]] = {}  # hash -> (kind or None, until)
        self._touched: dict[str, float] = {}  # worker id -> when its last_seen was written
        self._blender: dict[str, int] = {}  # worker id -> its newest Blender (a hello makes a new id)
        self._newest: tuple[int, float] = (0, 0.0)  # newest Blender seen lately, and until when it holds
        self._pick, self._lease = _claim_statements(self.dialect)
        self._upsert_output = _output_upsert(self.dialect)
        self._finish = _finish(self.dialect)
        self.expired_total = 0  # leases this process expired, for the metrics

    def close(self) -> None:
        self.engine.dispose()

    def _single(self):
        """A connection for statements that are each complete on their own: autocommit where that saves round
        trips (PostgreSQL), a transaction elsewhere (SQLite's writes take its lock in BEGIN IMMEDIATE)."""
        return self._auto.connect() if self._auto is not None else self.engine.begin()

    def describe(self) -> str:
        """The database for a log line, without its password."""
        url = self.engine.url
        return f"{url.get_backend_name()} {url.database}" if url.get_backend_name() == "sqlite" else \
            f"{url.get_backend_name()} at {url.host}:{url.port or 'default port'}/{url.database}"

    @property
    def notifies(self) -> bool:
        """Whether other processes hear this store's announcements (PostgreSQL); else they poll."""
        return self.dialect == "postgresql"

    def _announce(self, conn: sa.Connection, message: Wakeup) -> None:
        if self.notifies:
            conn.execute(sa.text("SELECT pg_notify(:channel, :message)"),
                         {"channel": NOTIFY_CHANNEL, "message": message.text()})

    def _tell(self, message: Wakeup) -> None:
        for listener in list(self.listeners):
            listener(message)

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- tokens -------------------------------------------------------------------------------

    def create_token(self, kind: str, label: str = "") -> str:
        """Makes a new token and stores only its hash; the plain token is returned once."""
        assert kind in TOKEN_KINDS
        token = f"hf{kind[0]}_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(hash=hash_token(token), kind=kind, label=label,
                                                created=self.clock()))
        return token

    def list_tokens(self) -> list[dict]:
        """Tokens by id (the first 12 characters of their hash), kind, label and dates; never the token."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created)).all()
        return [{"id": r.hash[:12], "kind": r.kind, "label": r.label, "created": r.created,
                 "last_used": r.last_used} for r in rows]

    def revoke_token(self, token_id: str) -> dict:
        """Deletes the token whose id starts with ``token_id`` (at least 6 characters, one match)."""
        token_id = token_id.strip().lower()
        if len(token_id) < 6 or any(c not in "0123456789abcdef" for c in token_id):
            raise NotFound("a token id is 6 to 12 hex characters, as `tokens list` shows it")
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(tokens).where(tokens.c.hash.like(token_id + "%"))).all()
            if len(rows) != 1:
                raise NotFound(f"no token {token_id}" if not rows else f"{len(rows)} tokens start with {token_id}")
            conn.execute(tokens.delete().where(tokens.c.hash == rows[0].hash))
        with self._cache_lock:
            self._token_cache.pop(rows[0].hash, None)
        return {"id": rows[0].hash[:12], "kind": rows[0].kind, "label": rows[0].label}

    def has_tokens(self) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(tokens)) > 0

    def known_token(self, token: str, kind: str) -> bool | None:
        """The answer ``check_token`` gave lately, from memory (no query, so callers need no thread), or None
        when there is none that still holds."""
        with self._cache_lock:
            cached = self._token_cache.get(hash_token(token))
        if cached is None or cached[1] < time.monotonic():
            return None
        return cached[0] == kind

    def check_token(self, token: str, kind: str) -> bool:
        # Looked up by its SHA-256: a lookup's timing can at most tell a prefix of a hash, which gives
        # nothing towards a token. Answers are kept briefly, so a busy worker costs no query per request.
        known = self.known_token(token, kind)
        if known is not None:
            return known
        digest = hash_token(token)
        with self._single() as conn:
            found = conn.scalar(sa.select(tokens.c.kind).where(tokens.c.hash == digest))
            if found is not None:
                conn.execute(tokens.update().where(tokens.c.hash == digest).values(last_used=self.clock()))
        with self._cache_lock:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[digest] = (found, time.monotonic() + TOKEN_CACHE_S)
        return found == kind

    # -- workers ------------------------------------------------------------------------------

    def register_worker(self, name: str, info: dict) -> str:
        now = self.clock()
        worker_id = "w_" + secrets.token_hex(8)
        blender = newest_blender(info)
        with self.engine.begin() as conn:
            conn.execute(workers.insert().values(id=worker_id, name=name, info=json.dumps(info), first_seen=now,
                                                 last_seen=now, blender=blender))
        with self._cache_lock:
            self._blender[worker_id] = blender
            self._touched[worker_id] = time.monotonic()
            if blender > self._newest[0]:
                self._newest = (blender, self._newest[1])
        return worker_id

    def worker_seen_lately(self, worker_id: str) -> bool:
        """Whether ``worker_exists`` found this worker lately, from memory (no query, so callers need no
        thread); when not, ask ``worker_exists``."""
        with self._cache_lock:
            touched = self._touched.get(worker_id)
        return touched is not None and time.monotonic() - touched < TOUCH_EVERY_S

    def worker_exists(self, worker_id: str) -> bool:
        """Whether the worker said hello; notes that it was seen (written at most every half minute)."""
        if self.worker_seen_lately(worker_id):
            return True
        now = time.monotonic()
        with self._single() as conn:
            found = conn.execute(workers.update().where(workers.c.id == worker_id)
                                 .values(last_seen=self.clock())).rowcount > 0
        if found:
            with self._cache_lock:
                self._touched[worker_id] = now
        return found

    def list_workers(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.last_seen.desc())).all()
        return [{"id": r.id, "name": r.name, "info": json.loads(r.info), "last_seen": r.last_seen} for r in rows]

    def _worker_blender(self, conn: sa.Connection, worker_id: str) -> int:
        with self._cache_lock:
            known = self._blender.get(worker_id)
        if known is None:
            known = conn.scalar(sa.select(workers.c.blender).where(workers.c.id == worker_id)) or 0
            with self._cache_lock:
                self._blender[worker_id] = known
        return known

    def _newest_known(self, conn: sa.Connection) -> int:
        """The newest Blender of any worker seen in the last day: a job that needs more waits for none."""
        newest, until = self._newest
        if until < time.monotonic():
            found = conn.scalar(sa.select(sa.func.max(workers.c.blender))
                                .where(workers.c.last_seen > self.clock() - 86400)) or 0
            newest = max(found, newest if until else 0)
            self._newest = (newest, time.monotonic() + NEWEST_CACHE_S)
        return newest

    # -- jobs: the web app's side -------------------------------------------------------------

    def submit(self, spec: dict, priority: int, max_attempts: int, tag: str | None,
               now: float | None = None, key: tuple[str, str] | None = None) -> int:
        """Queues a job. With ``key`` (an Idempotency-Key and the request's SHA-256) the job and the key are
        written together; a key already there raises KeyReused, or IntegrityError in a race (see
        ``submit_view``)."""
        now = self.clock() if now is None else now
        min_blender = blender_key((spec.get("blender") or {}).get("min_version"))
        with self.engine.begin() as conn:
            result = conn.execute(jobs.insert().values(spec=json.dumps(spec), tag=tag, priority=priority,
                                                       max_attempts=max_attempts, min_blender=min_blender,
                                                       webhook_url=spec.get("webhook_url"),
                                                       created=now, updated=now))
            job_id = result.inserted_primary_key[0]
            if key is not None:
                conn.execute(idempotency.insert().values(key=key[0], request_sha256=key[1], job_id=job_id,
                                                         created=now))
            self._announce(conn, JOBS)
        self._tell(JOBS)
        return job_id

    def _keyed_job(self, key: str, request_sha256: str) -> int | None:
        """The job an earlier submission with this Idempotency-Key made, if any; KeyReused if it had
        another request."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(idempotency.c.job_id, idempotency.c.request_sha256)
                               .where(idempotency.c.key == key)).first()
        if row is not None and row.request_sha256 != request_sha256:
            raise KeyReused(f"the Idempotency-Key {key!r} was sent before with another request; use a new "
                            f"key for a new job")
        return None if row is None else row.job_id

    def submit_view(self, spec: dict, priority: int, max_attempts: int, tag: str | None,
                    key: tuple[str, str] | None = None) -> tuple[dict, bool]:
        """Submits and returns (the new job as ``get`` shows it, True), without reading it back: the waiting
        claims that the submission woke have the database to themselves. With an Idempotency-Key that an
        earlier submission of the same request used: (that job, False)."""
        if key is not None:
            earlier = self._keyed_job(*key)
            if earlier is not None:
                return self.get(earlier), False
        now = self.clock()
        try:
            job_id = self.submit(spec, priority, max_attempts, tag, now, key)
        except sa.exc.IntegrityError:
            if key is None:
                raise
            # The same key came twice at once: the other submission made the job (its transaction rolled
            # this one's back whole).
            earlier = self._keyed_job(*key)
            if earlier is None:
                raise
            return self.get(earlier), False
        row = SimpleNamespace(**{column.name: None for column in jobs.c})
        row.__dict__.update(id=job_id, spec=json.dumps(spec), tag=tag, state="queued", priority=priority,
                            attempts=0, max_attempts=max_attempts, created=now, updated=now, has_outputs=0)
        return self.view(row, []), True

    def forget_idempotency_keys(self, before: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(idempotency.delete().where(idempotency.c.created < before)).rowcount

    def _lapsed(self, rows) -> bool:
        """Whether one of these jobs still shows a lease that ran out (the reaper runs once a second)."""
        now = self.clock()
        return any(r.state == "leased" and r.lease_expires is not None and r.lease_expires < now for r in rows)

    def get(self, job_id: int) -> dict:
        for _ in range(2):
            with self._single() as conn:
                row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
                if row is None:
                    raise NotFound(f"no job {job_id}")
                stored = conn.execute(sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size)
                                      .where(outputs.c.job_id == job_id).order_by(outputs.c.name)).all()
            if not self._lapsed([row]):
                break
            self.expire_leases()  # then read it again, as the queue has it now
        return self.view(row, stored)

    def list(self, state: str | None = None, limit: int = 100, cursor: str | None = None,
             updated_since: float | None = None) -> tuple[list[dict], str | None]:
        """A page of jobs and the cursor of the next (None after the last). Newest first; with
        ``updated_since``, those changed after it, oldest change first, so a poller keeps the last ``updated``
        it saw. A cursor is opaque; it keeps the order it was made in."""
        after = _parse_cursor(cursor)
        by_update = updated_since is not None or (after is not None and after[0] == "u")
        if by_update:
            query = sa.select(jobs).order_by(jobs.c.updated, jobs.c.id)
            if updated_since is not None:
                query = query.where(jobs.c.updated > updated_since)
            if after:
                _, updated, job_id = after
                query = query.where(sa.or_(jobs.c.updated > updated,
                                           sa.and_(jobs.c.updated == updated, jobs.c.id > job_id)))
        else:
            query = sa.select(jobs).order_by(jobs.c.id.desc())
            if after:
                query = query.where(jobs.c.id < after[2])
        if state:
            query = query.where(jobs.c.state == state)
        query = query.limit(limit + 1)
        for _ in range(2):
            with self._single() as conn:
                rows = conn.execute(query).all()
            if not self._lapsed(rows):
                break
            self.expire_leases()  # then read them again, as the queue has them now
        following = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            following = _make_cursor("u", last.updated, last.id) if by_update else \
                _make_cursor("i", 0.0, last.id)
        return [self.view(row, None) for row in rows], following

    def cancel(self, job_id: int) -> dict:
        now = self.clock()
        with self.engine.begin() as conn:
            state = conn.scalar(sa.select(jobs.c.state).where(jobs.c.id == job_id))
            if state is None:
                raise NotFound(f"no job {job_id}")
            # A leased job stays canceled; its worker learns it at the next heartbeat and stops.
            changed = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.state.in_(("queued", "leased")))
                                   .values(state="canceled", cancel_requested=1, updated=now, finished=now,
                                           lease_expires=None)).rowcount
            if not changed:
                raise Conflict(f"job {job_id} is already {state}")
            self._ended(conn, job_id, "canceled", now)
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per state, for the metrics."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all()
        return {state: count for state, count in rows}

    # -- jobs: the worker's side --------------------------------------------------------------

    def claim(self, worker_id: str) -> Claimed | None:
        """Leases the best queued job this worker can run, or returns None; never waits."""
        now = self.clock()
        lease_id = "l_" + secrets.token_urlsafe(16)
        expires = now + self.first_lease_ttl
        with self._single() as conn:
            params = dict(w_mine=self._worker_blender(conn, worker_id), w_newest=self._newest_known(conn),
                          v_lease=lease_id, v_worker=worker_id, v_expires=expires, v_now=now)
            if self.dialect in ("postgresql", "sqlite"):
                row = conn.execute(self._lease, params).first()
            else:
                row = self._claim_compare_and_set(conn, params)
            if row is None:
                return None
            done = conn.execute(_JOB_OUTPUTS, {"w_job": row.id}).all() if row.has_outputs else []
        return Claimed(row.id, lease_id, row.attempts, json.loads(row.spec), expires, [r._asdict() for r in done])

    def _claim_compare_and_set(self, conn: sa.Connection, params: dict):
        """The MySQL family: pick, then lease only if still queued (TiDB's SKIP LOCKED does not lock)."""
        for _ in range(8):
            job_id = conn.scalar(self._pick, params)
            if job_id is None:
                return None
            if conn.execute(self._lease, {**params, "w_job": job_id}).rowcount == 1:
                return conn.execute(_CLAIMED_ROW, {"w_job": job_id}).one()
        return None

    def cancel_claims(self, worker_id: str) -> None:
        """Ends the worker's waiting claims now with no job (it paused or quits), in every server process."""
        message = Wakeup(WakeKind.CANCEL, worker_id)
        with self.engine.begin() as conn:
            conn.execute(workers.update().where(workers.c.id == worker_id).values(claims_canceled=self.clock()))
            self._announce(conn, message)
        self._tell(message)

    def canceled_since(self, since: float) -> list[str]:
        """Workers that canceled their claims at or after ``since`` (for processes that poll)."""
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(workers.c.id).where(workers.c.claims_canceled >= since)))

    def has_queued(self) -> bool:
        with self._single() as conn:
            return conn.scalar(sa.select(jobs.c.id).where(jobs.c.state == "queued").limit(1)) is not None

    def expire_leases(self) -> int:
        """Puts jobs whose lease ran out back in the queue (or fails them on their last attempt)."""
        now = self.clock()
        expired = sa.and_(jobs.c.state == "leased", jobs.c.lease_expires < now)
        requeued = changed = 0
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts).where(expired)).all()
            for row in rows:
                if row.attempts >= row.max_attempts:
                    values = dict(state="failed", lease_id=None, lease_expires=None, updated=now, finished=now,
                                  error=f"lease expired on attempt {row.attempts} of {row.max_attempts}")
                else:
                    values = dict(state="queued", lease_id=None, worker_id=None, lease_expires=None, updated=now)
                # Another server process may be expiring the same lease: whichever changes the row counts it.
                if conn.execute(jobs.update().where(jobs.c.id == row.id, expired).values(**values)).rowcount:
                    requeued += values["state"] == "queued"
                    changed += 1
                    if values["state"] == "failed":
                        self._ended(conn, row.id, "failed", now)
            if requeued:
                self._announce(conn, JOBS)
        if requeued:
            self._tell(JOBS)
        self.expired_total += changed
        return changed

    def _leased_row(self, conn: sa.Connection, job_id: int, lease_id: str):
        """The job's row if ``lease_id`` is its current, unexpired lease; else LeaseLost."""
        row = conn.execute(_LEASE_ROW, {"w_job": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row.lease_id != lease_id or row.state not in ("leased", "canceled"):
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id} (the job is {row.state})")
        if row.state == "leased" and row.lease_expires is not None and row.lease_expires < self.clock():
            raise LeaseLost(f"lease {lease_id} of job {job_id} expired")
        return row

    def _update_leased(self, conn: sa.Connection, job_id: int, lease_id: str, /, **values) -> None:
        """Changes the job only while ``lease_id`` is its current, unexpired lease: a compare-and-set, as another
        process may have expired it. Else LeaseLost, or Canceled if the web app canceled the job."""
        params = {"w_job": job_id, "w_lease": lease_id, "w_now": self.clock()}
        params.update(("v_" + column, value) for column, value in values.items())
        changed = conn.execute(_leased_update(tuple(sorted(values))), params).rowcount
        if changed != 1:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                raise Canceled(f"job {job_id} was canceled")
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id}")

    def heartbeat(self, job_id: int, lease_id: str, progress: dict) -> tuple[bool, float]:
        """Renews the lease; returns (cancel, seconds until it expires)."""
        now = self.clock()
        try:
            with self._single() as conn:
                self._update_leased(conn, job_id, lease_id, lease_expires=now + self.lease_ttl,
                                    progress=json.dumps(progress), updated=now)
        except Canceled:
            return True, 0.0
        return False, self.lease_ttl

    def check_lease(self, job_id: int, lease_id: str) -> None:
        self.upload_target(job_id, lease_id, None)

    def upload_target(self, job_id: int, lease_id: str, name: str | None) -> dict | None:
        """Checks the lease for an upload and returns the output ``name`` if an attempt stored it already."""
        with self._single() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                raise Canceled(f"job {job_id} was canceled")
            if not row.has_outputs or name is None:
                return None
            found = conn.execute(_OUTPUT_ROW, {"w_job": job_id, "w_name": name}).first()
        return found._asdict() if found else None

    def output(self, job_id: int, name: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size)
                               .where(outputs.c.job_id == job_id, outputs.c.name == name)).first()
        return row._asdict() if row else None

    def add_output(self, job_id: int, lease_id: str, name: str, sha256: str, size: int) -> None:
        now = self.clock()
        values = dict(o_job=job_id, o_name=name, o_sha256=sha256, o_size=size, o_created=now)
        if self.dialect == "postgresql":
            with self._single() as conn:
                if conn.execute(self._upsert_output, dict(values, w_job=job_id, w_lease=lease_id, w_now=now)).first():
                    return
                self._update_leased(conn, job_id, lease_id, has_outputs=1)  # raises, saying why
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id}")
        with self.engine.begin() as conn:
            self._update_leased(conn, job_id, lease_id, has_outputs=1)
            conn.execute(self._upsert_output, values)

    def complete(self, job_id: int, lease_id: str, names: list[str], stats: dict,
                 warnings: list[dict] | None = None) -> None:
        now = self.clock()
        if self.webhook_url is None:
            with self._single() as conn:
                if conn.execute(self._finish, dict(w_job=job_id, w_lease=lease_id, w_now=now, w_names=names,
                                              w_count=len(set(names)), v_stats=json.dumps(stats),
                                              v_warnings=json.dumps(warnings or []), v_now=now)).rowcount == 1:
                    return
        # A webhook to queue, or something to explain (an output missing, the lease lost or canceled).
        with self.engine.begin() as conn:  # the job's end and its webhooks commit together
            if names:
                stored = set(conn.scalars(_STORED_NAMES, {"w_job": job_id}))
                missing = [name for name in names if name not in stored]
                if missing:
                    row = self._leased_row(conn, job_id, lease_id)  # a lost lease is the first thing to say
                    if row.state == "canceled":
                        raise Canceled(f"job {job_id} was canceled")
                    raise Conflict(f"outputs not uploaded: {', '.join(missing)}")
            self._update_leased(conn, job_id, lease_id, state="done", lease_id=None, lease_expires=None,
                                stats=json.dumps(stats), warnings=json.dumps(warnings or []), updated=now,
                                finished=now, error=None)
            self._ended(conn, job_id, "done", now)

    def fail(self, job_id: int, lease_id: str, reason: str, log_tail: str, retryable: bool,
             needs_blender: str | None = None) -> str:
        """Fails the attempt; a retryable failure with attempts left requeues the job. A scene saved by a
        newer Blender than the worker's goes back to the queue, attempt uncounted, when a worker seen in the
        last day has that Blender; with none, the job fails with the reason."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                return "canceled"
            needed = blender_key(needs_blender) if needs_blender else 0
            if needed and self._newest_known(conn) >= needed:
                self._update_leased(conn, job_id, lease_id, state="queued", lease_id=None, worker_id=None,
                                    lease_expires=None, attempts=max(row.attempts - 1, 0), log_tail=log_tail,
                                    error=f"{reason}; waiting for a worker with Blender {needs_blender} or newer",
                                    min_blender=max(row.min_blender, needed), updated=now)
                state = "queued"
            else:
                state = "queued" if retryable and row.attempts < row.max_attempts else "failed"
                self._update_leased(conn, job_id, lease_id, state=state, lease_id=None, worker_id=None,
                                    lease_expires=None, error=reason, log_tail=log_tail, updated=now,
                                    finished=None if state == "queued" else now)
                if state == "failed":
                    self._ended(conn, job_id, "failed", now)
            if state == "queued":
                self._announce(conn, JOBS)
        if state == "queued":
            self._tell(JOBS)
        return state

    def release(self, job_id: int, lease_id: str, reason: str) -> None:
        """Gives the job back unfinished; a release does not count as an attempt."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                return
            self._update_leased(conn, job_id, lease_id, state="queued", lease_id=None, worker_id=None,
                                lease_expires=None, attempts=max(row.attempts - 1, 0),
                                progress=json.dumps({"message": reason}), updated=now)
            self._announce(conn, JOBS)
        self._tell(JOBS)

    # -- webhooks -----------------------------------------------------------------------------

    def _ended(self, conn: sa.Connection, job_id: int, state: str, now: float) -> None:
        """Queues the job's end for the server's webhook and the job's own, in the ending transaction."""
        row = conn.execute(_END_ROW, {"w_job": job_id}).one()
        urls = list(dict.fromkeys(url for url in (self.webhook_url, row.webhook_url) if url))
        if not urls:
            return
        event = ENDED[state]
        for url in urls:
            delivery = conn.execute(webhooks.insert().values(job_id=job_id, url=url, event=event, body="",
                                                             next_at=now, created=now)).inserted_primary_key[0]
            body = json.dumps({"id": f"evt_{delivery}", "type": event, "created": now,
                               "job": {"id": str(job_id), "state": state, "tag": row.tag, "error": row.error,
                                       "attempts": row.attempts, "finished": now}}, separators=(",", ":"))
            conn.execute(webhooks.update().where(webhooks.c.id == delivery).values(body=body))

    def due_webhooks(self, limit: int = 20) -> list:
        """Takes up to ``limit`` deliveries that are due, each held by this process for WEBHOOK_HOLD_S: a
        compare-and-set on its time, so that two processes never send one at once."""
        now = self.clock()
        taken = []
        with self.engine.connect() as conn:  # a read first: nothing due takes no write lock (SQLite's is global)
            rows = conn.execute(sa.select(webhooks).where(webhooks.c.next_at <= now)
                                .order_by(webhooks.c.next_at).limit(limit)).all()
        if not rows:
            return taken
        with self.engine.begin() as conn:
            for row in rows:
                if conn.execute(webhooks.update().where(webhooks.c.id == row.id, webhooks.c.next_at == row.next_at)
                                .values(next_at=now + WEBHOOK_HOLD_S, attempts=row.attempts + 1)).rowcount:
                    taken.append(SimpleNamespace(**{**row._mapping, "attempts": row.attempts + 1}))
        return taken

    def webhook_sent(self, delivery: int, error: str | None, retry_at: float | None) -> None:
        """Delivered (``error`` None), to be tried again at ``retry_at``, or given up (``retry_at`` None)."""
        values = dict(next_at=retry_at, last_error=error)
        if error is None:
            values["delivered"] = self.clock()
        with self.engine.begin() as conn:
            conn.execute(webhooks.update().where(webhooks.c.id == delivery).values(**values))

    def webhook_deliveries(self, job_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(webhooks.c.url, webhooks.c.event, webhooks.c.attempts,
                                          webhooks.c.delivered, webhooks.c.next_at, webhooks.c.last_error)
                                .where(webhooks.c.job_id == job_id).order_by(webhooks.c.id)).all()
        return [{"url": r.url, "event": r.event, "attempts": r.attempts, "delivered": r.delivered,
                 "next_attempt": r.next_at, "last_error": r.last_error} for r in rows]

    # -- retention ----------------------------------------------------------------------------

    def expired_outputs(self, limit: int = 200) -> dict[int, list[str]]:
        """Jobs whose outputs retention deletes now, with their outputs' names."""
        now = self.clock()
        ended_badly = sa.and_(jobs.c.state.in_(("failed", "canceled")), jobs.c.finished < now - self.keep_failed)
        rule = sa.or_(ended_badly, sa.and_(jobs.c.state == "done", jobs.c.finished < now - self.keep_outputs)) \
            if self.keep_outputs > 0 else ended_badly
        with self.engine.connect() as conn:
            ids = list(conn.scalars(sa.select(jobs.c.id).where(jobs.c.has_outputs == 1, rule)
                                    .order_by(jobs.c.finished).limit(limit)))
            if not ids:
                return {}
            found: dict[int, list[str]] = {job_id: [] for job_id in ids}
            for job_id, name in conn.execute(sa.select(outputs.c.job_id, outputs.c.name)
                                             .where(outputs.c.job_id.in_(ids))):
                found[job_id].append(name)
        return found

    def outputs_removed(self, job_ids: list[int]) -> None:
        """Their files are gone from storage: the rows go, and the jobs say when."""
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(outputs.delete().where(outputs.c.job_id.in_(job_ids)))
            conn.execute(jobs.update().where(jobs.c.id.in_(job_ids), jobs.c.state.in_(tuple(ENDED)))
                         .values(has_outputs=0, outputs_deleted=now))

    # -- views --------------------------------------------------------------------------------

    @staticmethod
    def _view(row, stored) -> dict:
        view = {
            "id": str(row.id),
            "state": row.state,
            "tag": row.tag,
            "priority": row.priority,
            "attempts": row.attempts,
            "max_attempts": row.max_attempts,
            "worker_id": row.worker_id,
            "progress": json.loads(row.progress) if row.progress else None,
            "error": row.error,
            "stats": json.loads(row.stats) if row.stats else None,
            "warnings": json.loads(row.warnings) if row.warnings else [],
            "created": row.created,
            "updated": row.updated,
            "claimed": row.claimed,
            "finished": row.finished,
            "spec": json.loads(row.spec),
        }
        if stored is not None:
            view["outputs"] = [r._asdict() for r in stored]
            view["log_tail"] = row.log_tail
        return view

    def view(self, row, stored) -> dict:
        """A job as the web app sees it, with when retention deletes (or deleted) its outputs."""
        out = self._view(row, stored)
        out["outputs_deleted"] = row.outputs_deleted
        keep = self.keep_failed if row.state in ("failed", "canceled") else self.keep_outputs
        out["outputs_expire_at"] = row.finished + keep if (
            row.finished is not None and row.has_outputs and keep > 0 and row.state in ENDED) else None
        return out


def _make_cursor(kind: str, updated: float, job_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{updated!r}:{job_id}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str | None) -> tuple[str, float, int] | None:
    if not cursor:
        return None
    try:
        kind, updated, job_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        if kind not in ("i", "u"):
            raise ValueError(kind)
        return kind, float(updated), int(job_id)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("not a cursor this server made; start again without one") from None


class BadCursor(ValueError):
    """A list cursor this server did not make; ``detail`` says what to do."""

    def __init__(self, detail: str):
        super().__init__(f"cursor: {detail}")
        self.field, self.detail = "cursor", detail


__all__ = ["BadCursor", "ANY_BLENDER", "WakeKind", "Wakeup", "Canceled", "Claimed", "Conflict", "LeaseLost",
           "NotFound", "Store", "connect"]
