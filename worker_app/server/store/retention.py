"""Retention: which jobs' outputs are due for deletion, and the record that they are gone."""

from __future__ import annotations

import sqlalchemy as sa

from worker_app.server.schema import idempotency, jobs, outputs
from worker_app.server.store.base import ENDED, Database


class Retention(Database):
    def forget_idempotency_keys(self, before: float) -> int:
        with self._single() as conn:
            return int(conn.execute(idempotency.delete().where(idempotency.c.created < before)).rowcount)

    def expired_outputs(self, limit: int = 200) -> dict[int, list[str]]:
        """Jobs whose outputs retention deletes now, with their outputs' names."""
        now = self.clock()
        ended_badly = sa.and_(jobs.c.state.in_(("failed", "canceled")), jobs.c.finished < now - self.keep_failed)
        rule = sa.or_(ended_badly, sa.and_(jobs.c.state == "done", jobs.c.finished < now - self.keep_outputs)) \
            if self.keep_outputs > 0 else ended_badly
        with self._read() as conn:
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
