"""The job server's tables on every engine (SQLite, PostgreSQL, MySQL/MariaDB/TiDB), and their migrations.

The schema carries a version in ``homefarm_schema``. A database made by a server before versions were kept
(SQLite, version 1) or by an older server is brought to ``SCHEMA_VERSION`` step by step at start, under a
lock, so that several server processes starting at once migrate it once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

SCHEMA_VERSION = 8
TOKEN_KINDS = ("app", "worker", "dashboard")  # a dashboard token signs in to the dashboard, nothing else
HELD_FOREVER = 1e12  # a worker held until the dashboard releases it

# Epoch seconds as a double: MySQL's FLOAT is single precision, a second off in 2026.
Time: sa.Double[float] = sa.Double()
# A job's spec may be 256 KiB; MySQL's TEXT holds 64 KiB.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
# A 64-bit id on the servers; on SQLite only INTEGER PRIMARY KEY is the row id that counts up by itself.
JobId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", JobId, primary_key=True, autoincrement=True),
    sa.Column("spec", LongText, nullable=False),
    sa.Column("tag", sa.String(200)),
    sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("lease_id", sa.String(64)),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("lease_expires", Time),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.Column("progress", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("log_tail", LongText),
    sa.Column("stats", sa.Text),
    sa.Column("warnings", sa.Text),
    sa.Column("min_blender", sa.Integer, nullable=False, server_default="0"),
    # A worker is getting the Blender the job needs (its owner is asked): until then, no other worker takes the
    # job to fail it for want of that Blender.
    sa.Column("blender_awaited_until", Time),
    sa.Column("has_outputs", sa.Integer, nullable=False, server_default="0"),  # an attempt uploaded some
    sa.Column("webhook_url", sa.String(2048)),  # the job's own webhook, besides the server's
    sa.Column("outputs_deleted", Time),  # when retention deleted its outputs
    sa.Column("created", Time, nullable=False),
    sa.Column("updated", Time, nullable=False),
    sa.Column("claimed", Time),
    sa.Column("finished", Time),
    sa.Index("jobs_queue", "state", "priority", "id"),
    sa.Index("jobs_leases", "state", "lease_expires"),
    sa.Index("jobs_updated", "updated", "id"),
    sa.Index("jobs_retention", "has_outputs", "finished"),
    sqlite_autoincrement=True,
)

outputs = sa.Table(
    "outputs", metadata,
    sa.Column("job_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created", Time, nullable=False),
)

workers = sa.Table(
    "workers", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("first_seen", Time, nullable=False),
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("blender", sa.Integer, nullable=False, server_default="0"),  # its newest Blender, blender_key
    sa.Column("claims_canceled", Time),  # when it last asked its waiting claims to end
    sa.Column("state", sa.Text),  # what it last said of itself (P.WorkerState, as JSON): paused and why, warm
    sa.Column("held_until", Time),  # held from the dashboard: offered no job until then (HELD_FOREVER: until released)
    sa.Index("workers_seen", "last_seen"),
)

# A job's end, to be POSTed to a webhook until it answers 2xx: kept here so that no restart loses one.
webhooks = sa.Table(
    "webhooks", metadata,
    sa.Column("id", JobId, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.BigInteger, nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", Time),  # when to try next (a sender holds it a while); NULL once delivered or given up
    sa.Column("delivered", Time),
    sa.Column("last_error", sa.Text),
    sa.Column("created", Time, nullable=False),
    sa.Index("webhooks_due", "next_at"),
    sa.Index("webhooks_job", "job_id"),
    sqlite_autoincrement=True,
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("created", Time, nullable=False),
    sa.Column("last_used", Time),
)

# A submission's Idempotency-Key: a retried POST /api/v1/jobs answers with the job the first one made.
idempotency = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("job_id", sa.BigInteger, nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),  # of the body, to refuse another under it
    sa.Column("created", Time, nullable=False),
    sa.Index("idempotency_created", "created"),
)

# When a server process was last seen alive, written while leases are held and at a clean stop: a server that
# starts after none was alive for a while extends the leases by that gap (an outage costs no worker its job).
alive = sa.Table(
    "server_alive", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", Time, nullable=False),
)

# Each attempt at a job once it ended, for the dashboard's timeline and each worker's day: who claimed it, when,
# how far it got and how it ended (the attempt under way is the job's own row).
attempts = sa.Table(
    "job_attempts", metadata,
    sa.Column("id", JobId, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("claimed", Time),
    sa.Column("ended", Time, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # done, failed, retried, released, expired, canceled
    sa.Column("frames_done", sa.Integer),
    sa.Column("frame_count", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("render_s", sa.Double()),
    sa.Column("energy_wh", sa.Double()),
    sa.Index("job_attempts_job", "job_id", "id"),
    sa.Index("job_attempts_ended", "ended"),
    sa.Index("job_attempts_worker", "worker_id", "job_id"),
    sqlite_autoincrement=True,
)

# The server's own secrets, made once and shared by its processes: the dashboard's session-signing key.
keys = sa.Table(
    "server_keys", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)

schema_version = sa.Table(
    "homefarm_schema", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def migrate(engine: sa.Engine) -> int:
    """Creates the tables, or brings an older database up to ``SCHEMA_VERSION``; returns the version found."""
    with engine.connect() as conn, _migration_lock(conn), conn.begin():
        names = set(sa.inspect(conn).get_table_names())
        if "homefarm_schema" in names:
            found = int(conn.scalar(sa.select(schema_version.c.version)) or 0)
        elif "jobs" in names:
            found = 1  # a server from before versions were kept (SQLite only)
        else:
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            return 0
        if found > SCHEMA_VERSION:
            raise RuntimeError(f"the database's schema is version {found}, newer than this server's "
                               f"{SCHEMA_VERSION}: update homefarm on this server")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            _STEPS[version](conn)
            conn.execute(schema_version.update().values(version=version))
        return found


class _migration_lock:
    """Serialises migrations across server processes: a session's advisory lock on the servers, held until the
    migration's transaction has committed (MySQL's DDL commits at once, so a lock released before the commit
    would show the next process a table without its version row); SQLite's write lock is its BEGIN IMMEDIATE.
    """

    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def __enter__(self) -> _migration_lock:
        dialect = self.conn.dialect.name
        if dialect == "postgresql":
            self.conn.exec_driver_sql("SELECT pg_advisory_lock(7355608)")
        elif dialect in ("mysql", "mariadb"):
            self.conn.exec_driver_sql("SELECT GET_LOCK('homefarm_schema', 60)")
        self.conn.commit()  # ends the transaction the lock's query began; the session keeps the lock
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        dialect = self.conn.dialect.name
        if dialect == "postgresql":
            self.conn.exec_driver_sql("SELECT pg_advisory_unlock(7355608)")
        elif dialect in ("mysql", "mariadb"):
            self.conn.exec_driver_sql("SELECT RELEASE_LOCK('homefarm_schema')")
        self.conn.commit()


def _to_v2(conn: sa.Connection) -> None:
    """From the unversioned SQLite server: the columns it may lack, per-worker Blender and claim cancels."""
    have = {table: {c["name"] for c in sa.inspect(conn).get_columns(table)}
            for table in ("jobs", "workers", "tokens")}
    added = (("jobs", "warnings", "TEXT"), ("jobs", "min_blender", "INTEGER NOT NULL DEFAULT 0"),
             ("jobs", "has_outputs", "INTEGER NOT NULL DEFAULT 0"),
             ("workers", "blender", "INTEGER NOT NULL DEFAULT 0"), ("workers", "claims_canceled", "REAL"),
             ("tokens", "last_used", "REAL"))
    for table, column, definition in added:
        if column not in have[table]:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    conn.execute(jobs.update().where(jobs.c.id.in_(sa.select(outputs.c.job_id))).values(has_outputs=1))
    for row in conn.execute(sa.select(workers.c.id, workers.c.info)):
        conn.execute(workers.update().where(workers.c.id == row.id)
                     .values(blender=newest_blender(json.loads(row.info))))
    schema_version.create(conn)
    conn.execute(schema_version.insert().values(version=1))
    for index in (*jobs.indexes, *workers.indexes):
        index.create(conn, checkfirst=True)


def _to_v3(conn: sa.Connection) -> None:
    """Webhooks, a job's own webhook URL, retention's mark, and the indexes for paging and retention."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
    for column in (jobs.c.webhook_url, jobs.c.outputs_deleted):
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE jobs ADD COLUMN {column.name} {kind}")
    webhooks.create(conn, checkfirst=True)
    existing = {index["name"] for index in sa.inspect(conn).get_indexes("jobs")}
    for index in jobs.indexes:
        if index.name not in existing:
            index.create(conn)


def _to_v4(conn: sa.Connection) -> None:
    """Idempotency keys of submissions."""
    idempotency.create(conn, checkfirst=True)


def _to_v5(conn: sa.Connection) -> None:
    """The servers' liveness stamp."""
    alive.create(conn, checkfirst=True)


def _to_v6(conn: sa.Connection) -> None:
    """The server's keys (the dashboard's sessions) and what each worker last said of itself."""
    keys.create(conn, checkfirst=True)
    have = {c["name"] for c in sa.inspect(conn).get_columns("workers")}
    for column in (workers.c.state, workers.c.held_until):
        if column.name not in have:
            conn.exec_driver_sql(f"ALTER TABLE workers ADD COLUMN {column.name} "
                                 f"{column.type.compile(dialect=conn.dialect)}")


def _to_v7(conn: sa.Connection) -> None:
    """Each ended attempt at a job (the dashboard's timeline)."""
    attempts.create(conn, checkfirst=True)


def _to_v8(conn: sa.Connection) -> None:
    """A job waiting while a worker gets the Blender it needs."""
    if "blender_awaited_until" not in {c["name"] for c in sa.inspect(conn).get_columns("jobs")}:
        kind = jobs.c.blender_awaited_until.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE jobs ADD COLUMN blender_awaited_until {kind}")


_STEPS = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5, 6: _to_v6, 7: _to_v7, 8: _to_v8}


def blender_key(version: str | None) -> int:
    """``4.5.1`` -> 4005001: versions compared as numbers in SQL; 0 for none."""
    if not version:
        return 0
    parts = [int(p) for p in version.split(".")[:3]] + [0, 0]
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A worker that says nothing of its Blender is offered every job, as before versions were known.
ANY_BLENDER = 10**9 - 1


def newest_blender(info: dict[str, Any]) -> int:
    keys = []
    for item in info.get("blender") or []:
        try:
            keys.append(blender_key(str(item.get("version"))))
        except (ValueError, AttributeError):
            continue
    return min(max(keys), ANY_BLENDER) if keys else ANY_BLENDER
