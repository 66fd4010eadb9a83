"""The reference job server: ``homefarm serve``. Implements docs/protocol.md on SQLite."""

from worker_app.server.app import JobServer

__all__ = ["JobServer"]
