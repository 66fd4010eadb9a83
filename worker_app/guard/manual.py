"""The owner's own pause: a small file that the CLI, the tray and the worker share."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from worker_app import constants as C
from worker_app.guard.causes import Cause, PauseKind
from worker_app.system import files


class ManualPause:
    """The owner's own pause, kept in a small file so the CLI, the tray and the worker share it."""

    def __init__(self, path: Path, clock=time.time):
        self.path = path
        self.clock = clock
        self._cache: tuple[float, dict | None] = (-1.0, None)

    def pause(self, seconds: float | None = None, until: dt.datetime | None = None) -> None:
        """Pauses for ``seconds``, until ``until``, or (both None) until resumed."""
        end = until.timestamp() if until else (self.clock() + seconds if seconds is not None else None)
        files.write_atomic(self.path, json.dumps({"until": end, "since": self.clock()}))

    def resume(self) -> None:
        files.remove(self.path)

    def _read(self) -> dict | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._cache = (-1.0, None)
            return None
        if mtime != self._cache[0]:
            try:
                self._cache = (mtime, json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                self._cache = (mtime, {"until": None})
        return self._cache[1]

    def check(self, now: dt.datetime) -> Cause | None:
        state = self._read()
        if state is None:
            return None
        until = state.get("until")
        if until is not None and until <= now.timestamp():
            self.resume()
            return None
        if until is None:
            return Cause(PauseKind.MANUAL, "paused until you resume", sticky=False)
        end = dt.datetime.fromtimestamp(until)
        when = end.strftime("%H:%M") if end.date() == now.date() else end.strftime("%a %H:%M")
        return Cause(PauseKind.MANUAL, f"paused by you until {when}", until=end, sticky=False)


def tomorrow_morning(now: dt.datetime) -> dt.datetime:
    return (now + dt.timedelta(days=1)).replace(hour=C.MORNING_HOUR, minute=0, second=0, microsecond=0)



def parse_duration(text: str, now: dt.datetime | None = None) -> dict:
    """``30m``, ``1h``, ``90s``, ``tomorrow`` (morning) or ``indefinitely`` → ``ManualPause.pause()`` arguments."""
    text = text.strip().lower()
    if text in ("indefinitely", "forever", "until-resumed"):
        return {}
    if text == "tomorrow":
        return {"until": tomorrow_morning(now or dt.datetime.now())}
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) >= 2 and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return {"seconds": float(text[:-1]) * units[text[-1]]}
    raise ValueError(f"{text!r}: use 30m, 1h, tomorrow or indefinitely")
