"""Wakes the claims waiting in this server process when a job may be theirs, from wherever the job came, and
runs the lease reaper; both cost the database next to nothing while nothing happens (docs/server.md, "What
idle costs").

A waiting claim holds no thread and no transaction: it is a coroutine waiting on its ``Waiter``. It asks the
database only when a job may be there for its worker: this process knows each worker's last empty answer and
every change that may have queued a job since (a generation count), so an idle worker's claims, one after
another, cost no statement. Three sources wake claims:
- this process's own changes (a submit, a requeue, a release), told by the store at once;
- on PostgreSQL, the other processes' changes, through ``LISTEN homefarm`` on one connection of its own;
- on SQLite and the MySQL family, which have no such channel, one statement every ``poll_s`` (60 s) while
  claims wait: a job submitted through another process reaches them within that.
The reaper sleeps until the soonest lease can run out (at most ``REAP_IDLE_S`` when none is held: another
process may have leased one) and wakes when this process leases a job; while leases are held it keeps the
servers' liveness stamp fresh, so that a server starting after an outage extends them by the gap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from worker_app.server.store import JOBS, NOTIFY_CHANNEL, Store, WakeKind, Wakeup
from worker_app.server.store.base import ALIVE_EVERY_S

log = logging.getLogger("homefarm.server")

POLL_S = 90.0  # no NOTIFY (SQLite, MySQL, TiDB): how often waiting claims look for other processes' jobs
REAP_IDLE_S = 600.0  # with no lease seen, how often the reaper looks for one another process made
RETRY_S = 5.0  # after the database did not answer


def call_from_any_thread(loop: asyncio.AbstractEventLoop | None, fn: Callable[..., object], *args: object) -> None:
    """Runs ``fn(*args)`` on ``loop`` soon, from any thread; nothing when the loop is gone (the server stopped)."""
    if loop is None or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop closed meanwhile
        pass


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
    def __init__(self, store: Store, poll_s: float = POLL_S):
        self.store = store
        self.poll_s = poll_s
        self.closing = False
        self.generation = 0  # counts the changes that may have queued a job
        self._empty_at: dict[str, int] = {}  # worker id -> the generation its last claim found nothing at
        self._waiters: set[Waiter] = set()
        self._leased: asyncio.Event | None = None
        self._access_mark: str | None = None
        self._mark_read = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        # Told (on the listening thread) when another process says a job or a worker changed there: the
        # dashboards' streams in this one.
        self.changed_elsewhere: list[Callable[[], None]] = []

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._leased = asyncio.Event()
        self.store.listeners.append(self._from_any_thread)
        self.store.lease_listeners.append(self._lease_made)
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
        if self._lease_made in self.store.lease_listeners:
            self.store.lease_listeners.remove(self._lease_made)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener:
            await asyncio.to_thread(self._listener.join, 5)

    def waiter(self, worker_id: str) -> _Registered:
        return _Registered(self, Waiter(worker_id))

    def cancel(self, worker_id: str) -> None:
        """Ends this worker's waiting claims in this process now, with no job (on the event loop's thread)."""
        self._deliver(Wakeup(WakeKind.CANCEL, worker_id))

    def waiting(self, worker_id: str) -> bool:
        return any(w.worker_id == worker_id for w in self._waiters)

    def may_have_work(self, worker_id: str) -> bool:
        """Whether anything that may have queued a job happened since this worker's claim last found none."""
        return self._empty_at.get(worker_id) != self.generation

    def found_nothing(self, worker_id: str, generation: int) -> None:
        """The worker's claim, begun at ``generation``, found no job for it."""
        self._empty_at[worker_id] = generation
        if len(self._empty_at) > 10_000:  # workers come and go (each hello is a new id)
            self._empty_at.clear()

    def _lease_made(self) -> None:
        if self._leased is not None:
            call_from_any_thread(self._loop, self._leased.set)

    def _from_any_thread(self, message: Wakeup) -> None:
        call_from_any_thread(self._loop, self._deliver, message)

    def _deliver(self, message: Wakeup) -> None:
        if message.kind == WakeKind.JOBS:
            self.generation += 1
        elif message.kind == WakeKind.ACCESS:
            self.store.forget_access()
            return
        for waiter in list(self._waiters):
            waiter.wake(message)

    # -- the sources --------------------------------------------------------------------------

    async def _reap(self) -> None:
        assert self._leased is not None
        while True:
            self._leased.clear()
            try:
                expired = await asyncio.to_thread(self.store.expire_leases)
                if expired:
                    log.info("%d lease(s) expired", expired)
                if self.store.leases_held:
                    await asyncio.to_thread(self.store.stamp_alive)
                delay = self._reap_delay()
            except Exception as error:  # the database may be away for a while: the next round tries again
                log.warning("could not expire leases: %s", error)
                delay = RETRY_S
            try:
                await asyncio.wait_for(self._leased.wait(), delay)
            except TimeoutError:
                pass

    def _reap_delay(self) -> float:
        """Until the soonest lease can run out, the next liveness stamp while leases are held, or a while."""
        delay = REAP_IDLE_S
        if self.store.next_expiry is not None:
            delay = min(delay, max(self.store.next_expiry - self.store.clock(), 0.0) + 0.05)
        if self.store.leases_held:
            delay = min(delay, ALIVE_EVERY_S)
        return delay

    async def _poll(self) -> None:
        since = time.time()
        while True:
            await asyncio.sleep(self.poll_s)
            if not self._waiters:
                since = time.time()
                continue
            try:
                now = time.time()
                queued, canceled, mark = await asyncio.to_thread(self.store.poll_wakeups, since - 1.0)
                since = now
                if not self._mark_read or mark != self._access_mark:
                    # A token revoked or a worker held in another process (at the first read: perhaps since
                    # this process kept its answers, so they go too).
                    self.store.forget_access()
                self._access_mark, self._mark_read = mark, True
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
                            if message is None:
                                continue
                            if message.kind == WakeKind.CHANGED:
                                if message.sender != self.store.process_id:
                                    for listener in list(self.changed_elsewhere):
                                        listener()
                            else:
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
