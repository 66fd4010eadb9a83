"""Pause detectors: each answers ``check(now)`` with a ``Cause`` in words a person reads, or None."""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from pathlib import Path

import psutil

from worker_app.guard.causes import Cause, PauseKind
from worker_app.system import desktop
from worker_app.system.gpu import GpuSnapshot


# Processes that always hold a graphics context: never "foreign GPU load" on their own.
DESKTOP_PROCESSES = {"dwm.exe", "explorer.exe", "csrss.exe", "searchhost.exe", "startmenuexperiencehost.exe",
                     "textinputhost.exe", "shellexperiencehost.exe", "xorg", "xwayland", "gnome-shell",
                     "kwin_x11", "kwin_wayland", "plasmashell", "windowserver"}

# Where game launchers install games; a process whose executable lies below one of these is a game.
GAME_FOLDER_MARKERS = ("steamapps/common/", "epic games/", "gog games/", "gog galaxy/games/", "xboxgames/",
                       "ea games/", "ubisoft game launcher/games/", "battle.net/", "riot games/")

# Launchers, their helpers and tools installed through a store, which many owners keep running all day: never
# a game, even below a game folder (the Riot Client and League's lobby are launchers; the match is
# "league of legends.exe"). The owner adds more with guard.not_games, or from the tray.
NOT_GAMES = frozenset({
    "steam.exe", "steamwebhelper.exe", "steamservice.exe", "gameoverlayui.exe",
    "epicgameslauncher.exe", "epicwebhelper.exe", "epiconlineservices.exe", "epiconlineservicesuserhelper.exe",
    "battle.net.exe", "agent.exe", "blizzard battle.net app.exe", "battle.net helper.exe",
    "riotclientservices.exe", "riotclientux.exe", "riotclientuxrender.exe", "riotclientcrashhandler.exe",
    "leagueclient.exe", "leagueclientux.exe", "leagueclientuxrender.exe",
    "galaxyclient.exe", "galaxyclient helper.exe", "galaxycommunication.exe",
    "eadesktop.exe", "eabackgroundservice.exe", "origin.exe", "originwebhelperservice.exe",
    "upc.exe", "ubisoftconnect.exe", "uplaywebcore.exe", "ubisoftgamelauncher.exe",
    "xboxapp.exe", "xboxpcapp.exe", "gamingservices.exe",
    "wallpaper32.exe", "wallpaper64.exe", "wallpaperservice32.exe", "ui32.exe", "webwallpaper32.exe",
    "unrealcefsubprocess.exe", "crashreportclient.exe",
})
# Steam apps that are tools, not games: Wallpaper Engine, SteamVR, Steamworks Common Redistributables.
STEAM_TOOL_APPS = frozenset({431960, 250820, 228980})
# Folders of launchers inside the game folders: nothing below them is a game.
LAUNCHER_FOLDERS = ("epic games/launcher/", "epic games/epic online services/", "battle.net/",
                    "riot games/riot client/", "steamapps/common/wallpaper_engine/",
                    "steamapps/common/steamworks shared/", "steamapps/common/steamvr/")

DEFAULT_GAMES = ("eldenring.exe", "cs2.exe", "valorant.exe", "valorant-win64-shipping.exe",
                 "fortnitelauncher.exe", "fortniteclient-win64-shipping.exe", "rocketleague.exe",
                 "league of legends.exe", "overwatch.exe", "dota2.exe", "gta5.exe",
                 "rdr2.exe", "cyberpunk2077.exe", "bg3.exe", "bg3_dx11.exe", "starfield.exe",
                 "minecraft.exe", "minecraft.windows.exe", "r5apex.exe", "destiny2.exe", "cod.exe",
                 "helldivers2.exe")

# Minecraft Java Edition runs as javaw.exe (java on Linux and macOS), which many programs use: it is the game
# when a Minecraft launcher started it.
JAVA_PROGRAMS = frozenset({"javaw.exe", "java.exe", "java"})
MINECRAFT_LAUNCHERS = frozenset({"minecraftlauncher.exe", "minecraft.exe", "minecraft launcher", "minecraft-launcher",
                                 "prismlauncher.exe", "prismlauncher", "multimc.exe", "multimc",
                                 "curseforge.exe", "modrinth app.exe", "atlauncher.exe", "tlauncher.exe"})
# Games from the Xbox app and Game Pass that install under WindowsApps (other Store apps live there too): the
# package of a game built with Microsoft's Game Development Kit carries MicrosoftGame.config at its root.
GAME_PACKAGE_MARKER = "MicrosoftGame.config"


@functools.lru_cache(maxsize=4096)
def resolved(exe: str) -> str:
    """An executable's real, case-folded path, once per path: resolving opens the file on Windows, and the
    guard asks for every process every second (some 300 a second on a desktop)."""
    return os.path.normcase(os.path.realpath(exe))


@functools.lru_cache(maxsize=1024)
def is_store_game(exe: str) -> bool:
    """Whether ``exe`` lies in a WindowsApps package that is a game (its MicrosoftGame.config); asked once."""
    parts = exe.replace("\\", "/").split("/")
    lowered = [p.lower() for p in parts]
    if "windowsapps" not in lowered:
        return False
    package = lowered.index("windowsapps") + 2  # .../WindowsApps/<package>/...
    return package < len(parts) and os.path.isfile("/".join(parts[:package]) + "/" + GAME_PACKAGE_MARKER)



class ProcessTable:
    """The running processes' names and executables, read incrementally: only new PIDs are looked up, and
    young ones again for a few seconds, since a process seen between its fork and its exec still carries
    its parent's name (a launcher starting the game)."""

    YOUNG_S = 5.0

    def __init__(self, clock=time.time):
        self.clock = clock
        self._known: dict[int, tuple[str, str]] = {}
        self.parents: dict[int, int] = {}  # pid -> its parent's pid
        self._young: dict[int, float] = {}  # pid -> when it started, while it is young

    def scan(self) -> dict[int, tuple[str, str]]:
        pids = set(psutil.pids())
        for pid in list(self._known):
            if pid not in pids:
                del self._known[pid]
                self._young.pop(pid, None)
                self.parents.pop(pid, None)
        now = self.clock()
        for pid in list(self._young):
            if now - self._young[pid] > self.YOUNG_S:
                del self._young[pid]
        for pid in (pids - self._known.keys()) | self._young.keys():
            try:
                proc = psutil.Process(pid)
                name = proc.name()
                try:
                    exe = proc.exe()
                except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                    exe = ""
                if pid not in self._known and now - proc.create_time() < self.YOUNG_S:
                    self._young[pid] = proc.create_time()
                self._known[pid] = (name, exe)
                self.parents[pid] = proc.ppid()  # Minecraft's javaw.exe is known by its launcher
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return self._known


class GameDetector:
    """A game is running: by name, by where it is installed, or because Steam says so (when a game of Steam's
    library runs indeed). Launchers and tools (``NOT_GAMES``, ``LAUNCHER_FOLDERS``, ``not_games``) never are."""

    def __init__(self, names=DEFAULT_GAMES, folders=(), own_pids=lambda: set(), own_paths=(),
                 table: ProcessTable | None = None, steam: desktop.SteamStatus | None = None, not_games=()):
        self.not_games = NOT_GAMES | {n.lower() for n in not_games}
        self.names = {n.lower() for n in names} - self.not_games
        self.folders = tuple(str(Path(f)).replace("\\", "/").lower().rstrip("/") + "/" for f in folders)
        self.own_pids = own_pids
        # Blender itself may be installed through Steam: never pause for our own renderer.
        self.own_paths = {resolved(p) for p in own_paths if p}
        self.table = table or ProcessTable()
        self.steam = steam or desktop.steam_status()

    def is_game(self, name: str, exe: str, parent: str = "") -> bool:
        """By name, by where it is installed, or (Minecraft Java) by the launcher that started it."""
        if name.lower() in self.not_games:
            return False
        if name.lower() in self.names:
            return True
        if name.lower() in JAVA_PROGRAMS and parent.lower() in MINECRAFT_LAUNCHERS:
            return True
        path = exe.replace("\\", "/").lower()
        if not path or resolved(exe) in self.own_paths:
            return False
        if any(marker in path for marker in LAUNCHER_FOLDERS):
            return False
        return any(marker in path for marker in GAME_FOLDER_MARKERS) or any(
            path.startswith(folder) for folder in self.folders) or is_store_game(exe)

    def check(self, now: dt.datetime) -> Cause | None:
        ours = self.own_pids() | {os.getpid()}
        processes = sorted(self.table.scan().items())
        parents = self.table.parents  # pid -> parent pid
        known = dict(processes)
        for pid, (name, exe) in processes:
            parent = known.get(parents.get(pid, -1), ("", ""))[0]
            if pid not in ours and self.is_game(name, exe, parent):
                return Cause(PauseKind.GAME, f"{name} is running", program=name)
        app_id = self.steam.running_app_id()
        # Steam's RunningAppID is set for tools too (Wallpaper Engine), and can stay set after Steam crashed:
        # it counts only for an app that is no known tool, while Steam itself runs.
        if app_id and app_id not in STEAM_TOOL_APPS and any(name.lower() in ("steam.exe", "steam", "steam_osx")
                                                             for _pid, (name, _exe) in processes):
            return self._steam_app(app_id, processes)
        return None

    def _steam_app(self, app_id: int, processes) -> Cause | None:
        """Steam says an app runs. Its programs (those running from its folder) were judged above: if any runs,
        each was ours or one the owner never pauses for, and Steam's word adds nothing. Otherwise the app
        counts by its name, which "Never pause for" can exempt too (Lossless Scaling, Soundpad: apps, not
        games, that Steam reports all the same)."""
        info = self.steam.app_info(app_id)
        folder = info.folder.replace("\\", "/").lower().rstrip("/") + "/" if info.folder else ""
        if folder and any(exe.replace("\\", "/").lower().startswith(folder) for _pid, (_name, exe) in processes):
            return None
        if info.label.lower() in self.not_games:
            return None
        if not info.name:
            return Cause(PauseKind.GAME, f"Steam game {app_id} is running", program=info.label)
        return Cause(PauseKind.GAME, f"{info.name} is running (Steam)", program=info.label)


class ForeignGpuLoad:
    """Another program (not our Blender) keeps the GPU busy above ``threshold`` % for ``seconds``."""

    def __init__(self, snapshot=lambda: GpuSnapshot(0.0), threshold: int = 30, seconds: float = 5.0,
                 own_pids=lambda: set(), clock=time.monotonic, not_games=()):
        self.snapshot = snapshot
        # Programs the owner never pauses for (guard.not_games, "Never pause for…"), and the launchers and tools
        # kept open all day, whatever they do on the GPU.
        self.exempt = DESKTOP_PROCESSES | NOT_GAMES | {n.lower() for n in not_games}
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
                if proc.pid in ours or proc.name.lower() in self.exempt or proc.load is None:
                    continue
                if proc.load >= threshold and (best is None or proc.load > best[1]):
                    best = (proc.name, proc.load)
            others = [p for p in gpu.processes if p.pid not in ours and p.name.lower() not in self.exempt]
            if best is None and others and gpu.load is not None and gpu.load >= threshold \
                    and all(proc.load is None for proc in gpu.processes) \
                    and not any(proc.pid in ours for proc in gpu.processes):
                # No per-process load (Windows often has none): while our Blender does not use this GPU,
                # its whole load is that of the other programs on it; the one with most memory is named.
                best = (max(others, key=lambda p: p.vram_bytes or 0).name, gpu.load)
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
        return Cause(PauseKind.GPU, f"{name} is using the GPU ({load} %)", program=name)


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
                return Cause(PauseKind.FULLSCREEN, f"a full-screen program ({loaded[0]}) is using the GPU")
        idle = self.idle.idle_seconds()
        if idle is not None and idle < self.active_within_s:
            return Cause(PauseKind.FULLSCREEN, "a full-screen program is in use")
        return None


class OwnerActive:
    """The owner used keyboard or mouse within ``idle_s`` seconds (optional, off by default)."""

    def __init__(self, idle_s: float = 120, idle: desktop.InputIdle | None = None):
        self.idle_s = idle_s
        self.idle = idle or desktop.input_idle()

    def check(self, now: dt.datetime) -> Cause | None:
        seconds = self.idle.idle_seconds()
        if seconds is not None and seconds < self.idle_s:
            return Cause(PauseKind.ACTIVE, "you are using the PC")
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
                return Cause(PauseKind.THERMAL, f"{gpu.name} at {gpu.temp_c} °C (limit {self.max_temp_c} °C)")
            if self.max_power_w and gpu.power_w is not None and gpu.power_w >= self.max_power_w:
                return Cause(PauseKind.THERMAL,
                             f"{gpu.name} draws {gpu.power_w:.0f} W (limit {self.max_power_w:.0f} W)")
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
            return Cause(PauseKind.DISK, f"the disk is nearly full ({free / 1024**3:.1f} GB free, "
                                 f"{self.min_free_bytes / 1024**3:g} GB needed)", sticky=False)
        return None


