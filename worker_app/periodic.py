"""A task that runs every ``interval`` seconds on its own daemon thread until stopped, or at once when poked."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("homefarm.periodic")


class Periodic:
    """Subclasses set ``interval`` and ``thread_name`` and define ``tick()``; a tick returning False ends it."""
    interval: float = 1.0
    thread_name: str = "periodic"

    def _periodic_init(self) -> None:
        self._stop = threading.Event()
        self._poked = threading.Event()  # a tick now, not at the next interval
        self._thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self._periodic_loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """From any thread: the next tick runs now, on the task's own thread."""
        self._poked.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 5)

    def tick(self) -> bool | None:
        raise NotImplementedError

    def finished(self) -> None:
        """Called on the thread once the loop ends."""

    def _periodic_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self.tick() is False:
                    return
                self._poked.wait(self.interval)
                self._poked.clear()
        finally:
            self.finished()
