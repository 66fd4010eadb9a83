"""Finding Blender: the configured path, PATH, the ``.blend`` association, the usual install folders;
which install a job gets, and what devices it can render on."""

from __future__ import annotations

import glob
import logging
import ntpath
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from worker_app import constants as C
from worker_app.render import output as blender_output
from worker_app.render import procs
from worker_app.render.environment import blender_command, blender_env, script_path

if TYPE_CHECKING:
    from worker_app.system.desktop import SteamStatus

log = logging.getLogger("homefarm.blender")

_VERSION = re.compile(r"Blender (\d+\.\d+(?:\.\d+)?)")


class BlenderNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class BlenderInstall:
    path: str
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))


class FileAssociation:
    """Where the OS opens .blend files with; one backend per OS, the Windows one reads the registry."""

    def blend_opener(self) -> str | None:
        return None


class WindowsFileAssociation(FileAssociation):
    def __init__(self, registry: Any = None):
        self.registry = registry  # the winreg module, or a fake with the same functions in tests

    def blend_opener(self) -> str | None:
        reg = self.registry
        if reg is None:
            import winreg as reg
        try:
            with reg.OpenKey(reg.HKEY_CLASSES_ROOT, ".blend") as key:
                prog_id = reg.QueryValueEx(key, "")[0]
            with reg.OpenKey(reg.HKEY_CLASSES_ROOT, prog_id + r"\shell\open\command") as key:
                command, kind = reg.QueryValueEx(key, "")
        except OSError:
            return None
        if kind == getattr(reg, "REG_EXPAND_SZ", 2):  # "%ProgramFiles%\Blender Foundation\..."
            command = ntpath.expandvars(command)  # Windows syntax, wherever this runs
        # '"C:\Program Files\Blender Foundation\Blender 4.2\blender-launcher.exe" "%1"', or unquoted:
        # 'C:\Program Files\Blender Foundation\Blender 4.2\blender.exe %1' (spaces and all, up to ".exe").
        match = re.match(r'\s*"([^"]+)"|\s*(.+?\.exe)(?=\s|$)|\s*(\S+)', command, re.IGNORECASE)
        if not match:
            return None
        exe = match.group(1) or match.group(2) or match.group(3)
        # The launcher opens a console-less window; the real binary sits beside it.
        if os.path.basename(exe).lower() == "blender-launcher.exe":
            exe = os.path.join(os.path.dirname(exe), "blender.exe")
        return exe


def file_association() -> FileAssociation:
    return WindowsFileAssociation() if sys.platform == "win32" else FileAssociation()


def candidate_paths(configured: str = "", association: FileAssociation | None = None,
                    environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                    which: Callable[[str], str | None] = shutil.which,
                    steam: SteamStatus | None = None) -> list[str]:
    """Where Blender may live, best first: the configured path, PATH, then where installers put it."""
    found: list[str] = []
    if configured:
        found.append(configured)
    on_path = which("blender")
    if on_path:
        found.append(on_path)
    opener = (association or file_association()).blend_opener()
    if opener:
        found.append(opener)
    if platform == "win32":
        for root in filter(None, (environ.get("ProgramFiles"), environ.get("ProgramFiles(x86)"))):
            # Newest first, by number: "Blender 4.10" after "Blender 4.9".
            found += sorted(glob.glob(os.path.join(root, "Blender Foundation", "*", "blender.exe")),
                            key=_version_in_path, reverse=True)
            found += glob.glob(os.path.join(root, "Steam", "steamapps", "common", "Blender", "blender.exe"))
        # Blender from Steam, in whichever library holds it: Steam's own folder or one on another drive.
        from worker_app.system import desktop
        for library in (steam or desktop.steam_status()).libraries():
            found += glob.glob(os.path.join(str(library), "steamapps", "common", "Blender", "blender.exe"))
    elif platform == "darwin":
        found.append("/Applications/Blender.app/Contents/MacOS/Blender")
        found += glob.glob(os.path.expanduser("~/Applications/Blender*.app/Contents/MacOS/Blender"))
    else:
        found += ["/usr/bin/blender", "/usr/local/bin/blender", "/snap/bin/blender",
                  "/var/lib/flatpak/exports/bin/org.blender.Blender",
                  os.path.expanduser("~/.local/share/flatpak/exports/bin/org.blender.Blender")]
    seen, unique = set(), []
    for path in found:
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(path):
            seen.add(real)
            unique.append(path)
    return unique


def _version_in_path(path: str) -> tuple[int, ...]:
    match = re.search(r"(\d+(?:\.\d+)*)", os.path.basename(os.path.dirname(path)))
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def read_version(path: str) -> str:
    """Runs ``blender --version`` (bounded in time) and returns e.g. ``4.2.1``."""
    try:
        out = subprocess.run([path, "--factory-startup", "--version"], capture_output=True, text=True,
                             timeout=C.BLENDER_VERSION_TIMEOUT, stdin=subprocess.DEVNULL,
                             env=blender_env(), encoding="utf-8", errors="replace",
                             **procs.backend().popen_kwargs()).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BlenderNotFound(f"{path} did not report its version: {error}") from None
    match = _VERSION.search(out)
    if not match:
        raise BlenderNotFound(f"{path} printed no Blender version")
    return match.group(1)


def find_installs(configured: str = "") -> list[BlenderInstall]:
    installs = []
    for path in candidate_paths(configured):
        try:
            installs.append(BlenderInstall(path, read_version(path)))
        except BlenderNotFound as error:
            log.warning("%s", error)
    return installs


NOT_FOUND_HELP = ("Blender was not found: install it (https://www.blender.org/download/, or "
                  "`sudo apt install blender` on Debian/Ubuntu) or set blender.path")


def find_blender(configured: str = "") -> BlenderInstall:
    return find_all(configured)[0]


def find_all(configured: str = "", data_dir: Any = None) -> list[BlenderInstall]:
    """Every working Blender, the configured one first, then those homefarm installed under ``data_dir``
    (render/installs.py); BlenderNotFound if there is none."""
    if configured and not os.path.isfile(configured):
        raise BlenderNotFound(f"blender.path is set to {configured}, which does not exist")
    installs = find_installs(configured)
    if data_dir is not None:
        from worker_app.render.installs import installed
        installs += installed(data_dir)
    if not installs:
        raise BlenderNotFound(NOT_FOUND_HELP)
    return installs


def pick(installs: list[BlenderInstall], min_version: str | None) -> BlenderInstall:
    """The install a job gets: the first in order of preference that is new enough."""
    if min_version is None:
        return installs[0]
    wanted = tuple(int(p) for p in min_version.split("."))
    for install in installs:
        if install.version_tuple[:len(wanted)] >= wanted:
            return install
    have = ", ".join(i.version for i in installs)
    raise BlenderNotFound(f"blender.min_version: the job needs Blender {min_version} or newer; this PC "
                          f"has {have}")


_PROBED: dict[tuple[str, int, int], tuple[float, dict[str, list[str]]]] = {}
_PROBED_LOCK = threading.Lock()
PROBE_KEEP_S = 3600.0  # a Blender's devices, once listed, are kept this long by this process


def probe_devices(install: BlenderInstall, timeout: float = 60.0) -> dict[str, list[str]]:
    """What Blender can render on: {"CPU": ["AMD EPYC"], "CUDA": ["NVIDIA GeForce RTX 4070"], ...}.

    Backends this build knows but finds no device for map to an empty list. A listing costs a Blender start
    (a second or more): this process keeps it an hour for the same Blender file (path, size and time), so that
    a worker the tray restarts after a settings change signs on at once.
    """
    try:
        stat = os.stat(install.path)
        key: tuple[str, int, int] | None = (install.path, stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    with _PROBED_LOCK:
        kept = _PROBED.get(key) if key is not None else None
    if kept is not None and time.monotonic() - kept[0] < PROBE_KEEP_S:
        return {backend: list(names) for backend, names in kept[1].items()}
    devices = _list_devices(install, timeout)
    if key is not None:
        with _PROBED_LOCK:
            _PROBED[key] = (time.monotonic(), devices)
    return {backend: list(names) for backend, names in devices.items()}


def _list_devices(install: BlenderInstall, timeout: float) -> dict[str, list[str]]:
    cmd = blender_command(install.path, script_path("probe_devices.py"))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             env=blender_env(), encoding="utf-8", errors="replace",
                             **procs.backend().popen_kwargs()).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BlenderNotFound(f"{install.path} could not list its devices: {error}") from None
    devices: dict[str, list[str]] = {}
    for text in out.splitlines():
        event = blender_output.parse_line(text).event
        if event and event["event"] == "devices":
            devices[str(event.get("backend"))] = [str(d.get("name")) for d in event.get("devices", [])]
    return devices


