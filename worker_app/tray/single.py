"""One tray per user: the first launch holds a lock and listens; a second one asks it to show itself."""

from __future__ import annotations

import getpass
import re

from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

SHOW = b"show\n"


def server_name() -> str:
    return "homefarm-" + re.sub(r"[^A-Za-z0-9_-]", "_", getpass.getuser())


class SingleInstance(QObject):
    """``acquire()`` is True for the first instance; later ones call ``notify_running()`` and exit."""
    show_requested = Signal()

    def __init__(self, lock_path: str, name: str | None = None):
        super().__init__()
        self.name = name or server_name()
        self.lock = QLockFile(lock_path)
        self.lock.setStaleLockTime(0)  # a lock left by a crashed instance is taken over, by PID check
        self.server: QLocalServer | None = None

    def acquire(self) -> bool:
        if not self.lock.tryLock(100):
            return False
        QLocalServer.removeServer(self.name)  # a socket left by a crash
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.UserAccessOption)
        self.server.newConnection.connect(self._connection)
        self.server.listen(self.name)
        return True

    def _connection(self) -> None:
        socket = self.server.nextPendingConnection()
        if socket is None:
            return
        socket.readyRead.connect(lambda: self._read(socket))

    def _read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll()).startswith(SHOW.strip()):
            self.show_requested.emit()
        socket.disconnectFromServer()

    def notify_running(self, timeout_ms: int = 2000) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(SHOW)
        socket.flush()
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        return True

    def release(self) -> None:
        if self.server is not None:
            self.server.close()
        self.lock.unlock()
