"""When to step aside: small pause detectors, each named in the reason it gives, combined with a hold-off.

Each detector answers ``check(now)`` with a ``Cause`` (why to pause, in words a person reads in the tray)
or None. The ``Guard`` runs them on its own thread and publishes a ``PauseDecision``: paused while any
cause holds, and, for causes that come and go (a game's loading screens), until every one has been gone
for ``hold_off_s``. Nothing here imports Qt; the worker and the tray only read the decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from worker_app import constants as C
from worker_app import desktop
from worker_app.gpu import GpuSnapshot
from worker_app.periodic import Periodic

log = logging.getLogger("homefarm.guard")

# Processes that always hold a graphics context: never "foreign GPU load" on their own.
DESKTOP_PROCESSES = {"dwm.exe", "explorer.exe", "csrss.exe", "searchhost.exe", "startmenuexperiencehost.exe",
                     "textinputhost.exe", "shellexperiencehost.exe", "xorg", "xwayland", "gnome-shell",
                     "kwin_x11", "kwin_wayland", "plasmashell", "windowserver"}

# Where game launchers install games; a process whose executable lies below one of these is a game.
GAME_FOLDER_MARKERS = ("steamapps/common/", "epic games/", "gog games/", "gog galaxy/games/", "xboxgames/",
                       "ea games/", "ubisoft game launcher/games/", "battle.net/", "riot games/")

DEFAULT_GAMES = ("eldenring.exe", "cs2.exe", "valorant.exe", "valorant-win64-shipping.exe",
                 "fortnitelauncher.exe", "fortniteclient-win64-shipping.exe", "rocketleague.exe",
                 "leagueclient.exe", "league of legends.exe", "overwatch.exe", "dota2.exe", "gta5.exe",
                 "rdr2.exe", "cyberpunk2077.exe", "bg3.exe", "bg3_dx11.exe", "starfield.exe",
                 "minecraft.exe", "r5apex.exe", "destiny2.exe", "cod.exe", "helldivers2.exe")


@dataclass(frozen=True)
class Cause:
    kind: str  # manual, game, gpu, fullscreen, active, schedule, thermal
    reason: str  # "eldenring.exe is running"
    until: dt.datetime | None = None  # known end (manual, schedule)
    sticky: bool = True  # needs the hold-off before resuming (a game can come back after a loading screen)


@dataclass(frozen=True)
class PauseDecision:
    paused: bool = False
    reason: str = ""  # "Paused: eldenring.exe is running", "Resuming in 42 s"
    causes: tuple[Cause, ...] = ()
    resume_at: float | None = None  # time.time() when the hold-off ends

    def __str__(self) -> str:
        return self.reason or ("paused" if self.paused else "running")


# ---------------------------------------------------------------------------------------------
# Detectors.

class ManualPause:
    """The owner's own pause, kept in a small file so the CLI, the tray and the worker share it."""

    def __init__(self, path: Path, clock=time.time):
        self.path = path
        self.clock = clock
        self._cache: tuple[float, dict | None] = (-1.0, None)

    def pause(self, seconds: float | None = None, until: dt.datetime | None = None) -> None:
        """Pauses for ``seconds``, until ``until``, or (both None) until resumed."""
        end = until.timestamp() if until else (self.clock() + seconds if seconds is not None else None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"until": end, "since": self.clock()}))
        os.replace(tmp, self.path)

    def resume(self) -> None:
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._cache = (-1.0, None)
            return None
        if mtime != self._cache[0]:
            try:
                self._cache = (mtime, json.loads(self.path.read_text()))
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
            return Cause("manual", "paused until you resume", sticky=False)
        end = dt.datetime.fromtimestamp(until)
        when = end.strftime("%H:%M") if end.date() == now.date() else end.strftime("%a %H:%M")
        return Cause("manual", f"paused by you until {when}", until=end, sticky=False)


def tomorrow_morning(now: dt.datetime) -> dt.datetime:
    return (now + dt.timedelta(days=1)).replace(hour=C.MORNING_HOUR, minute=0, second=0, microsecond=0)


class ProcessTable:
    """The running processes' names and executables, read incrementally: only new PIDs are looked up."""

    def __init__(self):
        self._known: dict[int, tuple[str, str]] = {}

    def scan(self) -> dict[int, tuple[str, str]]:
        pids = set(psutil.pids())
        for pid in list(self._known):
            if pid not in pids:
                del self._known[pid]
        for pid in pids - self._known.keys():
            try:
                proc = psutil.Process(pid)
                name = proc.name()
                try:
                    exe = proc.exe()
                except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                    exe = ""
                self._known[pid] = (name, exe)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return self._known


class GameDetector:
    """A game is running: by name, by where it is installed, or because Steam says so."""

    def __init__(self, names=DEFAULT_GAMES, folders=(), own_pids=lambda: set(), own_paths=(),
                 table: ProcessTable | None = None, steam: desktop.SteamStatus | None = None):
        self.names = {n.lower() for n in names}
        self.folders = tuple(str(Path(f)).replace("\\", "/").lower().rstrip("/") + "/" for f in folders)
        self.own_pids = own_pids
        # Blender itself may be installed through Steam: never pause for our own renderer.
        self.own_paths = {os.path.normcase(os.path.realpath(p)) for p in own_paths if p}
        self.table = table or ProcessTable()
        self.steam = steam or desktop.steam_status()

    def is_game(self, name: str, exe: str) -> bool:
        if name.lower() in self.names:
            return True
        path = exe.replace("\\", "/").lower()
        if not path or os.path.normcase(os.path.realpath(exe)) in self.own_paths:
            return False
        return any(marker in path for marker in GAME_FOLDER_MARKERS) or any(
            path.startswith(folder) for folder in self.folders)

    def check(self, now: dt.datetime) -> Cause | None:
        ours = self.own_pids() | {os.getpid()}
        for pid, (name, exe) in sorted(self.table.scan().items()):
            if pid not in ours and self.is_game(name, exe):
                return Cause("game", f"{name} is running")
        app_id = self.steam.running_app_id()
        if app_id:
            return Cause("game", f"Steam game {app_id} is running")
        return None


class ForeignGpuLoad:
    """Another program (not our Blender) keeps the GPU busy above ``threshold`` % for ``seconds``."""

    def __init__(self, snapshot=lambda: GpuSnapshot(0.0), threshold: int = 30, seconds: float = 5.0,
                 own_pids=lambda: set(), clock=time.monotonic):
        self.snapshot = snapshot
        self.threshold = threshold
        self.seconds = seconds
        self.own_pids = own_pids
        self.clock = clock
        self._since: dict[str, float] = {}

    def busy(self, threshold: int | None = None) -> tuple[str, int] | None:
        """The busiest foreign process at or above ``threshold`` (default: ours) now, as (name, load)."""
        threshold = self.threshold if threshold is None else threshold
        snapshot = self.snapshot()
        if not snapshot.available:
            return None
        ours = self.own_pids() | {os.getpid()}
        best = None
        for gpu in snapshot.gpus:
            for proc in gpu.processes:
                if proc.pid in ours or proc.name.lower() in DESKTOP_PROCESSES or proc.load is None:
                    continue
                if proc.load >= threshold and (best is None or proc.load > best[1]):
                    best = (proc.name, proc.load)
        return best

    def check(self, now: dt.datetime) -> Cause | None:
        if self.threshold <= 0:
            return None
        found = self.busy()
        if found is None:
            self._since.clear()
            return None
        name, load = found
        since = self._since.setdefault(name, self.clock())
        if self.clock() - since < self.seconds:
            return None
        return Cause("gpu", f"{name} is using the GPU ({load} %)")


class FullScreenHint:
    """A full-screen program together with a sign of gaming (GPU load, recent input); alone it misfires."""

    def __init__(self, state: desktop.FullScreenState | None = None, gpu: ForeignGpuLoad | None = None,
                 idle: desktop.InputIdle | None = None, low_threshold: int = 10, active_within_s: float = 30):
        self.state = state or desktop.full_screen_state()
        self.gpu = gpu
        self.idle = idle or desktop.input_idle()
        self.low_threshold = low_threshold
        self.active_within_s = active_within_s

    def check(self, now: dt.datetime) -> Cause | None:
        if not self.state.full_screen():
            return None
        if self.gpu is not None:
            loaded = self.gpu.busy(self.low_threshold)
            if loaded:
                return Cause("fullscreen", f"a full-screen program ({loaded[0]}) is using the GPU")
        idle = self.idle.idle_seconds()
        if idle is not None and idle < self.active_within_s:
            return Cause("fullscreen", "a full-screen program is in use")
        return None


class OwnerActive:
    """The owner used keyboard or mouse within ``idle_s`` seconds (optional, off by default)."""

    def __init__(self, idle_s: float = 120, idle: desktop.InputIdle | None = None):
        self.idle_s = idle_s
        self.idle = idle or desktop.input_idle()

    def check(self, now: dt.datetime) -> Cause | None:
        seconds = self.idle.idle_seconds()
        if seconds is not None and seconds < self.idle_s:
            return Cause("active", "you are using the PC")
        return None


class ThermalGuard:
    """A GPU hotter or drawing more power than the owner allows."""

    def __init__(self, snapshot=lambda: GpuSnapshot(0.0), max_temp_c: int = 85, max_power_w: float = 0):
        self.snapshot = snapshot
        self.max_temp_c = max_temp_c
        self.max_power_w = max_power_w

    def check(self, now: dt.datetime) -> Cause | None:
        for gpu in self.snapshot().gpus:
            if self.max_temp_c and gpu.temp_c is not None and gpu.temp_c >= self.max_temp_c:
                return Cause("thermal", f"{gpu.name} at {gpu.temp_c} °C (limit {self.max_temp_c} °C)")
            if self.max_power_w and gpu.power_w is not None and gpu.power_w >= self.max_power_w:
                return Cause("thermal", f"{gpu.name} draws {gpu.power_w:.0f} W (limit {self.max_power_w:.0f} W)")
        return None


class DiskSpace:
    """Claim nothing while the disk holding homefarm's data is nearly full: a job could not finish."""

    def __init__(self, path: Path, min_free_bytes: int, usage=None):
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.usage = usage or (lambda p: psutil.disk_usage(str(p)).free)

    def check(self, now: dt.datetime) -> Cause | None:
        if not self.min_free_bytes:
            return None
        folder = self.path
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        free = self.usage(folder)
        if free < self.min_free_bytes:
            return Cause("disk", f"the disk is nearly full ({free / 1024**3:.1f} GB free, "
                                 f"{self.min_free_bytes / 1024**3:g} GB needed)", sticky=False)
        return None


# ---------------------------------------------------------------------------------------------
# Schedules.

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
            return Cause("schedule", "the schedule allows no rendering", sticky=False)
        when = until.strftime("%H:%M") if until.date() == now.date() or until - now < dt.timedelta(hours=20) \
            else until.strftime("%a %H:%M")
        return Cause("schedule", f"paused until {when} (schedule)", until=until, sticky=False)


# ---------------------------------------------------------------------------------------------
# The guard.

@dataclass
class Guard(Periodic):
    """Runs the detectors every ``interval`` seconds and publishes a PauseDecision when it changes."""
    detectors: list = field(default_factory=list)
    hold_off_s: float = 60.0
    interval: float = 1.0
    on_change: object = None
    clock: object = time.time
    now: object = dt.datetime.now

    thread_name = "guard"

    def __post_init__(self):
        self._periodic_init()
        self.decision = PauseDecision()
        self._listeners = [self.on_change] if self.on_change else []
        self._last_sticky: float | None = None
        self._last_sticky_reason = ""
        self._changed = threading.Condition()

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def tick(self) -> None:
        self.evaluate()

    def evaluate(self) -> PauseDecision:
        """Runs every detector once and returns (and publishes) the decision."""
        now = self.now()
        causes = []
        for detector in self.detectors:
            try:
                cause = detector.check(now)
            except Exception:  # one broken detector must not stop the others
                log.exception("pause detector %s failed", type(detector).__name__)
                continue
            if cause is not None:
                causes.append(cause)
        t = self.clock()
        if any(c.sticky for c in causes):
            self._last_sticky = t
            self._last_sticky_reason = next(c.reason for c in causes if c.sticky)
        if causes:
            decision = PauseDecision(True, "Paused: " + "; ".join(c.reason for c in causes), tuple(causes))
        elif self._last_sticky is not None and t - self._last_sticky < self.hold_off_s:
            resume_at = self._last_sticky + self.hold_off_s
            decision = PauseDecision(True, f"Resuming in {resume_at - t:.0f} s ({self._last_sticky_reason} "
                                           "no more)", (), resume_at)
        else:
            self._last_sticky = None
            decision = PauseDecision(False, "")
        self._publish(decision)
        return decision

    def resume_now(self) -> None:
        """The owner said resume: drop the hold-off (causes still present keep the pause)."""
        self._last_sticky = None

    def _publish(self, decision: PauseDecision) -> None:
        old = self.decision
        self.decision = decision
        changed = (old.paused != decision.paused or [c.reason for c in old.causes] !=
                   [c.reason for c in decision.causes] or (old.resume_at is None) != (decision.resume_at is None))
        if changed:
            log.info("%s", decision.reason or "running")
            with self._changed:
                self._changed.notify_all()
            for listener in self._listeners:
                try:
                    listener(decision)
                except Exception:
                    log.exception("pause listener failed")

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)
