"""Webhooks: a job's end POSTed to the web app, signed, retried with backoff until it answers 2xx.

Deliveries are rows in the database, written in the same transaction that ends the job, so a restart or a
replaced instance loses none; any server process sends them (each holds a delivery while it tries it). A
delivery is at least once: the web app deduplicates by the event's ``id``.

The signature is Stripe's and GitHub's scheme: ``Homefarm-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the secret>``; ``verify`` is the receiving side, as docs/protocol.md shows it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import requests

from worker_app import __version__
from worker_app.server.origin import PrivateTarget, check_public_target
from worker_app.server.wakeups import call_from_any_thread

if TYPE_CHECKING:
    from worker_app.server.store import Store
    from worker_app.server.store.webhooks import Delivery

log = logging.getLogger("homefarm.server")

IDLE_S = 600.0  # with nothing due, how often the sender looks for deliveries another process queued
RETRY_S = 5.0
BACKOFF_BASE_S = 10.0  # then 20, 40, ... up to an hour between tries
BACKOFF_CAP_S = 3600.0
GIVE_UP_AFTER_S = 3 * 86400.0
TOLERANCE_S = 300  # a receiver refuses signatures older than this (replays)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float | None = None, tolerance: int = TOLERANCE_S) -> bool:
    """The web app's check: the signature is ours and recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookSender:
    """Sends the deliveries that are due, then sleeps until the next is due or this process queues one (at most
    ``IDLE_S``, for deliveries another process queued): an idle server asks the database a few times an hour.

    Each round runs on a daemon thread of its own, so that a receiver that takes its time cannot hold the
    server's stop: at shutdown the round is abandoned, and the delivery it held stays due in the database."""

    def __init__(self, store: Store, secret: str | None, backoff: float = BACKOFF_BASE_S,
                 allow_private: bool = False):
        self.store = store
        self.secret = secret
        self.backoff = backoff
        self.allow_private = allow_private
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"homefarm-server/{__version__}"
        self._task: asyncio.Task[Any] | None = None
        self._queued: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queued = asyncio.Event()
        self.store.webhook_listeners.append(self._wake)
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._wake in self.store.webhook_listeners:
            self.store.webhook_listeners.remove(self._wake)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.session.close()

    def _wake(self) -> None:
        if self._queued is not None:
            call_from_any_thread(self._loop, self._queued.set)

    async def _run(self) -> None:
        assert self._loop is not None and self._queued is not None
        while True:
            self._queued.clear()
            try:
                next_at = await self._round()
                delay = IDLE_S if next_at is None else min(IDLE_S, max(next_at - self.store.clock(), 0.0))
            except Exception as error:  # the database is away: try again in a while
                log.warning("webhooks: could not read the deliveries: %s", error)
                delay = RETRY_S
            if delay <= 0:
                continue
            try:
                await asyncio.wait_for(self._queued.wait(), delay)
            except TimeoutError:
                pass

    async def _round(self) -> float | None:
        """Sends what is due, on a daemon thread; when the next delivery is due (None: none waits)."""
        assert self._loop is not None
        done: asyncio.Future[float | None] = self._loop.create_future()

        def work() -> None:
            try:
                result: float | None = self.send_due()
            except BaseException as error:  # handed to the coroutine
                self._settle(done, error=error)
            else:
                self._settle(done, result=result)

        threading.Thread(target=work, name="homefarm-webhooks", daemon=True).start()
        return await done

    def _settle(self, done: asyncio.Future[float | None], result: float | None = None,
                error: BaseException | None = None) -> None:
        def settle() -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)
        call_from_any_thread(self._loop, settle)

    def send_due(self) -> float | None:
        """Sends every delivery that is due, round after round; returns when the next one is due."""
        while True:
            taken, next_at = self.store.take_webhooks()
            for index, row in enumerate(taken):
                if self._stopping:  # the server stops: what this round took and did not try is due again now
                    self.store.release_webhooks([r.id for r in taken[index:]])
                    return None
                self._deliver(row)
            if not taken:
                return next_at

    def _deliver(self, row: Delivery) -> bool:
        if not self.allow_private and row.url != self.store.webhook_url:
            try:
                check_public_target(row.url)
            except PrivateTarget as refused:
                log.error("webhook %s for job %s: not sent: the host %s", row.event, row.job_id, refused)
                self.store.webhook_sent(row.id, f"not sent: the host {refused}", None)
                return False
        body = row.body.encode()
        headers = {"Content-Type": "application/json", "Homefarm-Event": row.event,
                   "Homefarm-Delivery": f"evt_{row.id}"}
        if self.secret:
            headers["Homefarm-Signature"] = signature(self.secret, body, int(time.time()))
        error: str | None = None
        try:
            response = self.session.post(row.url, data=body, headers=headers, timeout=(5, 15),
                                         allow_redirects=False)
            if not 200 <= response.status_code < 300:
                error = f"the webhook answered {response.status_code}"
        except requests.RequestException as failure:
            error = f"the webhook could not be reached: {type(failure).__name__}"
        if error is None:
            self.store.webhook_sent(row.id, None, None)
            log.info("webhook %s for job %s delivered to %s", row.event, row.job_id, row.url)
            return True
        now = self.store.clock()
        if now - row.created > GIVE_UP_AFTER_S:
            log.error("webhook %s for job %s: given up after %d attempts: %s", row.event, row.job_id,
                      row.attempts, error)
            self.store.webhook_sent(row.id, error, None)
            return False
        ceiling = min(BACKOFF_CAP_S, self.backoff * 2 ** min(row.attempts - 1, 20))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        log.warning("webhook %s for job %s: %s; attempt %d, next in %.0f s", row.event, row.job_id, error,
                    row.attempts, delay)
        self.store.webhook_sent(row.id, error, now + delay)
        return False
