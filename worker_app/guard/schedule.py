"""Schedules: weekly windows in which to render only, or never."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from worker_app.guard.causes import Cause, PauseKind

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^\s*(?:(?P<days>[a-z,\-]+|daily|weekdays|weekends)\s+)?"
                     r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """A weekly time window such as ``mon-fri 01:00-08:00``; it may cross midnight (``22:00-06:00``)."""
    days: frozenset[int]
    start: int  # minutes after midnight
    end: int
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a window such as 'mon-fri 01:00-08:00' or '18:00-23:00'")
        start = int(match["h1"]) * 60 + int(match["m1"])
        end = int(match["h2"]) * 60 + int(match["m2"])
        if start > 24 * 60 or end > 24 * 60 or int(match["m1"]) > 59 or int(match["m2"]) > 59:
            raise ValueError(f"{text!r} has a time outside 00:00-24:00")
        return cls(_parse_days(match["days"]), start, end, text.strip())

    def contains(self, when: dt.datetime) -> bool:
        minute = when.hour * 60 + when.minute
        day = when.weekday()
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Crosses midnight: the part after midnight belongs to the day the window started.
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)

    def boundaries(self, around: dt.datetime, days: int = 8):
        """The times this window opens or closes in the ``days`` after ``around``."""
        base = around.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(-1, days):
            day = base + dt.timedelta(days=offset)
            for minute in (self.start, self.end):
                yield day + dt.timedelta(minutes=minute)


def _parse_days(text: str | None) -> frozenset[int]:
    if not text or text.lower() == "daily":
        return frozenset(range(7))
    text = text.lower()
    if text == "weekdays":
        return frozenset(range(5))
    if text == "weekends":
        return frozenset({5, 6})
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"{part!r} is not a day or a range of days such as mon-fri")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


class Schedule:
    """Render only inside ``render_only`` windows (when any are given) and never inside ``never`` windows."""

    def __init__(self, render_only=(), never=()):
        self.render_only = [Window.parse(w) if isinstance(w, str) else w for w in render_only]
        self.never = [Window.parse(w) if isinstance(w, str) else w for w in never]

    def allows(self, when: dt.datetime) -> bool:
        if self.render_only and not any(w.contains(when) for w in self.render_only):
            return False
        return not any(w.contains(when) for w in self.never)

    def next_allowed(self, now: dt.datetime) -> dt.datetime | None:
        """The first time from ``now`` on when rendering is allowed again."""
        candidates = sorted({t for w in self.render_only + self.never for t in w.boundaries(now) if t > now})
        return next((t for t in candidates if self.allows(t)), None)

    def check(self, now: dt.datetime) -> Cause | None:
        if self.allows(now):
            return None
        until = self.next_allowed(now)
        if until is None:
            return Cause(PauseKind.SCHEDULE, "the schedule allows no rendering", sticky=False)
        when = until.strftime("%H:%M") if until.date() == now.date() or until - now < dt.timedelta(hours=20) \
            else until.strftime("%a %H:%M")
        return Cause(PauseKind.SCHEDULE, f"paused until {when} (schedule)", until=until, sticky=False)


