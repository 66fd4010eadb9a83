"""Blender from the official archives: download.blender.org (or a mirror with the same layout, the setting
``blender.mirror``), unpacked under the data dir as ``blenders/blender-<series>/``.

The layout a release folder has, and all this reads of it::

    <mirror>/Blender4.5/blender-4.5.3-linux-x64.tar.xz     (Windows: -windows-x64.zip, macOS: -macos-arm64.dmg)
    <mirror>/Blender4.5/blender-4.5.3.sha256               ("<hex>  <archive name>" per line)

The newest patch release is read from the folder's listing. The archive is downloaded to
``blenders/downloads/<name>.part`` (resumed with a Range request after a cut, within the install and by the
next one), checked against the SHA-256 the release publishes before a byte of it is unpacked, unpacked into
``blender-<series>.partial/`` with every member's path checked to stay inside it, started once to read its
version, and only then renamed into place with its mark: a half-installed Blender is never offered. Before
downloading, the disk must have room for the archive and what it unpacks to; a full disk mid-way is refused in
words and leaves nothing behind.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests

from worker_app.client import file_sha256
from worker_app.protocol.fields import is_loopback

log = logging.getLogger("homefarm.blender")

MIRROR = "https://download.blender.org/release"
ARCHIVE_MARK = "homefarm-archive.json"  # in an unpacked install's folder: its version and executable
UNPACKED_PER_ARCHIVE_BYTE = 3.5  # a Blender archive unpacks to about 3 to 3.5 times its size
CHUNK = 1 << 16  # small: what came before a cut is on disk, for the resumed download
ATTEMPTS = 5  # downloads resumed after a cut, within one install
TIMEOUT = (15.0, 60.0)  # connect, read

Progress = Callable[[int, int], None]  # bytes done, bytes in all (0: not known)


class ArchiveError(RuntimeError):
    """An archive install that cannot be done; the message says what happened and what to do."""


def platform_name(system: str | None = None, machine: str | None = None) -> tuple[str, str]:
    """The archive's platform and extension for this PC: ``("linux-x64", ".tar.xz")``."""
    system = system or sys.platform
    machine = (machine or platform.machine()).lower()
    arm = machine in ("arm64", "aarch64")
    if system == "win32":
        return ("windows-arm64" if arm else "windows-x64"), ".zip"
    if system == "darwin":
        return ("macos-arm64" if arm else "macos-x64"), ".dmg"
    if system.startswith("linux") and not arm:
        return "linux-x64", ".tar.xz"
    raise ArchiveError(f"Blender publishes no archive for this PC ({system} on {machine}); install Blender "
                       "yourself and set blender.path")


def check_mirror(url: str, allow_insecure_http: bool) -> str:
    """A mirror is https, or plain http to this PC (a test, a cache), unless the owner allowed plain http."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ArchiveError(f"blender.mirror: {url} is not an https:// address")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise ArchiveError(f"blender.mirror: {url} is plain http to another machine; use https (the archive's "
                           "checksum comes from the same place)")
    return url.rstrip("/")


def newest_release(session: requests.Session, mirror: str, series: str) -> tuple[str, str]:
    """The newest patch release of ``series`` on the mirror for this PC: (version, archive name)."""
    plat, ext = platform_name()
    listing = _get_text(session, f"{mirror}/Blender{series}/", f"the list of Blender {series} releases")
    pattern = re.compile(rf"blender-({re.escape(series)}\.(\d+))-{re.escape(plat)}{re.escape(ext)}(?![.\w])")
    found = {int(m.group(2)): m.group(1) for m in pattern.finditer(listing)}
    if not found:
        raise ArchiveError(f"the Blender archives have no Blender {series} for this PC ({plat})")
    version = found[max(found)]
    return version, f"blender-{version}-{plat}{ext}"


def published_sha256(session: requests.Session, mirror: str, series: str, version: str, name: str) -> str:
    """The SHA-256 the release publishes for the archive."""
    text = _get_text(session, f"{mirror}/Blender{series}/blender-{version}.sha256",
                     f"the checksums of Blender {version}")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            return parts[0].lower()
    raise ArchiveError(f"the checksums of Blender {version} do not list {name}; nothing was installed")


def install_archive(root: Path, series: str, mirror: str, allow_insecure_http: bool = False,
                    say: Callable[[str], None] = lambda text: None, progress: Progress | None = None,
                    session: requests.Session | None = None,
                    read_version: Callable[[str], str] | None = None) -> tuple[str, Path]:
    """Downloads, verifies and unpacks the newest release of ``series`` into ``root/blender-<series>``;
    returns (version, executable). Raises ArchiveError with a sentence."""
    mirror = check_mirror(mirror, allow_insecure_http)
    own = session is None
    session = session or requests.Session()
    try:
        version, name = newest_release(session, mirror, series)
        expected = published_sha256(session, mirror, series, version, name)
        downloads = root / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        part = downloads / (name + ".part")
        say(f"Downloading Blender {version} from {urlsplit(mirror).hostname}…")
        try:
            _download(session, f"{mirror}/Blender{series}/{name}", part, root, progress)
        except OSError as error:
            part.unlink(missing_ok=True)
            raise _disk_error(error, f"save Blender {version}'s archive") from None
        digest = file_sha256(part)
        if digest != expected:
            part.unlink(missing_ok=True)
            log.warning("%s: SHA-256 %s, the release publishes %s", name, digest, expected)
            raise ArchiveError(f"the downloaded Blender {version} does not match the checksum its release "
                               "publishes, so nothing was unpacked; try again later, or another blender.mirror")
        say(f"Unpacking Blender {version}…")
        final, partial = root / f"blender-{series}", root / f"blender-{series}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            executable = unpack(part, partial)
            found = (read_version or _read_version)(str(executable))
            if not found.startswith(series + "."):
                raise ArchiveError(f"the archive of Blender {version} holds Blender {found}; nothing was installed")
            relative = executable.relative_to(partial).as_posix()
            (partial / ARCHIVE_MARK).write_text(json.dumps({"version": found, "source": "archives",
                                                            "executable": relative, "archive": name,
                                                            "sha256": digest, "installed": time.time()}),
                                                encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)  # an older patch release of the series
            os.replace(partial, final)
        except BaseException as error:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(error, OSError):
                raise _disk_error(error, f"unpack Blender {version}") from None
            raise
        finally:
            part.unlink(missing_ok=True)
        return found, final / relative
    finally:
        if own:
            session.close()
        try:
            (root / "downloads").rmdir()  # empty: nothing to resume
        except OSError:
            pass


def archive_installs(root: Path) -> list[tuple[str, Path]]:
    """(version, executable) of each whole archive install under ``root``."""
    found = []
    for folder in sorted(root.glob("blender-*")) if root.is_dir() else []:
        if folder.name.endswith(".partial"):
            continue
        try:
            mark = json.loads((folder / ARCHIVE_MARK).read_text(encoding="utf-8"))
            executable = (folder / str(mark["executable"])).resolve()
            if executable.is_relative_to(folder.resolve()) and executable.is_file():
                found.append((str(mark["version"]), executable))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def unpack(archive: Path, into: Path) -> Path:
    """Unpacks a Blender archive into ``into`` (its one top folder stripped); returns Blender's executable.
    A member that would land outside ``into`` (an absolute path, ``..``, a link out) refuses the archive."""
    into.mkdir(parents=True)
    name = archive.name.removesuffix(".part")
    if name.endswith(".tar.xz"):
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(into, filter=_strip_top(tar.getnames()))
    elif name.endswith(".zip"):
        _unzip(archive, into)
    elif name.endswith(".dmg"):
        _copy_from_dmg(archive, into)
    else:
        raise ArchiveError(f"{name} is not a Blender archive (.tar.xz, .zip or .dmg)")
    for candidate in ("blender.exe", "blender", "Blender.app/Contents/MacOS/Blender"):
        if (into / candidate).is_file():
            return into / candidate
    raise ArchiveError(f"{name} holds no Blender program; nothing was installed")


def _strip_top(names: list[str]) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    top = _common_top(names)

    def member(info: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if top:
            if info.name.rstrip("/") == top:
                return None
            info = info.replace(name=info.name[len(top) + 1:])
        try:
            return tarfile.data_filter(info, path)  # no absolute paths, no "..", no links out, no devices
        except tarfile.FilterError as error:
            raise ArchiveError(f"the archive holds {info.name!r}, which would land outside Blender's folder "
                               f"({error.__class__.__name__}); nothing was installed") from None
    return member


def _common_top(names: list[str]) -> str:
    tops = {name.strip("/").split("/")[0] for name in names if name.strip("/")}
    if len(tops) == 1 and any("/" in name.strip("/") for name in names):
        return tops.pop()
    return ""


def _unzip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        top = _common_top(names)
        base = into.resolve()
        for info in zipped.infolist():
            name = info.filename[len(top) + 1:] if top else info.filename
            if not name or name.endswith("/"):
                continue
            target = (base / name).resolve()
            if not target.is_relative_to(base) or Path(name).is_absolute() or ":" in name:
                raise ArchiveError(f"the archive holds {info.filename!r}, which would land outside Blender's "
                                   "folder; nothing was installed")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
            mode = info.external_attr >> 16
            if mode & 0o111:
                target.chmod(0o755)


def _copy_from_dmg(archive: Path, into: Path) -> None:  # pragma: no cover - macOS only
    """macOS: the disk image is attached read-only and without a Finder window, Blender.app copied out."""
    with tempfile.TemporaryDirectory() as mount:
        subprocess.run(["hdiutil", "attach", "-nobrowse", "-readonly", "-noautoopen", "-mountpoint", mount,
                        str(archive)], check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        try:
            subprocess.run(["ditto", str(Path(mount) / "Blender.app"), str(into / "Blender.app")], check=True,
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=1800)
        finally:
            subprocess.run(["hdiutil", "detach", mount, "-quiet"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=120)


def _download(session: requests.Session, url: str, part: Path, root: Path, progress: Progress | None) -> None:
    """Fills ``part`` from ``url``, resuming after what it already holds; room checked before the first byte."""
    checked = False
    for attempt in range(1, ATTEMPTS + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as answer:
                if answer.status_code == 416:  # already whole
                    return
                if answer.status_code == 200 and have:
                    have = 0  # the mirror ignored the Range: start over
                elif answer.status_code not in (200, 206):
                    raise ArchiveError(f"the Blender archives answered {answer.status_code} for "
                                       f"{url.rsplit('/', 1)[-1]}; try again later, or another blender.mirror")
                total = have + int(answer.headers.get("Content-Length") or 0)
                if not checked:
                    _check_room(root, part, total, have)
                    checked = True
                part.touch()
                with open(part, "r+b") as sink:
                    sink.seek(have)
                    sink.truncate()
                    done = have
                    for chunk in answer.iter_content(CHUNK):
                        sink.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                if total and done < total:
                    raise requests.ConnectionError(f"the download stopped at {done} of {total} bytes")
                return
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            log.info("download of %s cut (%s); resuming (%d of %d)", url, error, attempt, ATTEMPTS)
            if attempt == ATTEMPTS:
                raise ArchiveError("the download of Blender was cut again and again; what came is kept and the "
                                   "next try goes on from there") from None
            time.sleep(min(2.0 ** attempt, 30.0) / 10)


def _check_room(root: Path, part: Path, total: int, have: int) -> None:
    if not total:
        return
    need = int((total - have) + total * UNPACKED_PER_ARCHIVE_BYTE)
    free = shutil.disk_usage(root).free
    if free < need:
        part.unlink(missing_ok=True)
        raise ArchiveError(f"Blender needs about {_gb(need)} of disk and the disk has {_gb(free)} free; free some "
                           "space and try again")


def _disk_error(error: OSError, what: str) -> ArchiveError:
    if error.errno == errno.ENOSPC:
        return ArchiveError(f"the disk filled up while trying to {what}; nothing was installed: free some space "
                            "and try again")
    log.warning("could not %s: %s", what, error)
    return ArchiveError(f"could not {what} ({error.strerror or error}); nothing was installed")


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"


def _get_text(session: requests.Session, url: str, what: str) -> str:
    try:
        answer = session.get(url, timeout=TIMEOUT)
    except requests.RequestException as error:
        log.info("could not read %s: %s", url, error)
        raise ArchiveError(f"could not reach the Blender archives for {what}; check the connection, or "
                           "blender.mirror") from None
    if answer.status_code == 404:
        raise ArchiveError(f"the Blender archives have no {what}")
    if answer.status_code != 200:
        raise ArchiveError(f"the Blender archives answered {answer.status_code} for {what}; try again later")
    return answer.text[:2_000_000]


def _read_version(executable: str) -> str:
    from worker_app.render.discovery import BlenderNotFound, read_version
    try:
        return read_version(executable)
    except BlenderNotFound as error:
        log.warning("%s", error)
        raise ArchiveError("the unpacked Blender did not start; nothing was installed") from None
