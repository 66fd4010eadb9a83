"""The worker token, kept in the OS keyring and nowhere else.

Where no keyring backend exists (a headless Linux box without Secret Service, say) this says so and
how to fix it; it never falls back to a plain-text file.
"""

from __future__ import annotations

import keyring
import keyring.errors
from keyring.backends import fail

SERVICE = "homefarm"


class CredentialError(RuntimeError):
    """The token cannot be stored or read; the message says what to do."""


NO_BACKEND_HELP = (
    "no OS keyring is available to keep the worker token. On Windows and macOS it is built in; on "
    "Linux install and unlock a Secret Service provider (GNOME Keyring or KWallet), e.g. "
    "`sudo apt install gnome-keyring`, and sign in to a desktop session. homefarm does not store the "
    "token in a plain file."
)


def token_kind_problem(token: str) -> str | None:
    """What is wrong with ``token`` as this PC's token, when its prefix says it is the web app's."""
    if token.startswith("hfa_"):
        return ("that is the web app's token (it starts with hfa_); this PC needs a worker token, which starts "
                "with hfw_ (`homefarm serve tokens create --kind worker` makes one)")
    return None


def _key(server_url: str) -> str:
    return f"worker-token@{server_url.rstrip('/')}"


class TokenStore:
    """One small face on keyring: get, set and delete the worker token of one server URL."""

    def __init__(self, backend=None):
        self._backend = backend

    @property
    def backend(self):
        return self._backend or keyring.get_keyring()

    def backend_name(self) -> str:
        backend = self.backend
        return f"{type(backend).__module__}.{type(backend).__name__}"

    def available(self) -> bool:
        return not isinstance(self.backend, fail.Keyring)

    def get(self, server_url: str) -> str | None:
        self._require()
        try:
            return self.backend.get_password(SERVICE, _key(server_url))
        except keyring.errors.KeyringLocked as error:
            raise CredentialError(f"the OS keyring is locked; unlock it and try again ({error})") from None
        except keyring.errors.KeyringError as error:
            raise CredentialError(f"the OS keyring failed: {error}") from None

    def set(self, server_url: str, token: str) -> None:
        self._require()
        try:
            self.backend.set_password(SERVICE, _key(server_url), token)
        except keyring.errors.KeyringError as error:
            raise CredentialError(f"the OS keyring refused the token: {error}") from None

    def delete(self, server_url: str) -> bool:
        self._require()
        try:
            self.backend.delete_password(SERVICE, _key(server_url))
            return True
        except keyring.errors.PasswordDeleteError:
            return False

    def _require(self) -> None:
        if not self.available():
            raise CredentialError(NO_BACKEND_HELP)
