"""Webhook deliveries: queued in the transaction that ends a job, taken by one process at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from worker_app.server import views
from worker_app.server.schema import webhooks
from worker_app.server.store.base import ENDED, WEBHOOK_HOLD_S, Database
from worker_app.server.store.statements import END_ROW


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery that this process holds for sending; ``attempts`` counts this one."""
    id: int
    job_id: int
    url: str
    event: str
    body: str
    attempts: int
    created: float


class Webhooks(Database):
    def queue_end_webhooks(self, conn: sa.Connection, job_id: int, state: str, now: float) -> None:
        """Queues the job's end for the server's webhook and the job's own, in the ending transaction."""
        row = conn.execute(END_ROW, {"w_job": job_id}).one()
        urls = list(dict.fromkeys(url for url in (self.webhook_url, row.webhook_url) if url))
        if not urls:
            return
        event = ENDED[state]
        # The sender hears of them once they are committed (a delivery it read before would not be there).
        sa.event.listen(conn, "commit", self._webhooks_committed, once=True)
        for url in urls:
            delivery = conn.execute(webhooks.insert().values(job_id=job_id, url=url, event=event, body="",
                                                             next_at=now, created=now)).inserted_primary_key[0]  # type: ignore[index]
            body = json.dumps({"id": f"evt_{delivery}", "type": event, "created": now,
                               "job": {"id": str(job_id), "state": state, "tag": row.tag, "error": row.error,
                                       "attempts": row.attempts, "finished": now}}, separators=(",", ":"))
            conn.execute(webhooks.update().where(webhooks.c.id == delivery).values(body=body))

    def _webhooks_committed(self, _conn: sa.Connection) -> None:
        self._call_all(self.webhook_listeners)

    def due_webhooks(self, limit: int = 20) -> list[Delivery]:
        return self.take_webhooks(limit)[0]

    def take_webhooks(self, limit: int = 20) -> tuple[list[Delivery], float | None]:
        """Takes up to ``limit`` deliveries that are due, each held by this process for WEBHOOK_HOLD_S: a
        compare-and-set on its time, so that two processes never send one at once. Also when the next one not
        yet due is (None: none is waiting), read in the same statement."""
        now = self.clock()
        taken: list[Delivery] = []
        with self._read() as conn:  # a read first: nothing due takes no write lock (SQLite's is global)
            waiting = conn.execute(sa.select(webhooks).where(webhooks.c.next_at.is_not(None))
                                   .order_by(webhooks.c.next_at).limit(limit + 1)).all()
        rows = [row for row in waiting if row.next_at <= now][:limit]
        later = [row.next_at for row in waiting if row.next_at > now]
        next_at = now if len(rows) == limit and len(waiting) > limit else (later[0] if later else None)
        if not rows:
            return taken, next_at
        with self.engine.begin() as conn:
            for row in rows:
                if conn.execute(webhooks.update().where(webhooks.c.id == row.id, webhooks.c.next_at == row.next_at)
                                .values(next_at=now + WEBHOOK_HOLD_S, attempts=row.attempts + 1)).rowcount:
                    taken.append(Delivery(row.id, row.job_id, row.url, row.event, row.body, row.attempts + 1,
                                          row.created))
        return taken, next_at

    def send_again(self, job_id: int) -> int:
        """The job's deliveries that were given up on are due again now; returns how many."""
        with self._single() as conn:
            again = conn.execute(webhooks.update().where(webhooks.c.job_id == job_id, webhooks.c.delivered.is_(None),
                                                         webhooks.c.next_at.is_(None))
                                 .values(next_at=self.clock(), created=self.clock())).rowcount
        if again:
            self._call_all(self.webhook_listeners)
            self._changed()
        return int(again)

    def release_webhooks(self, deliveries: list[int]) -> None:
        """Deliveries this process took and will not try (it is stopping): due again now, attempt uncounted."""
        if not deliveries:
            return
        with self._single() as conn:
            conn.execute(webhooks.update().where(webhooks.c.id.in_(deliveries), webhooks.c.delivered.is_(None))
                         .values(next_at=self.clock(), attempts=webhooks.c.attempts - 1))

    def webhook_sent(self, delivery: int, error: str | None, retry_at: float | None) -> None:
        """Delivered (``error`` None), to be tried again at ``retry_at``, or given up (``retry_at`` None)."""
        values: dict[str, Any] = dict(next_at=retry_at, last_error=error)
        if error is None:
            values["delivered"] = self.clock()
        with self._single() as conn:
            conn.execute(webhooks.update().where(webhooks.c.id == delivery).values(**values))

    def webhook_deliveries(self, job_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(webhooks.c.url, webhooks.c.event, webhooks.c.attempts,
                                          webhooks.c.delivered, webhooks.c.next_at, webhooks.c.last_error)
                                .where(webhooks.c.job_id == job_id).order_by(webhooks.c.id)).all()
        return [views.delivery_view(r._mapping) for r in rows]
