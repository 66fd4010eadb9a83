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
import time
from typing import TYPE_CHECKING, Any

import requests

from worker_app import __version__

if TYPE_CHECKING:
    from worker_app.server.store import Store
    from worker_app.server.store.webhooks import Delivery

log = logging.getLogger("homefarm.server")

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
    """Sends due deliveries every ``interval`` seconds, on a thread of the server's pool."""

    def __init__(self, store: Store, secret: str | None, backoff: float = BACKOFF_BASE_S, interval: float = 1.0):
        self.store = store
        self.secret = secret
        self.backoff = backoff
        self.interval = interval
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"homefarm-server/{__version__}"
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.session.close()

    async def _run(self) -> None:
        from starlette.concurrency import run_in_threadpool
        while True:
            try:
                await run_in_threadpool(self.send_due)
            except Exception as error:  # the database is away: try again at the next round
                log.warning("webhooks: could not read the deliveries: %s", error)
            await asyncio.sleep(self.interval)

    def send_due(self) -> int:
        sent = 0
        for row in self.store.due_webhooks():
            sent += self._deliver(row)
        return sent

    def _deliver(self, row: Delivery) -> bool:
        body = row.body.encode()
        headers = {"Content-Type": "application/json", "Homefarm-Event": row.event,
                   "Homefarm-Delivery": f"evt_{row.id}"}
        if self.secret:
            headers["Homefarm-Signature"] = signature(self.secret, body, int(time.time()))
        error = None
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
