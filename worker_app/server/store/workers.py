"""Workers: their sign-on, when they were last seen, and the newest Blender among them."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import sqlalchemy as sa

from worker_app.server.schema import newest_blender, workers
from worker_app.server.store.base import HELD_CACHE_S, JOBS, NEWEST_CACHE_S, TOUCH_EVERY_S, Database


class Workers(Database):
    def register_worker(self, name: str, info: dict[str, Any], known_id: str | None = None) -> str:
        """A worker's hello: a new id, or the one it had (``known_id``, a hello again after it added a Blender)
        when the server knows it by that id and name; its Blenders, versions and GPUs as it says now."""
        now = self.clock()
        info = {k: v for k, v in info.items() if k != "worker_id"}
        blender = newest_blender(info)
        values = dict(name=name, info=json.dumps(info), last_seen=now, blender=blender)
        with self.engine.begin() as conn:
            kept = bool(known_id) and conn.execute(
                workers.update().where(workers.c.id == known_id, workers.c.name == name).values(**values)
            ).rowcount > 0
            worker_id = known_id if kept and known_id else "w_" + secrets.token_hex(8)
            if not kept:
                conn.execute(workers.insert().values(id=worker_id, first_seen=now, **values))
            else:  # a job found nothing for it may now be its (a Blender added): every process claims afresh
                self._announce(conn, JOBS)
        with self._cache_lock:
            self._blender[worker_id] = blender
            self._touched[worker_id] = time.monotonic()
            if blender > self._newest[0]:
                self._newest = (blender, self._newest[1])
        if kept:
            self._tell(JOBS)
        self._changed()
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

    def list_workers(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.last_seen.desc())).all()
        return [{"id": r.id, "name": r.name, "info": json.loads(r.info), "last_seen": r.last_seen,
                 "state": json.loads(r.state) if r.state else None, "held_until": r.held_until} for r in rows]

    def hold_worker(self, name: str, until: float | None) -> list[str]:
        """Offers the worker called ``name`` no job until ``until`` (HELD_FOREVER: until released; None:
        released now), under every id it signed on with; returns those ids."""
        with self.engine.begin() as conn:
            ids = [str(i) for i in conn.scalars(sa.select(workers.c.id).where(workers.c.name == name))]
            if ids:
                conn.execute(workers.update().where(workers.c.name == name).values(held_until=until))
        self.access_changed()
        self._changed()
        return ids

    def held_until(self, worker_id: str) -> float | None:
        """When this worker's hold from the dashboard ends, or None when it is not held (kept a few seconds)."""
        now = time.monotonic()
        with self._cache_lock:
            cached = self._held.get(worker_id)
        if cached is None or cached[1] < now:
            with self._read() as conn:
                until = conn.scalar(sa.select(workers.c.held_until).where(workers.c.id == worker_id))
            cached = (float(until) if until is not None else None, now + HELD_CACHE_S)
            with self._cache_lock:
                if len(self._held) > 10_000:
                    self._held.clear()
                self._held[worker_id] = cached
        until = cached[0]
        return until if until is not None and until > self.clock() else None

    def set_worker_state(self, worker_id: str, state: dict[str, Any]) -> bool:
        """What the worker says of itself now; also counts as seeing it. False for a worker never seen."""
        with self._single() as conn:
            found = conn.execute(workers.update().where(workers.c.id == worker_id)
                                 .values(state=json.dumps(state), last_seen=self.clock())).rowcount > 0
        if found:
            with self._cache_lock:
                self._touched[worker_id] = time.monotonic()
            self._changed()
        return found

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
