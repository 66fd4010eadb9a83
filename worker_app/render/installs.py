"""Blenders homefarm installs itself, for scenes saved by a newer Blender than the PC has, from the sources the
setting ``blender.sources`` names, in its order: ``archives``, the official archives (download.blender.org or
``blender.mirror``, checked against the SHA-256 the release publishes: render/archives.py), unpacked under the
data dir as ``blenders/blender-<series>/``; and ``pypi``, PyPI's ``bpy`` (Blender as a Python module, published
by the Blender Foundation) in a virtual environment of its own, ``blenders/bpy-<series>/``. A source that cannot
serve (no network to it, no archive for this PC, a Python the module is not built for) gives way to the next.

A module install is run as ``<venv>/bin/python -I render_job.py -- job.json``: the same scripts, events,
confinement, overrides, progress, stop and limits as an executable. What it lacks: Blender's command-line
flags (``--factory-startup`` is its default; auto-run of a scene's Python is off as with ``--disable-autoexec``,
as ``render_job.open_scene`` opens every file with its scripts disabled), Cycles' per-sample progress lines
(progress goes by frame) and the owner's add-ons.

An install is atomic: pip fills ``bpy-<series>.partial/``, which is renamed into place only once ``bpy``
imports there and says its version; a half-installed Blender is never offered. pip checks each download
against the hashes PyPI publishes (over verified TLS) and keeps its cache, so a second install downloads
nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from worker_app.render import archives
from worker_app.render.discovery import BlenderInstall
from worker_app.render.environment import MODULE_MARK

log = logging.getLogger("homefarm.blender")

BLENDERS = "blenders"  # under the data dir
SERIES = re.compile(r"^\d+\.\d+$")
# PyPI's bpy wheels are built for one Python each: 4.2 to 5.0 for Python 3.11.
BPY_PYTHON = (3, 11)
INSTALL_TIMEOUT_S = 1800.0
SOURCES = ("archives", "pypi")


class InstallError(RuntimeError):
    """An install that cannot be done; the message says what to do."""


def series_of(version: str) -> str:
    """``4.5.2`` -> ``4.5``."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise InstallError(f"{version!r} is not a Blender version such as 4.5")
    return ".".join(parts[:2])


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def installed(data_dir: Path) -> list[BlenderInstall]:
    """Every Blender homefarm installed here, from either source, newest first."""
    found = module_installs(data_dir) + [BlenderInstall(str(path), version) for version, path in
                                         archives.archive_installs(data_dir / BLENDERS)]
    return sorted(found, key=lambda install: install.version_tuple, reverse=True)


def kind_of(install: BlenderInstall) -> str:
    """"module" (PyPI's bpy), "archive" (unpacked by homefarm) or "executable" (found on the PC)."""
    folder = _folder_of(install)
    if folder is None:
        return "executable"
    return "module" if (folder / MODULE_MARK).is_file() else "archive"


def install(data_dir: Path, series: str, sources: tuple[str, ...] = SOURCES, mirror: str = archives.MIRROR,
            allow_insecure_http: bool = False, say: Callable[[str], None] = lambda text: None,
            progress: archives.Progress | None = None) -> BlenderInstall:
    """Installs the newest release of a Blender series (``4.5``) from the first of ``sources`` that can serve
    it; returns it (at once when that series is installed already). Raises InstallError with a sentence."""
    if not SERIES.match(series):
        raise InstallError(f"{series!r} is not a Blender series such as 4.5")
    existing = [i for i in installed(data_dir) if series_of(i.version) == series]
    if existing:
        return existing[0]
    reasons = []
    for source in sources:
        try:
            if source == "pypi":
                return install_module(data_dir, series, say=say)
            root = data_dir / BLENDERS
            started = time.monotonic()
            version, executable = archives.install_archive(root, series, mirror, allow_insecure_http, say,
                                                           progress)
            log.info("Blender %s installed from the archives in %.0f s (%s)", version, time.monotonic() - started,
                     executable.parent)
            say(f"Blender {version} installed")
            return BlenderInstall(str(executable), version)
        except (InstallError, archives.ArchiveError) as error:
            log.info("Blender %s from %s: %s", series, source, error)
            reasons.append(f"{'PyPI' if source == 'pypi' else 'the archives'}: {error}")
    if not reasons:
        raise InstallError("blender.sources names no source to install Blender from (allowed: archives, pypi)")
    raise InstallError(f"Blender {series} could not be installed. " + "; ".join(reasons))


def module_installs(data_dir: Path) -> list[BlenderInstall]:
    """The Blenders installed here as modules, newest first."""
    found = []
    root = data_dir / BLENDERS
    for venv in sorted(root.glob("bpy-*")) if root.is_dir() else []:
        if venv.name.endswith(".partial"):
            continue
        try:
            mark = json.loads((venv / MODULE_MARK).read_text(encoding="utf-8"))
            found.append(BlenderInstall(str(python_of(venv)), str(mark["version"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not finished, or damaged: never offered
    return sorted(found, key=lambda install: install.version_tuple, reverse=True)


def install_module(data_dir: Path, series: str, python: str | None = None,
                   say: Callable[[str], None] = lambda text: None) -> BlenderInstall:
    """Installs the newest release of a Blender series (``4.5``) from PyPI's ``bpy``; returns it. Raises
    InstallError with a sentence when it cannot be done here."""
    if not SERIES.match(series):
        raise InstallError(f"{series!r} is not a Blender series such as 4.5")
    python = python or _python_for_bpy()
    root = data_dir / BLENDERS
    final, partial = root / f"bpy-{series}", root / f"bpy-{series}.partial"
    existing = [i for i in module_installs(data_dir) if series_of(i.version) == series]
    if existing:
        return existing[0]
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted install left
    started = time.monotonic()
    say(f"Installing Blender {series} (PyPI's bpy, about 1 GB)…")
    try:
        _run([python, "-m", "venv", str(partial)], "make a virtual environment")
        _run([str(python_of(partial)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--no-input", f"bpy=={series}.*"], f"install bpy {series}.* from PyPI")
        version = _run([str(python_of(partial)), "-I", "-c", "import bpy; print(bpy.app.version_string)"],
                       "start the installed Blender").split()[0]
        if series_of(version) != series:
            raise InstallError(f"PyPI's bpy for {series} says it is Blender {version}")
        (partial / MODULE_MARK).write_text(json.dumps({"version": version, "source": "pypi",
                                                       "installed": time.time()}), encoding="utf-8")
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("Blender %s installed from PyPI in %.0f s (%s)", version, time.monotonic() - started, final)
    say(f"Blender {version} installed")
    return BlenderInstall(str(python_of(final)), version)


def remove(data_dir: Path, version: str) -> str:
    """Removes a Blender homefarm installed, by version or series; returns the version removed."""
    for found in installed(data_dir):
        folder = _folder_of(found)
        if folder is not None and (found.version == version or series_of(found.version) == version):
            shutil.rmtree(folder)
            return found.version
    raise InstallError(f"no Blender {version} was installed by homefarm (`homefarm blender list` shows them)")


USED = "last-used"  # touched in a module install's folder each time a job renders with it


def _folder_of(install: BlenderInstall) -> Path | None:
    """The folder homefarm installed this Blender into; None for one found on the PC."""
    path = Path(install.path)
    if (path.parent.parent / MODULE_MARK).is_file():
        return path.parent.parent
    for folder in list(path.parents)[:4]:  # an archive's executable: <folder>/blender, or inside Blender.app
        if (folder / archives.ARCHIVE_MARK).is_file():
            return folder
    return None


def mark_used(install: BlenderInstall) -> None:
    """Notes that a job rendered with this Blender now (for ``remove_unused``); nothing for an executable."""
    folder = _folder_of(install)
    if folder is not None:
        (folder / USED).touch()


def remove_unused(data_dir: Path, days: float, now: float | None = None) -> list[str]:
    """Removes the Blenders homefarm installed that no job used in ``days`` (0: keeps them); returns their
    versions. An install no job used yet counts from when it was installed. Never the system's Blender."""
    if days <= 0:
        return []
    now = time.time() if now is None else now
    removed = []
    for install in installed(data_dir):
        folder = _folder_of(install)
        if folder is None:
            continue
        used = folder / USED
        mark = folder / (MODULE_MARK if (folder / MODULE_MARK).is_file() else archives.ARCHIVE_MARK)
        try:
            last = used.stat().st_mtime if used.exists() else mark.stat().st_mtime
        except OSError:
            continue
        if now - last > days * 86400:
            shutil.rmtree(folder, ignore_errors=True)
            log.info("Blender %s removed: no job used it in %g days (blender.keep_unused_days)", install.version,
                     days)
            removed.append(install.version)
    return removed


def install_size(install: BlenderInstall) -> int:
    """Bytes on disk of a Blender homefarm installed (0 for one found on the PC)."""
    total, home = 0, _folder_of(install)
    for folder, _, files in os.walk(home) if home is not None else ():
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _python_for_bpy() -> str:
    """A Python that PyPI's bpy wheels are built for: this one, when it is (a source install of homefarm)."""
    if getattr(sys, "frozen", False) or sys.version_info[:2] != BPY_PYTHON:
        raise InstallError("installing Blender needs Python %d.%d, which PyPI's Blender module is built for; "
                           "this homefarm runs on another. Install that Blender from blender.org instead, or set "
                           "blender.path" % BPY_PYTHON)
    return sys.executable


def _run(cmd: list[str], what: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, encoding="utf-8", errors="replace")
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InstallError(f"could not {what}: {error}") from None
    if done.returncode != 0:
        log.warning("%s failed:\n%s", what, (done.stdout + done.stderr)[-3000:])
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        if "No space left" in done.stdout + done.stderr:
            raise InstallError(f"could not {what}: the disk is full; free some space and try again")
        raise InstallError(f"could not {what} ({last[0][:200]})")
    return done.stdout
