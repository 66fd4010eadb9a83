"""Wakes the claims waiting in this server process when a job may be theirs, from wherever the job came.

A waiting claim holds no thread and no transaction: it is a coroutine waiting on its ``Waiter``. Three
sources wake it:
- this process's own changes (a submit, a requeue, a release), told by the store at once;
- on PostgreSQL, the other processes' changes, through ``LISTEN homefarm`` on one connection of its own;
- on SQLite and the MySQL family, which have no such channel, a poll once a second while claims wait:
  one indexed ``SELECT … WHERE state = 'queued' LIMIT 1`` and one on the workers' cancel times, so an
  idle hour costs 7,200 tiny queries per process, and none at all when no claim waits.
A lease that runs out is expired by the reaper, once a second in every process, which wakes claims too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from worker_app.server.store import JOBS, NOTIFY_CHANNEL, Store, WakeKind, Wakeup

log = logging.getLogger("homefarm.server")

POLL_S = 1.0
REAP_S = 1.0


class Waiter:
    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self.canceled = False
        self._event = asyncio.Event()

    def wake(self, message: Wakeup) -> None:
        if message.kind == WakeKind.JOBS:
            self._event.set()
        elif message.kind == WakeKind.CLOSING or message == Wakeup(WakeKind.CANCEL, self.worker_id):
            self.canceled = True
            self._event.set()

    async def wait(self, timeout: float, *also: asyncio.Future[Any]) -> None:
        """Until woken, ``timeout`` passes or one of ``also`` is done."""
        woken = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait([woken, *also], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        self._event.clear()


class Wakeups:
    def __init__(self, store: Store):
        self.store = store
        self.closing = False
        self._waiters: set[Waiter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.listeners.append(self._from_any_thread)
        self._tasks.append(asyncio.create_task(self._reap()))
        if self.store.notifies:
            self._listener = threading.Thread(target=self._listen, name="homefarm-listen", daemon=True)
            self._listener.start()
        else:
            self._tasks.append(asyncio.create_task(self._poll()))

    def close(self) -> None:
        """Answers every waiting claim now and lets no new one wait (the server is shutting down)."""
        self.closing = True
        self._deliver(Wakeup(WakeKind.CLOSING))

    async def stop(self) -> None:
        self.close()
        self._stop.set()
        if self._from_any_thread in self.store.listeners:
            self.store.listeners.remove(self._from_any_thread)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener:
            await asyncio.to_thread(self._listener.join, 5)

    def waiter(self, worker_id: str) -> _Registered:
        return _Registered(self, Waiter(worker_id))

    def waiting(self, worker_id: str) -> bool:
        return any(w.worker_id == worker_id for w in self._waiters)

    def _from_any_thread(self, message: Wakeup) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, message)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _deliver(self, message: Wakeup) -> None:
        for waiter in list(self._waiters):
            waiter.wake(message)

    # -- the sources --------------------------------------------------------------------------

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_S)
            try:
                expired = await asyncio.to_thread(self.store.expire_leases)
                if expired:
                    log.info("%d lease(s) expired", expired)
            except Exception as error:  # the database may be away for a while: the next round tries again
                log.warning("could not expire leases: %s", error)

    async def _poll(self) -> None:
        since = time.time()
        while True:
            await asyncio.sleep(POLL_S)
            if not self._waiters:
                since = time.time()
                continue
            try:
                now = time.time()
                queued = await asyncio.to_thread(self.store.has_queued)
                canceled = await asyncio.to_thread(self.store.canceled_since, since - POLL_S)
                since = now
            except Exception as error:
                log.warning("could not check for new jobs: %s", error)
                continue
            for worker_id in canceled:
                self._deliver(Wakeup(WakeKind.CANCEL, worker_id))
            if queued:
                self._deliver(JOBS)

    def _listen(self) -> None:
        """PostgreSQL's NOTIFY, on a connection of its own; reconnects, and wakes all claims after a gap."""
        import psycopg

        conninfo = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.5
                    self._from_any_thread(JOBS)  # whatever was announced while not listening
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            message = Wakeup.parse(notify.payload)
                            if message is not None:
                                self._from_any_thread(message)
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning("lost the database's notifications (%s); again in %.1f s", error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)


class _Registered:
    def __init__(self, wakeups: Wakeups, waiter: Waiter):
        self.wakeups, self.waiter = wakeups, waiter

    def __enter__(self) -> Waiter:
        self.wakeups._waiters.add(self.waiter)
        if self.wakeups.closing:
            self.waiter.canceled = True
        return self.waiter

    def __exit__(self, *exc: object) -> None:
        self.wakeups._waiters.discard(self.waiter)
