"""The store's foundation: the engine for each kind of database, the wake-ups it announces, its errors, and
the ``Database`` every part of the store builds on."""

from __future__ import annotations

import enum
import logging
import secrets
import sqlite3
import ssl
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Unpack

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from worker_app.protocol import limits
from worker_app.server.schema import alive, jobs, keys, migrate
from worker_app.server.store.statements import claim_statements, finish_statement, output_upsert

log = logging.getLogger("homefarm.server")

NOTIFY_CHANNEL = "homefarm"
ACCESS_MARK = "access-changed"  # the server_keys row whose value changes with every revocation or hold

Row = sa.Row[Unpack[tuple[Any, ...]]]  # a row as a query returns it, its columns by name


class WakeKind(enum.StrEnum):
    JOBS = "jobs"  # work may be available
    CANCEL = "cancel"  # one worker's waiting claims end now (it paused or quits)
    CLOSING = "closing"  # this server process shuts down: every waiting claim ends now
    ACCESS = "access"  # a token was revoked or a worker held: every process forgets what it kept of them
    CHANGED = "changed"  # a job or a worker changed in the process named: the dashboards' streams tell it


@dataclass(frozen=True)
class Wakeup:
    """What wakes waiting claims, in this process (the store's listeners) and in the others (PostgreSQL's
    NOTIFY payload, as text: "jobs", "cancel <worker id>", "closing", "access", "changed <process>")."""
    kind: WakeKind
    worker_id: str = ""  # CANCEL: whose claims end
    sender: str = ""  # CHANGED: the process where it changed (a process ignores its own)

    def text(self) -> str:
        if self.kind == WakeKind.CANCEL:
            return f"{self.kind} {self.worker_id}"
        return f"{self.kind} {self.sender}" if self.kind == WakeKind.CHANGED else str(self.kind)

    @classmethod
    def parse(cls, text: str) -> Wakeup | None:
        """A payload another process sent; None for one this version does not know (it is ignored)."""
        kind, _, worker_id = text.partition(" ")
        try:
            found = WakeKind(kind)
        except ValueError:
            return None
        return cls(found, worker_id if found == WakeKind.CANCEL else "",
                   worker_id if found == WakeKind.CHANGED else "")


JOBS = Wakeup(WakeKind.JOBS)
# Token answers and holds are kept this long in each process (an idle worker's claims, every 20 s, cost no
# statement); a revocation or a hold reaches every process at once on PostgreSQL (NOTIFY) and within a poll
# (POLL_S) on the others while claims wait; the process that made it forgets at once.
TOKEN_CACHE_S = 300.0
LAST_USED_EVERY_S = 3600.0  # a token's last_used is written at most this often
TOUCH_EVERY_S = 300.0  # a worker's last_seen is written at most this often (idle costs: docs/server.md)
NEWEST_CACHE_S = 5.0
HELD_CACHE_S = 300.0
POOL_SIZE = 10  # connections per server process to PostgreSQL or MySQL; --db-pool changes it
AUTO_POOL_SIZE = 2  # and in its autocommit pool, for the lone statements of the idle loops and the claims
KEEP_FAILED_S = 3600.0  # outputs of failed and canceled jobs are deleted this long after the job ended
KEEP_OUTPUTS_S = 30 * 86400.0  # and every job's outputs this long after it ended (0: kept until deleted)
CHANGE_NOTICE_S = 1.0  # on PostgreSQL, the other processes hear of this one's changes at most this often
ALIVE_EVERY_S = 30.0  # while leases are held, the liveness stamp is at most this old
OUTAGE_MAX_S = 86400.0  # leases are extended by at most a day, however long no server was alive
WEBHOOK_HOLD_S = 60.0  # a sender holds a delivery this long; if it dies, another process sends it then
ENDED = {"done": "job.done", "failed": "job.failed", "canceled": "job.canceled"}


class LeaseLost(Exception):
    """A call made with a lease that is no longer the job's current one."""


class Canceled(LeaseLost):
    """The lease ended because the web app canceled the job."""


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The call does not fit the job's state (canceling a finished job, say)."""


class KeyReused(Exception):
    """An Idempotency-Key sent again with another request."""


@dataclass
class Claimed:
    job_id: int
    lease_id: str
    attempt: int
    spec: dict[str, Any]
    expires: float
    outputs: dict[str, str]  # name -> SHA-256 an earlier attempt already uploaded: the worker skips those frames


def connect(url: str, pool_size: int = POOL_SIZE, autocommit: bool = False) -> sa.Engine:
    """An engine for ``url`` with the settings each kind of database needs here; ``autocommit``: one whose
    connections run each statement as its own transaction (a second, small pool for the store's lone
    statements on the servers: no COMMIT or ROLLBACK round trip around them)."""
    url, connect_args = _driver_url(url), {}
    if url.startswith("sqlite"):
        # One connection shared in turn: SQLite takes one writer at a time, and a queue for the pool wakes
        # the next caller at once where SQLite's own busy wait would sleep for up to 100 ms.
        engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                  connect_args={"check_same_thread": False, "isolation_level": None})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if url.startswith(("mysql", "mariadb")):
        url, connect_args["ssl"] = mysql_tls(url)
    # A fixed pool: a connection opened per burst and closed after costs a new server process on PostgreSQL
    # (milliseconds) each time. Hosted databases and their proxies close idle connections (TiDB Serverless,
    # PgBouncer, a cloud NAT) and restart: each connection is checked as it leaves the pool (a ping: MySQL's
    # COM_PING is no statement; PostgreSQL's is the smallest one), so a dropped one is replaced before a
    # request sees it, and recycled after an hour. No ROLLBACK when a connection goes back: every use ends in
    # its own COMMIT or ROLLBACK already. READ COMMITTED on MySQL too (PostgreSQL's default): its REPEATABLE
    # READ takes gap locks on the queue's index that deadlock claims against submits.
    options: dict[str, Any] = dict(pool_size=pool_size, max_overflow=0, pool_recycle=3600, pool_timeout=30,
                                   pool_pre_ping=True, pool_reset_on_return=None, connect_args=connect_args)
    if autocommit:
        return sa.create_engine(url, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True, **options)
    return sa.create_engine(url, isolation_level="READ COMMITTED", **options)


def mysql_tls(url: str) -> tuple[str, ssl.SSLContext | None]:
    """PyMySQL's ``ssl`` for ``url``, and the URL without the TLS options homefarm reads itself.

    A database on another machine is reached over TLS with its certificate verified, chain and host name,
    against the system's CA bundle (``ssl_ca=/path`` names another); PyMySQL's own URL options would check the
    chain but not the name. On loopback TLS is off unless ``ssl_ca`` asks for it. ``tls=insecure`` encrypts
    without verifying (logged each start: for a test database only)."""
    parsed = make_url(url)
    query = dict(parsed.query)
    ca = query.pop("ssl_ca", None)
    mode = query.pop("tls", None)
    for key in ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled", "ssl_check_hostname", "ssl"):
        query.pop(key, None)
    bare = parsed.set(query=query).render_as_string(hide_password=False)
    if isinstance(ca, tuple) or isinstance(mode, tuple):
        raise ValueError("the database URL names ssl_ca or tls more than once")
    if mode not in (None, "verify", "insecure", "off"):
        raise ValueError(f"the database URL's tls={mode!r} is not one of verify, insecure, off")
    local = parsed.host in (None, "", "localhost", "127.0.0.1", "::1")
    if mode == "off" or (mode is None and local and ca is None):
        if not local:
            log.warning("the database at %s is reached without TLS (tls=off): passwords and data cross the "
                        "network in the clear", parsed.host)
        return bare, None
    context = ssl.create_default_context(cafile=ca)
    if ca is None and not context.cert_store_stats().get("x509_ca"):
        import certifi  # a system without a CA bundle (a bare container): requests' bundle

        context.load_verify_locations(certifi.where())
    if mode == "insecure":
        log.warning("the database's TLS certificate is not verified (tls=insecure): anyone on the way can "
                    "pose as it; for a test database only")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return bare, context


def _driver_url(url: str) -> str:
    """The URL with homefarm's chosen driver for each scheme (psycopg 3, PyMySQL) unless one is named."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("a database URL looks like sqlite:///path, postgresql://user@host/db or "
                         "mysql://user@host/db")
    drivers = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
               "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "tidb": "mysql+pymysql",
               "sqlite": "sqlite"}
    if scheme in drivers:
        scheme = drivers[scheme]
    elif scheme.split("+")[0] not in drivers:
        raise ValueError(f"unsupported database {scheme!r}: use sqlite, postgresql, mysql or mariadb")
    url = f"{scheme}://{rest}"
    if scheme.endswith("pymysql") and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return url


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    for pragma in ("busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=OFF"):
        dbapi_connection.execute(f"PRAGMA {pragma}")
    # Switching a new file to WAL takes a lock that SQLite does not wait for: several server processes
    # opening one new file at once would fail with "database is locked". Each tries again for a while.
    deadline = time.monotonic() + 10
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Notices:
    """Sends a notice on a thread of its own when poked: at most once per ``CHANGE_NOTICE_S``, the last poke of a
    burst always followed by one. A notice that fails is logged and dropped (the dashboards miss a refresh)."""

    def __init__(self, send: Callable[[], None], every: float = CHANGE_NOTICE_S):
        self._send, self._every = send, every
        self._due = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        self._due.set()
        with self._lock:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="homefarm-change-notices", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._stopped:
                return
            self._due.clear()
            try:
                self._send()
            except Exception as error:
                log.debug("could not tell the other server processes of a change: %s", error)
            time.sleep(self._every)


class Database:
    """The engine, the clock and the caches that the store's parts share; one per server process."""

    def __init__(self, url: str, lease_ttl: float = limits.LEASE_TTL, clock: Callable[[], float] = time.time, pool_size: int = POOL_SIZE,
                 keep_failed: float = KEEP_FAILED_S, keep_outputs: float = KEEP_OUTPUTS_S,
                 webhook_url: str | None = None):
        self.lease_ttl = lease_ttl
        self.keep_failed = keep_failed
        self.keep_outputs = keep_outputs
        self.webhook_url = webhook_url  # every job's end goes there, besides a job's own webhook_url
        self.heartbeat_interval = min(limits.HEARTBEAT_INTERVAL, lease_ttl / 4)
        # A claim's answer can be lost on its way (a proxy cut it): until the worker's first heartbeat says
        # it has the job, the lease is short, and the job soon back in the queue if the answer never came.
        self.first_lease_ttl = min(lease_ttl, max(1.0, limits.FIRST_LEASE_BEATS * self.heartbeat_interval))
        self.clock = clock
        self.engine = connect(url, pool_size)
        self.dialect = self.engine.dialect.name
        # On the servers a lone statement runs in autocommit, from a small pool of its own: no BEGIN, COMMIT
        # or ROLLBACK around it (an idle server's few statements are each one statement: docs/server.md).
        self._auto = connect(url, AUTO_POOL_SIZE, autocommit=True) if self.dialect != "sqlite" else None
        migrate(self.engine)
        self.listeners: list[Callable[[Wakeup], None]] = []  # told of announcements made by this process
        # Told when this process leased a job (the reaper sleeps until a lease can run out) and when a
        # transaction that queued webhook deliveries committed (the sender sleeps until one is due).
        self.lease_listeners: list[Callable[[], None]] = []
        self.webhook_listeners: list[Callable[[], None]] = []
        self.change_listeners: list[Callable[[], None]] = []  # any job changed here (the dashboard's stream)
        self.process_id = secrets.token_hex(6)  # names this process's change notices to the others
        self._notices = Notices(self._send_change_notice) if self.notifies else None
        self.next_expiry: float | None = None  # the soonest a lease the reaper saw last can run out
        self.leases_held = False  # whether the reaper saw any lease last time
        self._stamped = -1e18  # time.monotonic() of this process's last liveness stamp
        self._cache_lock = threading.Lock()
        self._token_cache: dict[str, tuple[str | None, float]] = {}  # hash -> (kind or None, until)
        self._touched: dict[str, float] = {}  # worker id -> when its last_seen was written
        self._blender: dict[str, int] = {}  # worker id -> its newest Blender (a hello makes a new id)
        self._newest: tuple[int, float] = (0, 0.0)  # newest Blender seen lately, and until when it holds
        self._held: dict[str, tuple[float | None, float]] = {}  # worker id -> (held until, cached until)
        self._used_written: dict[str, float] = {}  # token digest -> when this process last wrote its last_used
        self._pick, self._lease = claim_statements(self.dialect)
        self._upsert_output = output_upsert(self.dialect)
        self._finish = finish_statement(self.dialect)
        self.expired_total = 0  # leases this process expired, for the metrics

    def close(self) -> None:
        if self._notices is not None:
            self._notices.stop()
        self.engine.dispose()
        if self._auto is not None:
            self._auto.dispose()

    def _single(self) -> AbstractContextManager[sa.Connection]:
        """A connection for statements that are each complete on their own: autocommit where that saves round
        trips (the servers), a transaction on SQLite (its writes take its lock in BEGIN IMMEDIATE)."""
        return self._auto.connect() if self._auto is not None else self.engine.begin()

    def _read(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads: autocommit on the servers (no ROLLBACK after them), plain on SQLite."""
        return self._auto.connect() if self._auto is not None else self.engine.connect()

    def describe(self) -> str:
        """The database for a log line, without its password."""
        url = self.engine.url
        return f"{url.get_backend_name()} {url.database}" if url.get_backend_name() == "sqlite" else \
            f"{url.get_backend_name()} at {url.host}:{url.port or 'default port'}/{url.database}"

    @property
    def notifies(self) -> bool:
        """Whether other processes hear this store's announcements (PostgreSQL); else they poll."""
        return self.dialect == "postgresql"

    def _announce(self, conn: sa.Connection, message: Wakeup) -> None:
        if self.notifies:
            conn.execute(sa.text("SELECT pg_notify(:channel, :message)"),
                         {"channel": NOTIFY_CHANNEL, "message": message.text()})

    def access_changed(self) -> None:
        """A token was revoked or a worker held or released: this process forgets its kept answers now, the
        others hear it (NOTIFY on PostgreSQL; the access mark, read by their poll, elsewhere)."""
        self.forget_access()
        now = f"{self.clock():.6f}"
        with self.engine.begin() as conn:
            if conn.execute(keys.update().where(keys.c.name == ACCESS_MARK).values(value=now)).rowcount == 0:
                conn.execute(keys.insert().values(name=ACCESS_MARK, value=now))
            self._announce(conn, Wakeup(WakeKind.ACCESS))

    def forget_access(self) -> None:
        """Drops the token answers and worker holds this process kept (from any thread)."""
        with self._cache_lock:
            self._token_cache.clear()
            self._held.clear()

    def _tell(self, message: Wakeup) -> None:
        for listener in list(self.listeners):
            listener(message)

    def _changed(self) -> None:
        """A job or a worker changed in this process: the dashboards' streams here hear it now, those of the
        other processes (PostgreSQL) within ``CHANGE_NOTICE_S``."""
        self._call_all(self.change_listeners)
        if self._notices is not None:
            self._notices.poke()

    def _send_change_notice(self) -> None:
        with self._single() as conn:
            self._announce(conn, Wakeup(WakeKind.CHANGED, sender=self.process_id))

    @staticmethod
    def _call_all(listeners: list[Callable[[], None]]) -> None:
        for listener in list(listeners):
            listener()

    # -- liveness: an outage costs no lease --------------------------------------------------

    def stamp_alive(self, force: bool = False) -> None:
        """Notes in the database that a server process is alive now: while leases are held, at most every
        ALIVE_EVERY_S (``force``: now)."""
        if not force and time.monotonic() - self._stamped < ALIVE_EVERY_S:
            return
        now = self.clock()
        with self._single() as conn:
            if conn.execute(alive.update().where(alive.c.id == 1).values(at=now)).rowcount == 0:
                try:
                    conn.execute(alive.insert().values(id=1, at=now))
                except sa.exc.IntegrityError:  # another process wrote the first stamp meanwhile
                    conn.execute(alive.update().where(alive.c.id == 1).values(at=now))
        self._stamped = time.monotonic()

    def resume_after_outage(self) -> float:
        """At start: every lease is extended by the time since a server process was last known alive (the
        stamp is at most ALIVE_EVERY_S old while leases are held, and written at a clean stop), so that an
        outage costs no worker its job: it kept rendering, and its next heartbeat finds the lease standing.
        Returns the gap (0 when there was none to speak of)."""
        with self._read() as conn:
            last = conn.scalar(sa.select(alive.c.at).where(alive.c.id == 1))
        gap = self.clock() - last if last is not None else 0.0
        if gap <= 1.0:
            return 0.0
        gap = min(gap, OUTAGE_MAX_S)
        with self._single() as conn:
            extended = conn.execute(jobs.update().where(jobs.c.state == "leased", jobs.c.lease_expires.is_not(None))
                                    .values(lease_expires=jobs.c.lease_expires + gap)).rowcount
        self.stamp_alive(force=True)
        if extended:
            log.info("no server was alive for %.0f s: %d lease(s) extended by that", gap, extended)
        return gap

    def ping(self) -> None:
        """Raises if the database cannot be reached. On the servers a connection leaving the pool is checked
        already (MySQL's protocol ping, no statement, so a platform's health check every 15 s costs a metered
        TiDB nothing; PostgreSQL's smallest statement): taking one is the check."""
        if self._auto is not None:
            with self._auto.connect():
                return
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # (ping ends the part above)
