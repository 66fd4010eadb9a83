"""Tokens: made, listed, revoked and checked; only their hashes are stored."""

from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from worker_app.server.schema import TOKEN_KINDS, hash_token, keys, tokens
from worker_app.server.store.base import LAST_USED_EVERY_S, TOKEN_CACHE_S, Database, NotFound


class Tokens(Database):
    def create_token(self, kind: str, label: str = "") -> str:
        """Makes a new token and stores only its hash; the plain token is returned once."""
        assert kind in TOKEN_KINDS
        token = f"hf{kind[0]}_" + secrets.token_urlsafe(32)  # hfa_, hfw_, hfd_
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(hash=hash_token(token), kind=kind, label=label,
                                                created=self.clock()))
        return token

    def list_tokens(self) -> list[dict[str, Any]]:
        """Tokens by id (the first 12 characters of their hash), kind, label and dates; never the token."""
        with self._read() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created)).all()
        return [{"id": r.hash[:12], "kind": r.kind, "label": r.label, "created": r.created,
                 "last_used": r.last_used} for r in rows]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Deletes the token whose id starts with ``token_id`` (at least 6 characters, one match)."""
        token_id = token_id.strip().lower()
        if len(token_id) < 6 or any(c not in "0123456789abcdef" for c in token_id):
            raise NotFound("a token id is 6 to 12 hex characters, as `tokens list` shows it")
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(tokens).where(tokens.c.hash.like(token_id + "%"))).all()
            if len(rows) != 1:
                raise NotFound(f"no token {token_id}" if not rows else f"{len(rows)} tokens start with {token_id}")
            conn.execute(tokens.delete().where(tokens.c.hash == rows[0].hash))
        self.access_changed()
        return {"id": rows[0].hash[:12], "kind": rows[0].kind, "label": rows[0].label}

    def has_tokens(self) -> bool:
        with self._read() as conn:
            return bool(conn.scalar(sa.select(sa.func.count()).select_from(tokens)))

    def known_token(self, token: str, kind: str) -> bool | None:
        """The answer ``check_token`` gave lately, from memory (no query, so callers need no thread), or None
        when there is none that still holds."""
        with self._cache_lock:
            cached = self._token_cache.get(hash_token(token))
        if cached is None or cached[1] < time.monotonic():
            return None
        return cached[0] == kind

    def check_token(self, token: str, kind: str) -> bool:
        # Looked up by its SHA-256: a lookup's timing can at most tell a prefix of a hash, which gives
        # nothing towards a token. Answers are kept briefly, so a busy worker costs no query per request.
        known = self.known_token(token, kind)
        if known is not None:
            return known
        return self.kind_of_digest(hash_token(token)) == kind

    def kind_of_digest(self, digest: str) -> str | None:
        """The kind of the token with this SHA-256, or None when there is none (revoked); kept briefly."""
        with self._cache_lock:
            cached = self._token_cache.get(digest)
        if cached is not None and cached[1] >= time.monotonic():
            return cached[0]
        with self._single() as conn:
            found = conn.scalar(sa.select(tokens.c.kind).where(tokens.c.hash == digest))
            if found is not None and time.monotonic() - self._used_written.get(digest, -1e18) > LAST_USED_EVERY_S:
                conn.execute(tokens.update().where(tokens.c.hash == digest).values(last_used=self.clock()))
                self._used_written[digest] = time.monotonic()
        with self._cache_lock:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[digest] = (found, time.monotonic() + TOKEN_CACHE_S)
        return str(found) if found is not None else None

    def server_key(self, name: str) -> bytes:
        """A secret of the server's own (the dashboard's session key), made at first use and shared by every
        process through the database."""
        with self._read() as conn:
            found = conn.scalar(sa.select(keys.c.value).where(keys.c.name == name))
        if found is None:
            try:
                with self._single() as conn:
                    conn.execute(keys.insert().values(name=name, value=secrets.token_hex(32)))
            except sa.exc.IntegrityError:
                pass  # another process made it meanwhile: theirs holds
            with self._read() as conn:
                found = conn.scalar(sa.select(keys.c.value).where(keys.c.name == name))
        return bytes.fromhex(str(found))
