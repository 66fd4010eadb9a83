"""Work off the GUI thread, with a lifecycle: results that arrive after the tray closed are dropped.

A function runs on a plain thread; its result (or exception) comes back to a callback on the GUI thread
through a queued Qt signal. The carrier object has no Qt parent, and each thread holds a reference to it,
so a late thread always emits on a live object; ``close()`` marks it closed (nothing more is delivered)
and waits a bounded time for the threads still running.
"""

from __future__ import annotations

import logging
import threading
import time

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger("homefarm.tray")


class Background(QObject):
    finished = Signal(object, object)

    def __init__(self):
        super().__init__()  # no parent: owned by Python, alive while a thread or the tray refers to it
        self.closed = False
        self.pending = 0  # tasks whose callback has not run yet (counted on the GUI thread only)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.finished.connect(self._deliver)

    @property
    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def run(self, fn, on_done=None) -> threading.Thread | None:
        """Runs ``fn()`` on a thread; ``on_done(result)`` follows on the GUI thread unless closed by then."""
        if self.closed:
            return None

        def work():
            try:
                result = fn()
            except (OSError, RuntimeError, ValueError) as error:  # expected: shown to the owner as it is
                log.warning("%s", error)
                result = error
            except Exception as error:  # a bug: logged with its traceback, and shown too
                log.exception("background task failed")
                result = error
            finally:
                with self._lock:
                    self._threads.remove(threading.current_thread())
            if not self.closed:
                self.finished.emit(on_done, result)

        thread = threading.Thread(target=work, daemon=True, name="tray-background")
        with self._lock:
            self._threads.append(thread)
        self.pending += 1
        thread.start()
        return thread

    @Slot(object, object)
    def _deliver(self, on_done, result) -> None:
        try:
            if on_done is not None and not self.closed:
                on_done(result)  # may start more work, counted before this one is done
        finally:
            self.pending -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Delivers nothing more; waits up to ``timeout`` seconds for the threads still running."""
        self.closed = True
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
