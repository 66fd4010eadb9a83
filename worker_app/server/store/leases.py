"""A job's way on the worker's side: claimed, leased, renewed, its outputs stored, and its end."""

from __future__ import annotations

import json
import secrets
from typing import Any

import sqlalchemy as sa

from worker_app.server.schema import attempts, blender_key, jobs, keys, workers
from worker_app.server.views import OutputRecord
from worker_app.server.store.base import ACCESS_MARK, JOBS, Row, Canceled, Claimed, Conflict, LeaseLost, NotFound, WakeKind, Wakeup
from worker_app.server.store.statements import CLAIMED_ROW, JOB_OUTPUTS, LEASE_ROW, OUTPUT_ROW, STORED_NAMES, leased_update
from worker_app.server.store.webhooks import Webhooks
from worker_app.server.store.workers import Workers


BLENDER_AWAITED_S = 86400.0  # how long a job waits for a worker that said it is getting the Blender it needs


class Leases(Workers, Webhooks):
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
            done = conn.execute(JOB_OUTPUTS, {"w_job": row.id}).all() if row.has_outputs else []
        self.stamp_alive()  # a lease is held now: the stamp says when this process was last alive
        self._call_all(self.lease_listeners)
        self._changed()
        return Claimed(row.id, lease_id, row.attempts, json.loads(row.spec), expires, {r.name: r.sha256 for r in done})

    def _claim_compare_and_set(self, conn: sa.Connection, params: dict[str, Any]) -> Row | None:
        """The MySQL family: pick, then lease only if still queued (TiDB's SKIP LOCKED does not lock)."""
        for _ in range(8):
            job_id = conn.scalar(self._pick, params)
            if job_id is None:
                return None
            if conn.execute(self._lease, {**params, "w_job": job_id}).rowcount == 1:
                return conn.execute(CLAIMED_ROW, {"w_job": job_id}).one()
        return None

    def cancel_claims(self, worker_id: str) -> None:
        """Ends the worker's waiting claims now with no job (it paused or quits), in every server process."""
        message = Wakeup(WakeKind.CANCEL, worker_id)
        with self.engine.begin() as conn:
            conn.execute(workers.update().where(workers.c.id == worker_id).values(claims_canceled=self.clock()))
            self._announce(conn, message)
        self._tell(message)

    def poll_wakeups(self, since: float) -> tuple[bool, list[str], str | None]:
        """For processes without NOTIFY, in one statement: whether a job is queued, the workers that canceled
        their claims at or after ``since``, and the access mark (it changes with each revocation or hold)."""
        queued = sa.select(sa.literal("q").label("kind"), sa.null().label("value")).where(
            sa.exists().where(jobs.c.state == "queued"))
        canceled = sa.select(sa.literal("c").label("kind"), workers.c.id.label("value")).where(
            workers.c.claims_canceled >= since)
        mark = sa.select(sa.literal("a").label("kind"), keys.c.value.label("value")).where(keys.c.name == ACCESS_MARK)
        with self._read() as conn:
            rows = conn.execute(sa.union_all(queued, canceled, mark)).all()
        return (any(row.kind == "q" for row in rows), [row.value for row in rows if row.kind == "c"],
                next((row.value for row in rows if row.kind == "a"), None))

    def expire_leases(self) -> int:
        """Puts jobs whose lease ran out back in the queue (or fails them on their last attempt). Also notes
        the soonest a lease held now can run out (``next_expiry``) and whether any is held, for the reaper."""
        now = self.clock()
        with self._read() as conn:  # one statement when nothing is due, none of them a write
            leased = conn.execute(sa.select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts, jobs.c.lease_expires)
                                  .where(jobs.c.state == "leased")).all()
        self.leases_held = bool(leased)
        self.next_expiry = min((r.lease_expires for r in leased if r.lease_expires is not None
                                and r.lease_expires >= now), default=None)
        rows = [r for r in leased if r.lease_expires is not None and r.lease_expires < now]
        if not rows:
            return 0
        expired = sa.and_(jobs.c.state == "leased", jobs.c.lease_expires < now)
        requeued = changed = 0
        with self.engine.begin() as conn:
            for row in rows:
                if row.attempts >= row.max_attempts:
                    values = dict(state="failed", lease_id=None, lease_expires=None, updated=now, finished=now,
                                  error=f"lease expired on attempt {row.attempts} of {row.max_attempts}")
                else:
                    values = dict(state="queued", lease_id=None, worker_id=None, lease_expires=None, updated=now)
                # Another server process may be expiring the same lease: whichever changes the row counts it.
                under_way = self._attempt_under_way(conn, row.id)
                if conn.execute(jobs.update().where(jobs.c.id == row.id, expired).values(**values)).rowcount:
                    self._end_attempt(conn, row.id, "expired", now, under_way=under_way,
                                      reason="the worker went silent and its lease ran out")
                    requeued += values["state"] == "queued"
                    changed += 1
                    if values["state"] == "failed":
                        self.queue_end_webhooks(conn, row.id, "failed", now)
            if requeued:
                self._announce(conn, JOBS)
        if requeued:
            self._tell(JOBS)
        if changed:
            self._changed()
        self.expired_total += changed
        return changed

    @staticmethod
    def _attempt_under_way(conn: sa.Connection, job_id: int, lease_id: str | None = None) -> Row | None:
        held = jobs.c.lease_id == lease_id if lease_id is not None else jobs.c.lease_id.is_not(None)
        return conn.execute(sa.select(jobs.c.attempts, jobs.c.worker_id, jobs.c.claimed, jobs.c.progress)
                            .where(jobs.c.id == job_id, held)).first()

    def _end_attempt(self, conn: sa.Connection, job_id: int, outcome: str, now: float, *, lease_id: str | None = None,
                     reason: str | None = None, stats: dict[str, Any] | None = None,
                     under_way: Row | None = None) -> None:
        """Records the attempt under way (the lease ``lease_id``, or whichever is held; or ``under_way``, read
        before) as ended, in the transaction that ends it: the job's timeline and each worker's day."""
        row = under_way if under_way is not None else self._attempt_under_way(conn, job_id, lease_id)
        if row is None:
            return
        try:
            progress = json.loads(row.progress) if row.progress else {}
        except ValueError:
            progress = {}
        progress = progress if isinstance(progress, dict) else {}
        stats = stats or {}

        def number(value: Any) -> float | None:
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        frames_done, frame_count = number(progress.get("frames_done")), number(progress.get("frame_count"))
        if outcome == "done":  # every frame rendered (stats.frames: the spec's frame count)
            frame_count = frame_count if frame_count is not None else number(stats.get("frames"))
            frames_done = frame_count
        conn.execute(attempts.insert().values(
            job_id=job_id, attempt=row.attempts, worker_id=row.worker_id, claimed=row.claimed, ended=now,
            outcome=outcome, reason=(reason or None) and reason[:500],
            frames_done=None if frames_done is None else int(frames_done),
            frame_count=None if frame_count is None else int(frame_count),
            render_s=number(stats.get("render_s")), energy_wh=number(stats.get("gpu_energy_wh"))))

    def _leased_row(self, conn: sa.Connection, job_id: int, lease_id: str) -> Row:
        """The job's row if ``lease_id`` is its current, unexpired lease; else LeaseLost."""
        row = conn.execute(LEASE_ROW, {"w_job": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row.lease_id != lease_id or row.state not in ("leased", "canceled"):
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id} (the job is {row.state})")
        if row.state == "leased" and row.lease_expires is not None and row.lease_expires < self.clock():
            raise LeaseLost(f"lease {lease_id} of job {job_id} expired")
        return row

    def _update_leased(self, conn: sa.Connection, job_id: int, lease_id: str, /, **values: Any) -> None:
        """Changes the job only while ``lease_id`` is its current, unexpired lease: a compare-and-set, as another
        process may have expired it. Else LeaseLost, or Canceled if the web app canceled the job."""
        params = {"w_job": job_id, "w_lease": lease_id, "w_now": self.clock()}
        params.update(("v_" + column, value) for column, value in values.items())
        changed = conn.execute(leased_update(tuple(sorted(values))), params).rowcount
        if changed != 1:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                raise Canceled(f"job {job_id} was canceled")
            raise LeaseLost(f"lease {lease_id} is not the current lease of job {job_id}")

    def heartbeat(self, job_id: int, lease_id: str, progress: dict[str, Any]) -> tuple[bool, float]:
        """Renews the lease; returns (cancel, seconds until it expires)."""
        now = self.clock()
        try:
            with self._single() as conn:
                self._update_leased(conn, job_id, lease_id, lease_expires=now + self.lease_ttl,
                                    progress=json.dumps(progress), updated=now)
        except Canceled:
            return True, 0.0
        self._changed()
        return False, self.lease_ttl

    def check_lease(self, job_id: int, lease_id: str) -> None:
        self.upload_target(job_id, lease_id, None)

    def upload_target(self, job_id: int, lease_id: str, name: str | None) -> OutputRecord | None:
        """Checks the lease for an upload and returns the output ``name`` if an attempt stored it already."""
        with self._single() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                raise Canceled(f"job {job_id} was canceled")
            if not row.has_outputs or name is None:
                return None
            found = conn.execute(OUTPUT_ROW, {"w_job": job_id, "w_name": name}).first()
        return OutputRecord(*found) if found else None

    def output(self, job_id: int, name: str) -> OutputRecord | None:
        with self._read() as conn:
            row = conn.execute(OUTPUT_ROW, {"w_job": job_id, "w_name": name}).first()
        return OutputRecord(*row) if row else None

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

    def complete(self, job_id: int, lease_id: str, names: list[str], stats: dict[str, Any],
                 warnings: list[dict[str, Any]] | None = None) -> None:
        now = self.clock()
        if self.webhook_url is None:
            with self.engine.begin() as conn:
                under_way = self._attempt_under_way(conn, job_id, lease_id)
                if under_way is not None and conn.execute(
                        self._finish, dict(w_job=job_id, w_lease=lease_id, w_now=now, w_names=names,
                                           w_count=len(set(names)), v_stats=json.dumps(stats),
                                           v_warnings=json.dumps(warnings or []), v_now=now)).rowcount == 1:
                    self._end_attempt(conn, job_id, "done", now, stats=stats, under_way=under_way)
                    finished = True
                else:
                    finished = False
            if finished:
                self._changed()
                return
        # A webhook to queue, or something to explain (an output missing, the lease lost or canceled).
        with self.engine.begin() as conn:  # the job's end and its webhooks commit together
            if names:
                stored = set(conn.scalars(STORED_NAMES, {"w_job": job_id}))
                missing = [name for name in names if name not in stored]
                if missing:
                    row = self._leased_row(conn, job_id, lease_id)  # a lost lease is the first thing to say
                    if row.state == "canceled":
                        raise Canceled(f"job {job_id} was canceled")
                    raise Conflict(f"outputs not uploaded: {', '.join(missing)}")
            self._end_attempt(conn, job_id, "done", now, lease_id=lease_id, stats=stats)
            self._update_leased(conn, job_id, lease_id, state="done", lease_id=None, lease_expires=None,
                                stats=json.dumps(stats), warnings=json.dumps(warnings or []), updated=now,
                                finished=now, error=None)
            self.queue_end_webhooks(conn, job_id, "done", now)
        self._changed()

    def fail(self, job_id: int, lease_id: str, reason: str, log_tail: str, retryable: bool,
             needs_blender: str | None = None, installing_blender: bool = False) -> str:
        """Fails the attempt; a retryable failure with attempts left requeues the job. A scene saved by a
        newer Blender than the worker's goes back to the queue, attempt uncounted, when a worker seen in the
        last day has that Blender or this worker is installing it; else the job fails with the reason."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                return "canceled"
            needed = blender_key(needs_blender) if needs_blender else 0
            under_way = self._attempt_under_way(conn, job_id, lease_id)
            if needed and (installing_blender or self._newest_known(conn) >= needed):
                self._update_leased(conn, job_id, lease_id, state="queued", lease_id=None, worker_id=None,
                                    lease_expires=None, attempts=max(row.attempts - 1, 0), log_tail=log_tail,
                                    error=f"{reason}; waiting for a worker with Blender {needs_blender} or newer",
                                    min_blender=max(row.min_blender, needed), updated=now,
                                    blender_awaited_until=now + BLENDER_AWAITED_S if installing_blender else None)
                state = "queued"
            else:
                state = "queued" if retryable and row.attempts < row.max_attempts else "failed"
                self._update_leased(conn, job_id, lease_id, state=state, lease_id=None, worker_id=None,
                                    lease_expires=None, error=reason, log_tail=log_tail, updated=now,
                                    finished=None if state == "queued" else now)
                if state == "failed":
                    self.queue_end_webhooks(conn, job_id, "failed", now)
            self._end_attempt(conn, job_id, "failed" if state == "failed" else "retried", now, reason=reason,
                              under_way=under_way)
            if state == "queued":
                self._announce(conn, JOBS)
        if state == "queued":
            self._tell(JOBS)
        self._changed()
        return state

    def release(self, job_id: int, lease_id: str, reason: str) -> None:
        """Gives the job back unfinished; a release does not count as an attempt."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._leased_row(conn, job_id, lease_id)
            if row.state == "canceled":
                return
            self._end_attempt(conn, job_id, "released", now, lease_id=lease_id, reason=reason)
            self._update_leased(conn, job_id, lease_id, state="queued", lease_id=None, worker_id=None,
                                lease_expires=None, attempts=max(row.attempts - 1, 0),
                                progress=json.dumps({"message": reason}), updated=now)
            self._announce(conn, JOBS)
        self._tell(JOBS)
        self._changed()
