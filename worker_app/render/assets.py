"""Scenes on disk: a content-addressed cache verified by SHA-256, and safe unpacking of zip scenes.

A scene is downloaded once into ``cache/<sha256>``, checked against the job's SHA-256 and size, and
reused by every later job that names the same content. A zip is unpacked into the job's own folder
only: members with ``..``, absolute paths, drive letters, links, or sizes that add up past the limits
are refused before anything is written.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from worker_app import constants as C
from worker_app import protocol as P
from worker_app.system.files import retrying

log = logging.getLogger("homefarm.worker")


class AssetError(Exception):
    """A scene that cannot be used; ``field`` names the part of the job at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class SceneCache:
    """Scenes by SHA-256. ``max_bytes`` bounds it: the least recently used go first, never the one in use."""

    def __init__(self, root: Path, max_bytes: int = 20 * 1024**3):
        self.root = root
        self.max_bytes = max_bytes

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Deletes the least recently used scenes until the cache fits its budget; returns what went."""
        try:
            files = [p for p in self.root.iterdir() if p.is_file() and len(p.name) == 64]
        except FileNotFoundError:
            return []
        files.sort(key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        removed = []
        for path in files:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            size = path.stat().st_size
            try:
                retrying(path.unlink, True)  # missing_ok: another worker may have evicted it
            except PermissionError:  # still held open (an antivirus scan): evicted next time
                log.info("scene cache: %s is in use; it is removed later", path.name)
                continue
            total -= size
            removed.append(path)
        return removed

    def path(self, sha256: str) -> Path:
        return self.root / P.check_sha256(sha256, "scene.sha256")

    def fetch(self, asset: P.SceneAsset,
              download: Callable[[BinaryIO, int], tuple[str, int]]) -> tuple[Path, bool]:
        """Returns the verified file for ``asset`` and whether it was already cached.

        ``download(fileobj, max_bytes)`` writes the bytes and returns (sha256, size).
        """
        target = self.path(asset.sha256)
        if target.is_file() and target.stat().st_size == asset.size:
            os.utime(target)  # last use, for eviction
            return target, True
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix="download-")
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = download(out, asset.size)
            if size != asset.size:
                raise AssetError("scene.size", f"the download is {size} bytes, the job declared {asset.size}")
            if sha != asset.sha256:
                raise AssetError("scene.sha256", f"the download's SHA-256 is {sha}, the job declared "
                                                 f"{asset.sha256}; nothing was rendered")
            # An antivirus scans a new download and holds it open for a moment (WinError 5 or 32).
            retrying(os.replace, tmp, target)
        finally:
            if os.path.exists(tmp):
                retrying(os.unlink, tmp)
        self.evict(keep=target)
        return target, False


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path a zip member may be written to, or AssetError."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if (not normalized or normalized.startswith("/") or path.is_absolute() or ".." in path.parts
            or (len(normalized) > 1 and normalized[1] == ":") or "\x00" in normalized):
        raise AssetError("scene", f"zip member {name!r} would be written outside the job's folder")
    for part in path.parts:
        if (part.split(".")[0].upper() in P.WINDOWS_RESERVED or part.endswith((".", " "))
                or any(ch in part for ch in '<>:"|?*') or any(ord(ch) < 32 for ch in part)):
            raise AssetError("scene", f"zip member {name!r} has a name Windows cannot hold")
    return path


def unpack_zip(archive: Path, dest: Path, blend: str) -> Path:
    """Unpacks ``archive`` into ``dest`` after checking every member; returns the .blend to open."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        from worker_app.render.blendfile import NotABlendFile, read_header
        try:
            read_header(archive)
        except (NotABlendFile, OSError):
            raise AssetError("scene", f"not a valid zip file: {error}") from None
        raise AssetError("scene.type", 'the file is a .blend, not a zip: send it with "type": "blend"') from None
    with zf:
        members = zf.infolist()
        if len(members) > C.ZIP_MAX_MEMBERS:
            raise AssetError("scene", f"the zip has {len(members)} members, more than {C.ZIP_MAX_MEMBERS}")
        total = 0
        folded: dict[str, str] = {}
        for info in members:
            safe_member_path(info.filename)
            name = info.filename.rstrip("/")
            if len(name) > C.ZIP_MAX_NAME:
                raise AssetError("scene", f"zip member {name[:60]!r}... has a path of {len(name)} characters, "
                                          f"more than {C.ZIP_MAX_NAME}; Windows cannot unpack it in a job folder")
            other = folded.setdefault(name.casefold(), name)
            if other != name:
                raise AssetError("scene", f"zip members {other!r} and {name!r} differ only in case; Windows and "
                                          "macOS cannot keep both: rename one")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise AssetError("scene", f"zip member {info.filename!r} is a symbolic link")
            total += info.file_size
            if info.file_size > C.ZIP_MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1024**2:
                raise AssetError("scene", f"zip member {info.filename!r} is compressed more than "
                                          f"{C.ZIP_MAX_RATIO}:1 (a zip bomb?)")
        if total > C.ZIP_MAX_TOTAL:
            raise AssetError("scene", f"the zip unpacks to {total} bytes, more than {C.ZIP_MAX_TOTAL}")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in members:
            target = (root / safe_member_path(info.filename)).resolve()
            if root not in target.parents and target != root:
                raise AssetError("scene", f"zip member {info.filename!r} escapes the job's folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as source, open(target, "wb") as out:
                while chunk := source.read(C.CHUNK_SIZE):
                    written += len(chunk)
                    if written > info.file_size:  # the header lied about the size
                        raise AssetError("scene", f"zip member {info.filename!r} is larger than declared")
                    out.write(chunk)
    blend_path = (root / safe_member_path(blend)).resolve()
    if not blend_path.is_file():
        blends = sorted(info.filename for info in members if info.filename.lower().endswith(".blend"))
        listed = f"; the .blend files in it: {', '.join(repr(b) for b in blends[:10])}" if blends else \
            "; it holds no .blend file"
        raise AssetError("scene.blend", f"{blend!r} is not in the zip{listed}")
    return blend_path
