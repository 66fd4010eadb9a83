"""The reference job server: ``homefarm serve``. Implements docs/protocol.md on SQLite, PostgreSQL or MySQL.

``JobServer`` is loaded on first use, so that the server's commands (``worker_app.server.cli``) can sit on
``homefarm``'s parser without loading the server's stack until a server starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker_app.server.app import JobServer


def __getattr__(name: str) -> Any:
    if name == "JobServer":
        from worker_app.server.app import JobServer
        return JobServer
    raise AttributeError(f"module 'worker_app.server' has no attribute {name!r}")


__all__ = ["JobServer"]
