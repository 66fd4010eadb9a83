"""Writing small files safely where another program may hold them open for a moment.

On Windows, replacing or removing a file that an antivirus, an indexer or a viewer has open fails with
"access denied" (WinError 5) or "sharing violation" (WinError 32) for a moment; those are retried briefly.
Every write goes to a temp file of its own (never a fixed ``.tmp`` name two writers could share), is flushed
to disk, then replaces the file in one step.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

RETRIES = 10  # about 2.5 s in all, doubling from 10 ms
FIRST_DELAY = 0.01


def retrying(action, *args) -> None:
    """``action(*args)``, tried again for a moment while another program holds the file (PermissionError)."""
    delay = FIRST_DELAY
    for attempt in range(RETRIES):
        try:
            action(*args)
            return
        except PermissionError:
            if attempt == RETRIES - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Writes ``data`` to ``path``: a reader sees the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        retrying(os.replace, tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove(path: Path) -> None:
    """Removes ``path`` if it is there, retrying while another program holds it."""
    def unlink(p: Path) -> None:
        p.unlink(missing_ok=True)
    retrying(unlink, path)
