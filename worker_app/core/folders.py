"""The worker's folders on disk: where jobs, the scene cache and Blender's own settings live; what a restart
finds there, and which finished jobs' folders are kept for the owner to look at."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from worker_app import layout as L
from worker_app import protocol as P
from worker_app.core.outbox import Outbox


@dataclass(frozen=True)
class Folders:
    jobs: Path
    cache: Path

    @property
    def blender_user(self) -> Path:
        """Blender's user config and scripts live here, not in the owner's own Blender folders."""
        return self.jobs.parent / "blender-user"

    @property
    def outbox(self) -> Path:
        return self.jobs.parent / L.OUTBOX


def interrupted_jobs(jobs_dir: Path, outbox: Outbox) -> list[str]:
    """After a crash or reboot: a job that was claimed but never reported is given back through the outbox."""
    found = []
    for lease_file in sorted(jobs_dir.glob(f"*/{L.LEASE}")):
        try:
            held = json.loads(lease_file.read_text(encoding="utf-8"))
            job_id, lease_id = str(held["job_id"]), str(held["lease_id"])
        except (OSError, ValueError, KeyError):
            lease_file.unlink(missing_ok=True)
            continue
        if not outbox.has_report(job_id):
            outbox.add_report(job_id, lease_id, P.ReleaseReport("the worker restarted before finishing the job"))
            found.append(job_id)
        lease_file.unlink(missing_ok=True)
    return found


def prune_job_dirs(jobs_dir: Path, outbox: Outbox, keep: str | None = None, newest: int = 20) -> None:
    """Job folders whose results the server has are kept for the owner to look at, the newest 20."""
    finished = []
    for folder in jobs_dir.iterdir():
        if folder.name.startswith(".stale-"):  # set aside by a job whose files were held open
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir() and folder.name != keep and not (folder / L.LEASE).exists() \
                and not outbox.pending(folder.name):
            finished.append(folder)
    finished.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    for folder in finished[newest:]:
        shutil.rmtree(folder, ignore_errors=True)
