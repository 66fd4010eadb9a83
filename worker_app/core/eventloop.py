"""A thread that owns some state alone: other threads post events to its queue, and it applies them.

The worker loop is one (``core/loop.py``). Blocking work runs on helper threads through ``call``; while it
waits, the owner keeps applying events, so news from other threads takes effect at once, and only the
owner's thread ever changes the state it publishes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import Any, Callable, TypeVar

from worker_app.core.events import CallDone
from worker_app.core.state import Snapshot, State, allowed

log = logging.getLogger("homefarm.worker")

T = TypeVar("T")


class EventLoop:
    """Subclasses define ``_apply_one(event)`` and call ``show``/``call``/``wait_until`` from their thread."""

    _stopping: threading.Event  # set by the subclass when the owner is to stop

    def __init__(self, on_snapshot: Callable[[Snapshot], None] | None = None):
        self.on_snapshot = on_snapshot or (lambda snapshot: None)
        self._events: queue.Queue[Any] = queue.Queue()
        self._snapshot = Snapshot()
        self._loop_thread: threading.Thread | None = None
        self.refused: list[tuple[State, State]] = []  # moves enter() refused: none, in a correct worker

    def post(self, event: object) -> None:
        """From any thread: hands ``event`` to the owner."""
        self._events.put(event)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def show(self, **changes: Any) -> None:
        """Changes the snapshot (anything but its state: ``enter``) and hands it to the display. Only the loop's
        thread calls this."""
        assert "state" not in changes, "a state is entered through enter(), which checks the move"
        self._publish(changes)

    def enter(self, state: State, **changes: Any) -> bool:
        """Moves to ``state`` with ``changes``: the one way into a state, checked against
        ``core/state.TRANSITIONS``. A move the table does not allow is refused (logged; the other changes still
        apply) and returns False: a stopping worker never shows "waiting" again."""
        old = self._snapshot.state
        if not allowed(old, state):
            log.error("refused a move of the worker from %s to %s", old.value, state.value)
            self.refused.append((old, state))
            self._publish(changes)
            return False
        self._publish({**changes, "state": state})
        return True

    def _publish(self, changes: dict[str, Any]) -> None:
        assert self._loop_thread in (None, threading.current_thread()), "the worker's state has one writer"
        self._snapshot = snapshot = replace(self._snapshot, **changes)
        try:
            self.on_snapshot(snapshot)
        except Exception:  # a broken display must not stop the worker
            log.exception("snapshot callback failed")

    def call(self, fn: Callable[..., T], *args: Any, name: str = "io") -> T:
        """Runs a blocking ``fn(*args)`` on a helper thread and applies events until it returns.

        It returns once its own answer has come through the queue, so every event posted before that answer
        (a pause, new settings) has been applied by then."""
        done = CallDone(name)

        def work() -> None:
            try:
                done.result = fn(*args)
            except BaseException as error:  # handed back to the loop, raised there
                done.error = error
            self.post(done)

        threading.Thread(target=work, name=f"worker-{name}", daemon=True).start()
        self.wait_until(done.finished.is_set)
        if done.error is not None:
            raise done.error
        result: T = done.result
        return result

    def wait_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Applies events until ``condition()`` holds; False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                return condition()
            self._apply(event)
        return True

    def _sleep(self, seconds: float) -> None:
        """Waits ``seconds`` while applying events; a stop ends the wait."""
        self.wait_until(self._stopping.is_set, seconds)

    def _apply(self, event: object) -> None:
        if isinstance(event, CallDone):
            event.finished.set()  # its waiter returns now: every event before it has been applied
            return
        try:
            self._apply_one(event)
        except Exception:  # one bad event must not end the loop
            log.exception("could not apply %s", type(event).__name__)

    def _apply_one(self, event: object) -> None:
        raise NotImplementedError
