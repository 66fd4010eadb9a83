"""A small copy of each job's first output for the activity window, kept in the data dir's ``thumbnails/``
within ``storage.thumbnails_mb``: the oldest go first, and each goes with its job's history (guard/energy.py
prunes it after 30 days). Made with Qt's image reader on a background thread (QImage needs no GUI thread); a
format Qt cannot read (EXR) gets none, and the window says so."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImageReader

from worker_app import layout as L
from worker_app.guard.energy import Ledger

log = logging.getLogger("homefarm.tray")

BOX = QSize(320, 180)  # the largest a thumbnail is drawn; kept at this size


def folder_of(data_dir: Path) -> Path:
    return data_dir / L.THUMBNAILS


def name_for(server: str, job_id: str) -> str:
    """A file name from the server and job id (strings from the server: never part of a path as they are)."""
    return hashlib.sha256(f"{server}\n{job_id}".encode()).hexdigest()[:24] + ".png"


def make(source: Path, target: Path) -> bool:
    """Writes a PNG of ``source`` scaled to fit ``BOX``; False when Qt cannot read it."""
    reader = QImageReader(str(source))
    size = reader.size()
    if not size.isValid():
        return False
    reader.setScaledSize(size.scaled(BOX, Qt.KeepAspectRatio).expandedTo(QSize(1, 1)))
    image = reader.read()
    if image.isNull():
        log.info("no thumbnail of %s: %s", source.name, reader.errorString())
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    if not image.save(str(partial), "PNG"):
        partial.unlink(missing_ok=True)
        return False
    partial.replace(target)
    return True


def keep(ledger: Ledger, data_dir: Path, server: str, job_id: str, outputs: list[Path], max_mb: float) -> str | None:
    """The thumbnail of a job's first output that Qt can read, noted in the ledger; then the folder is brought
    within ``max_mb``. Returns its name, or None."""
    name = None
    if max_mb > 0:
        candidate = name_for(server, job_id)
        for output in sorted(outputs, key=lambda p: p.name):
            if make(output, folder_of(data_dir) / candidate):
                ledger.set_thumbnail(job_id, candidate)
                name = candidate
                break
    bound(ledger, data_dir, max_mb)
    return name


IMAGES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def fill_missing(ledger: Ledger, data_dir: Path, max_mb: float) -> int:
    """Thumbnails of the recent jobs a headless worker (`homefarm run`) rendered, whose outputs are still on
    disk; returns how many were made. Run by the activity window's reader thread."""
    made = 0
    for job_id, server, outputs_dir in ledger.lacking_thumbnails() if max_mb > 0 else []:
        folder = Path(outputs_dir)
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGES) if folder.is_dir() else []
        if images and keep(ledger, data_dir, server, job_id, images[:1], max_mb):
            made += 1
    return made


def bound(ledger: Ledger, data_dir: Path, max_mb: float) -> None:
    """Removes the oldest thumbnails past ``max_mb``, and any file the ledger no longer names."""
    folder = folder_of(data_dir)
    if not folder.is_dir():
        return
    budget = int(max_mb * 1024 * 1024)
    named = set()
    for _job_id, name in ledger.thumbnails():  # newest first
        path = folder / Path(name).name
        named.add(path.name)
        try:
            size = path.stat().st_size
        except OSError:
            ledger.forget_thumbnail(name)
            continue
        if size > budget:
            path.unlink(missing_ok=True)
            ledger.forget_thumbnail(name)
            budget = 0
        else:
            budget -= size
    for path in folder.iterdir():
        if path.name not in named:
            path.unlink(missing_ok=True)
