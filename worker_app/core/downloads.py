"""A job's downloads, on a helper thread: its scene (a .blend, or a zip unpacked into the job's folder) and the
image assets of its overrides, each verified by SHA-256 through the scene cache."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from worker_app import protocol as P
from worker_app.client import NotFound, Rejected, Unauthorized, Unreachable, WorkerClient
from worker_app.render.assets import AssetError, SceneCache, unpack_zip


class Failed(Exception):
    """The job cannot be done here; ``retryable`` says whether another attempt may succeed, ``needs_blender``
    that it can on a worker with that Blender version."""

    def __init__(self, reason: str, log_tail: str = "", retryable: bool = False, needs_blender: str | None = None,
                 installing_blender: bool = False):
        super().__init__(reason)
        self.reason, self.log_tail, self.retryable, self.needs_blender = reason, log_tail, retryable, needs_blender
        self.installing_blender = installing_blender  # the owner is asked to install it: the job waits for us


def fetch_images(cache: SceneCache, client: WorkerClient, images: dict[str, Any], job_dir: Path) -> dict[str, str]:
    """Downloads the job's image assets (verified like scenes) into the job's folder."""
    paths = {}
    for index, (name, data) in enumerate(sorted(images.items())):
        asset = P.SceneAsset.parse(data, f"overrides.images.{name}")
        try:
            cached = _download(cache, client, asset)
        except AssetError as error:
            raise Failed(f"overrides.images.{name}: {error}", retryable=False) from None
        except (NotFound, Rejected, Unauthorized, Unreachable) as error:
            raise Failed(f"overrides.images.{name}: could not be downloaded: {error}",
                         retryable=isinstance(error, Unreachable)) from None
        suffix = Path(asset.url.split("?")[0]).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
        local = job_dir / "assets" / f"image_{index}{suffix}"  # never a name taken from the job
        local.parent.mkdir(exist_ok=True)
        _link_or_copy(cached, local)
        paths[name] = str(local.resolve())
    return paths


def fetch_scene(cache: SceneCache, client: WorkerClient, asset: P.SceneAsset, job_dir: Path) -> Path:
    """The .blend to render, inside the job's folder."""
    try:
        cached = _download(cache, client, asset)
    except AssetError as error:
        raise Failed(str(error), retryable=False) from None
    except (NotFound, Rejected, Unauthorized) as error:
        raise Failed(f"scene.url: the scene could not be downloaded: {error}", retryable=False) from None
    except Unreachable as error:
        raise Failed(f"scene.url: the scene could not be downloaded: {error}", retryable=True) from None
    if asset.type == "zip":
        assert asset.blend is not None  # a zip names its .blend (checked when the spec was parsed)
        try:
            return unpack_zip(cached, job_dir / "scene", asset.blend)
        except AssetError as error:
            raise Failed(str(error), retryable=False) from None
    # Linked into the job's folder, so the job only ever touches its own folder and the cache stays pristine.
    local = job_dir / "scene.blend"
    _link_or_copy(cached, local)
    return local


def _download(cache: SceneCache, client: WorkerClient, asset: P.SceneAsset) -> Path:
    cached, _hit = cache.fetch(asset, lambda out, limit: client.download(asset.url, out, limit))
    return cached


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, dest)
