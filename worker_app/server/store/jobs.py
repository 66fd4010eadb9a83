"""Jobs on the web app's side: submitted (once per Idempotency-Key), listed a page at a time, canceled."""

from __future__ import annotations

import base64
import json
from typing import Any, Sequence

import sqlalchemy as sa

from worker_app.server import views
from worker_app.server.schema import attempts, blender_key, idempotency, jobs, outputs, workers
from worker_app.server.store.base import JOBS, Row, Conflict, KeyReused, NotFound
from worker_app.server.store.leases import Leases


class Jobs(Leases):
    def submit(self, spec: dict[str, Any], priority: int, max_attempts: int, tag: str | None,
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
            job_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            if key is not None:
                conn.execute(idempotency.insert().values(key=key[0], request_sha256=key[1], job_id=job_id,
                                                         created=now))
            self._announce(conn, JOBS)
        self._tell(JOBS)
        self._changed()
        return job_id

    def _keyed_job(self, key: str, request_sha256: str) -> int | None:
        """The job an earlier submission with this Idempotency-Key made, if any; KeyReused if it had
        another request."""
        with self._read() as conn:
            row = conn.execute(sa.select(idempotency.c.job_id, idempotency.c.request_sha256)
                               .where(idempotency.c.key == key)).first()
        if row is not None and row.request_sha256 != request_sha256:
            raise KeyReused(f"the Idempotency-Key {key!r} was sent before with another request; use a new "
                            f"key for a new job")
        return None if row is None else row.job_id

    def submit_view(self, spec: dict[str, Any], priority: int, max_attempts: int, tag: str | None,
                    key: tuple[str, str] | None = None) -> tuple[dict[str, Any], bool]:
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
        row: dict[str, Any] = {column.name: None for column in jobs.c}
        row.update(id=job_id, spec=json.dumps(spec), tag=tag, state="queued", priority=priority, attempts=0,
                   max_attempts=max_attempts, created=now, updated=now, has_outputs=0)
        return views.job_view(row, [], self.retention), True

    def _lapsed(self, rows: Sequence[Row]) -> bool:
        """Whether one of these jobs still shows a lease that ran out (the reaper runs once a second)."""
        now = self.clock()
        return any(r.state == "leased" and r.lease_expires is not None and r.lease_expires < now for r in rows)

    def get(self, job_id: int) -> dict[str, Any]:
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
        assert row is not None
        return views.job_view(row._mapping, [views.OutputRecord(*r) for r in stored], self.retention)

    def list_jobs(self, state: str | None = None, limit: int = 100, cursor: str | None = None,
                  updated_since: float | None = None, tag: str | None = None,
                  worker: str | None = None,
                  text: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of jobs and the cursor of the next (None after the last). Newest first; with
        ``updated_since``, those changed after it, oldest change first, so a poller keeps the last ``updated``
        it saw. A cursor is opaque; it keeps the order it was made in. ``worker``: jobs the worker of
        that name holds or made an attempt at; ``text``: a job's number, or words in its tag or failure reason."""
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
        if tag:
            query = query.where(jobs.c.tag == tag)
        if worker is not None:
            ids = sa.select(workers.c.id).where(workers.c.name == worker)
            query = query.where(sa.or_(jobs.c.worker_id.in_(ids), jobs.c.id.in_(
                sa.select(attempts.c.job_id).where(attempts.c.worker_id.in_(ids)))))
        if text:
            pattern = "%" + text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
            found: list[sa.ColumnElement[bool]] = [jobs.c.tag.ilike(pattern, escape="!"),
                                                   jobs.c.error.ilike(pattern, escape="!")]
            if text.strip().isdigit() and len(text.strip()) < 18:
                found.append(jobs.c.id == int(text.strip()))
            query = query.where(sa.or_(*found))
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
        return [views.job_view(row._mapping, None, self.retention) for row in rows], following

    def cancel(self, job_id: int) -> dict[str, Any]:
        now = self.clock()
        with self.engine.begin() as conn:
            state = conn.scalar(sa.select(jobs.c.state).where(jobs.c.id == job_id))
            if state is None:
                raise NotFound(f"no job {job_id}")
            # A leased job stays canceled; its worker learns it at the next heartbeat and stops.
            if state == "leased":
                self._end_attempt(conn, job_id, "canceled", now, reason="canceled while rendering")
            changed = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.state.in_(("queued", "leased")))
                                   .values(state="canceled", cancel_requested=1, updated=now, finished=now,
                                           lease_expires=None)).rowcount
            if not changed:
                raise Conflict(f"job {job_id} is already {state}")
            self.queue_end_webhooks(conn, job_id, "canceled", now)
        self._changed()
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per state, for the metrics."""
        with self._read() as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all()
        return {state: count for state, count in rows}

    def set_priority(self, job_id: int, priority: int) -> None:
        with self._single() as conn:
            if not conn.execute(jobs.update().where(jobs.c.id == job_id)
                                .values(priority=priority, updated=self.clock())).rowcount:
                raise NotFound(f"no job {job_id}")
        self._changed()

    def ended_since(self, since: float) -> list[Row]:
        """Jobs that ended (done or failed) after ``since``: when, how, why, and their render time."""
        with self._read() as conn:
            return list(conn.execute(sa.select(jobs.c.finished, jobs.c.state, jobs.c.error, jobs.c.stats)
                                     .where(jobs.c.finished > since, jobs.c.state.in_(("done", "failed")))
                                     .order_by(jobs.c.finished)).all())

    def attempts_of(self, job_id: int) -> list[dict[str, Any]]:
        """The job's ended attempts, oldest first, each with its worker's name and the outputs it uploaded."""
        query = (sa.select(attempts, workers.c.name.label("worker"))
                 .join(workers, workers.c.id == attempts.c.worker_id, isouter=True)
                 .where(attempts.c.job_id == job_id).order_by(attempts.c.id))
        with self._read() as conn:
            rows = conn.execute(query).all()
            stored = conn.execute(sa.select(outputs.c.created).where(outputs.c.job_id == job_id)).scalars().all()
        found = []
        for row in rows:
            item = {k: v for k, v in row._mapping.items() if k not in ("id", "job_id")}
            item["uploaded"] = sum(1 for created in stored
                                   if (row.claimed or 0) <= created <= row.ended)
            found.append(item)
        return found

    def worker_days(self, since: float) -> dict[str, tuple[int, float | None]]:
        """Per worker name (every id it signed on with), the jobs it finished since ``since`` and the GPU energy
        (Wh) they took (None when none was measured)."""
        query = (sa.select(workers.c.name, sa.func.count(), sa.func.sum(attempts.c.energy_wh))
                 .join(workers, workers.c.id == attempts.c.worker_id)
                 .where(attempts.c.ended >= since, attempts.c.outcome == "done")
                 .group_by(workers.c.name))
        with self._read() as conn:
            return {str(w): (int(n), None if wh is None else float(wh)) for w, n, wh in conn.execute(query).all()}

    def last_rendered(self) -> tuple[int, str] | None:
        """The newest done job that still has an output, and that output's name (its first, by name)."""
        with self._read() as conn:
            row = conn.execute(sa.select(jobs.c.id).where(jobs.c.state == "done", jobs.c.has_outputs == 1)
                               .order_by(jobs.c.finished.desc()).limit(1)).first()
            if row is None:
                return None
            name = conn.scalar(sa.select(outputs.c.name).where(outputs.c.job_id == row.id)
                               .order_by(outputs.c.name).limit(1))
        return (int(row.id), str(name)) if name is not None else None

    @property
    def retention(self) -> views.Retention:
        return views.Retention(self.keep_failed, self.keep_outputs)


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
