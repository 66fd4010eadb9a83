"""The worker token: in the OS keyring on a desktop; on a headless box, handed over by the service manager.

A desktop worker keeps its token in the OS keyring and nowhere else. A headless render box has no unlocked
keyring: there the service manager hands the token over, as a systemd credential (kept in memory, readable
by the service alone) or a private token file named by ``--token-file``/HOMEFARM_TOKEN_FILE, which is refused
if other users can read it. homefarm never writes the token to a file itself, nor to its config or log.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors
from keyring.backends import fail

SERVICE = "homefarm"


class CredentialError(RuntimeError):
    """The token cannot be stored or read; the message says what to do."""


NO_BACKEND_HELP = (
    "no OS keyring is available to keep the worker token. On Windows and macOS it is built in; on a Linux "
    "desktop install and unlock a Secret Service provider (GNOME Keyring or KWallet), e.g. "
    "`sudo apt install gnome-keyring`, and sign in to a desktop session. On a headless box, run the worker as "
    "a service that hands it the token: the systemd unit homefarm-worker.service (a credential), or "
    "`homefarm run --token-file PATH` with a file only its user can read (README: \"A headless render box\")."
)


def token_kind_problem(token: str) -> str | None:
    """What is wrong with ``token`` as this PC's token, when its prefix says it is the web app's."""
    if token.startswith("hfa_"):
        return ("that is the web app's token (it starts with hfa_); this PC needs a worker token, which starts "
                "with hfw_ (`homefarm serve tokens create --kind worker` makes one)")
    return None


TOKEN_FILE_ENV = "HOMEFARM_TOKEN_FILE"
CREDENTIAL_NAME = "homefarm-token"  # systemd: LoadCredential=homefarm-token:… or SetCredentialEncrypted=


@dataclass(frozen=True)
class ServiceToken:
    token: str
    source: str  # where it came from, for doctor and the log: never the token itself


def service_token(token_file: str | None = None, environ=os.environ) -> ServiceToken | None:
    """The worker token a service manager hands a headless worker, or None when none is given: a token file
    (``--token-file`` or HOMEFARM_TOKEN_FILE), else the systemd credential ``homefarm-token``
    ($CREDENTIALS_DIRECTORY, which systemd keeps in memory, readable by the service alone). A token file that
    other users could read is refused: the token would not be a secret."""
    path = token_file or environ.get(TOKEN_FILE_ENV)
    if path:
        return ServiceToken(_read_private(Path(path)), "the token file")
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / CREDENTIAL_NAME).is_file():
        return ServiceToken(_read(Path(directory) / CREDENTIAL_NAME), f"the systemd credential {CREDENTIAL_NAME}")
    return None


def _read_private(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise CredentialError(f"the token file {path} cannot be read ({error.strerror.lower()})") from None
    if os.name == "posix" and mode & 0o077:
        raise CredentialError(f"the token file {path} can be read by other users (mode {stat.S_IMODE(mode):o}); "
                              f"make it private: chmod 600 {path}")
    return _read(path)


def _read(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialError(f"the token in {path} cannot be read ({error})") from None
    if not token or "\n" in token:
        raise CredentialError(f"{path} must hold the worker token alone, on one line")
    return token


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


def find_token(server_url: str, token_file: str | None = None, tokens: TokenStore | None = None,
               environ=os.environ) -> ServiceToken | None:
    """This worker's token and where it came from: what a service manager handed over, else the OS keyring;
    None when neither has one. CredentialError says what to fix (a token file others can read, a locked or
    missing keyring)."""
    handed = service_token(token_file, environ)
    if handed is not None:
        return handed
    tokens = tokens or TokenStore()
    token = tokens.get(server_url)
    return ServiceToken(token, "the OS keyring") if token else None
