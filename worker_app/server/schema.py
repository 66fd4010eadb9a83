"""The reference server's SQLite schema, the columns added since the first release, and small helpers."""

from __future__ import annotations

import hashlib

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    tag TEXT,
    state TEXT NOT NULL DEFAULT 'queued',
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    lease_id TEXT,
    worker_id TEXT,
    lease_expires REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress TEXT,
    error TEXT,
    log_tail TEXT,
    stats TEXT,
    warnings TEXT,
    min_blender INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    claimed REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS outputs (
    job_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    info TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    created REAL NOT NULL
);
"""

TOKEN_KINDS = ("app", "worker")
# Columns added after the first release: (table, column, definition) for databases made before them.
ADDED_COLUMNS = (("jobs", "warnings", "TEXT"), ("jobs", "min_blender", "INTEGER NOT NULL DEFAULT 0"))


def blender_key(version: str | None) -> int:
    """``4.5.1`` -> 4005001: versions compared as numbers in SQL; 0 for none."""
    if not version:
        return 0
    parts = [int(p) for p in version.split(".")[:3]] + [0, 0]
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def newest_blender(info: dict) -> int:
    keys = []
    for item in info.get("blender") or []:
        try:
            keys.append(blender_key(str(item.get("version"))))
        except (ValueError, AttributeError):
            continue
    # A worker that says nothing of its Blender is offered every job, as before versions were known.
    return max(keys) if keys else 10**9
