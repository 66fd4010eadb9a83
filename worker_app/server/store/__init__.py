"""The job server's state: jobs, leases, workers, outputs and token hashes, on SQLite, PostgreSQL or MySQL/TiDB.

Every call is one short transaction; none is held open while a claim waits (the waiting is the HTTP
layer's, ``server/wakeups.py``). A claim leases a job with a compare-and-set ``UPDATE … WHERE id = ? AND
state = 'queued'`` checked by its row count, so a job is leased once on every engine, TiDB included (it
parses ``FOR UPDATE SKIP LOCKED`` but does not lock). Several server processes may share one database:
whichever sees an expired lease first puts its job back in the queue.

Each change that can make work available is announced: to this process's waiting claims through
``listeners``, and on PostgreSQL to the other processes' through ``NOTIFY homefarm`` in the same
transaction (delivered only if it commits).

The store is one facade over its parts, each a class of its own module: ``tokens``, ``workers``, ``jobs``
(the web app's side), ``leases`` (the worker's side), ``webhooks`` and ``retention``; the statements that
differ between engines are in ``statements``.
"""

from __future__ import annotations

from worker_app.server.schema import ANY_BLENDER
from worker_app.server.store.base import (ENDED, JOBS, KEEP_FAILED_S, KEEP_OUTPUTS_S, NOTIFY_CHANNEL, Canceled,
                                          Claimed, Conflict, KeyReused, LeaseLost, NotFound, WakeKind, Wakeup,
                                          connect)
from worker_app.server.store.jobs import BadCursor, Jobs
from worker_app.server.store.retention import Retention
from worker_app.server.store.tokens import Tokens


class Store(Jobs, Tokens, Retention):
    """The job server's state: ``Store(url)``; every method is one short transaction."""


__all__ = ["ANY_BLENDER", "BadCursor", "Canceled", "Claimed", "Conflict", "ENDED", "JOBS", "KEEP_FAILED_S",
           "KEEP_OUTPUTS_S", "KeyReused", "LeaseLost", "NOTIFY_CHANNEL", "NotFound", "Store", "WakeKind", "Wakeup",
           "connect"]
