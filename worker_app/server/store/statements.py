"""The statements whose text differs between SQLite, PostgreSQL and the MySQL family, and the hot path's
statements, built once with bind parameters. Every dialect branch of the store is here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from worker_app.server.schema import jobs, outputs

# The statements of a job's way from claim to done are built once, with bind parameters: SQLAlchemy then
# neither builds nor keys them again on each call (about 60 µs of CPU a statement, measured on PostgreSQL).
_bp = sa.bindparam
LEASE_HELD = sa.and_(jobs.c.id == _bp("w_job"), jobs.c.lease_id == _bp("w_lease"), jobs.c.state == "leased",
                      jobs.c.lease_expires >= _bp("w_now"))
LEASE_ROW = sa.select(jobs.c.id, jobs.c.state, jobs.c.lease_id, jobs.c.lease_expires, jobs.c.attempts,
                       jobs.c.max_attempts, jobs.c.min_blender, jobs.c.has_outputs).where(jobs.c.id == _bp("w_job"))
OUTPUT_ROW = sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size).where(
    outputs.c.job_id == _bp("w_job"), outputs.c.name == _bp("w_name"))
JOB_OUTPUTS = sa.select(outputs.c.name, outputs.c.sha256, outputs.c.size).where(
    outputs.c.job_id == _bp("w_job")).order_by(outputs.c.name)
STORED_NAMES = sa.select(outputs.c.name).where(outputs.c.job_id == _bp("w_job"))
CLAIMED = (jobs.c.id, jobs.c.spec, jobs.c.attempts, jobs.c.has_outputs)  # what a claim reads of its job
CLAIMED_ROW = sa.select(*CLAIMED).where(jobs.c.id == _bp("w_job"))
END_ROW = sa.select(jobs.c.tag, jobs.c.error, jobs.c.attempts, jobs.c.webhook_url).where(jobs.c.id == _bp("w_job"))


def finish_statement(dialect: str) -> sa.Update:
    """A job's usual end in one statement: its lease held, every output it names stored, no webhook to queue.
    (On PostgreSQL the names go as one array: an expanding IN list is built anew on every call.)"""
    named = outputs.c.name == sa.any_(_bp("w_names", type_=postgresql.ARRAY(sa.String))) \
        if dialect == "postgresql" else outputs.c.name.in_(_bp("w_names", expanding=True))
    stored = sa.select(sa.func.count()).where(outputs.c.job_id == _bp("w_job"), named).scalar_subquery()
    return jobs.update().where(LEASE_HELD, jobs.c.webhook_url.is_(None), stored == _bp("w_count")).values(
        state="done", lease_id=None, lease_expires=None, stats=_bp("v_stats"), warnings=_bp("v_warnings"),
        updated=_bp("v_now"), finished=_bp("v_now"), error=None)


@lru_cache(maxsize=None)
def leased_update(columns: tuple[str, ...]) -> sa.Update:
    """``UPDATE jobs SET <columns> WHERE <the lease is held>``, one statement per set of columns."""
    return jobs.update().where(LEASE_HELD).values({column: _bp("v_" + column) for column in columns})


def claim_statements(dialect: str) -> tuple[Any, ...]:
    """(pick, lease): the best queued job this worker can run, and its lease as a compare-and-set; on
    PostgreSQL and SQLite the lease is one statement that picks too and returns the job."""
    # A job that needs a newer Blender than this worker has waits for a worker that has it; when no worker
    # seen lately has it, any worker takes it and fails it with the reason, rather than it waiting forever,
    # unless a worker is getting that Blender (for a day at most).
    nobody_has_it = sa.and_(jobs.c.min_blender > _bp("w_newest"),
                            sa.or_(jobs.c.blender_awaited_until.is_(None),
                                   jobs.c.blender_awaited_until < _bp("v_now")))
    eligible = sa.and_(jobs.c.state == "queued", sa.or_(jobs.c.min_blender <= _bp("w_mine"), nobody_has_it))
    values = dict(state="leased", lease_id=_bp("v_lease"), worker_id=_bp("v_worker"),
                  lease_expires=_bp("v_expires"), attempts=jobs.c.attempts + 1, claimed=_bp("v_now"),
                  updated=_bp("v_now"), progress=None)
    pick = sa.select(jobs.c.id).where(eligible).order_by(jobs.c.priority.desc(), jobs.c.id).limit(1)
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    if dialect in ("postgresql", "sqlite"):
        # SQLite has one writer at a time; PostgreSQL skips rows that other claims hold.
        return pick, jobs.update().where(jobs.c.id == pick.scalar_subquery(), jobs.c.state == "queued") \
            .values(**values).returning(*CLAIMED)
    return pick, jobs.update().where(jobs.c.id == _bp("w_job"), jobs.c.state == "queued").values(**values)


def output_upsert(dialect: str) -> sa.Executable:
    """Records an output, replacing the row an earlier attempt left under the same name. On PostgreSQL in
    one statement with the lease's check (a row comes back only if the lease was held); elsewhere the caller
    checks the lease in the same transaction."""
    # (Named unlike any column: an UPDATE would take a parameter named after one of its columns as a value.)
    values: dict[str, Any] = dict(job_id=_bp("o_job"), name=_bp("o_name"), sha256=_bp("o_sha256"), size=_bp("o_size"),
                  created=_bp("o_created"))
    if dialect == "postgresql":
        held = jobs.update().where(LEASE_HELD).values(has_outputs=1).returning(jobs.c.id).cte("held")
        insert = postgresql.insert(outputs).from_select(
            ["job_id", "name", "sha256", "size", "created"],
            sa.select(held.c.id, values["name"], values["sha256"], values["size"], values["created"]))
        return insert.on_conflict_do_update(index_elements=[outputs.c.job_id, outputs.c.name], set_={
            "sha256": insert.excluded.sha256, "size": insert.excluded.size, "created": insert.excluded.created,
        }).returning(outputs.c.job_id)
    if dialect == "sqlite":
        lite = sqlite_dialect.insert(outputs).values(**values)
        return lite.on_conflict_do_update(index_elements=[outputs.c.job_id, outputs.c.name], set_={
            "sha256": lite.excluded.sha256, "size": lite.excluded.size, "created": lite.excluded.created})
    upsert = mysql.insert(outputs).values(**values)
    return upsert.on_duplicate_key_update(sha256=upsert.inserted.sha256, size=upsert.inserted.size,
                                          created=upsert.inserted.created)
