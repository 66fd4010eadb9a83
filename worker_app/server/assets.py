"""Scenes the web app (or the dashboard) stores: through the server, or straight to S3 in checked parts. The API's
handlers and the dashboard's share these steps, so a scene dropped on the page goes where the API's bytes go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from worker_app import protocol as P
from worker_app.protocol import limits
from worker_app.server.http import HttpError, db, read_json, receive_file
from worker_app.server.storage import asset_key

if TYPE_CHECKING:
    from worker_app.server.app import JobServer

MAX_ASSET_BYTES = limits.MAX_SCENE_SIZE


def asset(sha: str, size: int) -> dict[str, Any]:
    """A stored scene; a job names it by ``url``, a path the worker resolves against its server."""
    return {"sha256": sha, "size": size, "url": f"{P.WORKER_PREFIX}/assets/{sha}"}


def how_to_upload(server: JobServer) -> dict[str, Any]:
    """The answer to a plan without ``parts`` (or on a local store): whether the bytes go straight to storage,
    and in parts of which size; with a local store they go through the server (PUT), as protocol 1 has it."""
    return P.UploadPlan(direct=server.storage.direct, part_size=server.storage.part_size).to_json()


async def receive(server: JobServer, request: Request, expected: str | None) -> dict[str, Any]:
    """A scene's bytes in the request's body, stored under their SHA-256 (checked against ``expected``)."""
    sha, size = await receive_file(request, server.tmp_dir,
                                   lambda tmp, sha: server.storage.put_file(asset_key(sha), tmp, sha),
                                   expected, MAX_ASSET_BYTES)
    return asset(sha, size)


async def plan(server: JobServer, request: Request) -> dict[str, Any]:
    """Where a scene goes straight to storage (S3); ``{"direct": false}``: send it through the server."""
    ask = P.UploadRequest.parse(await read_json(request), MAX_ASSET_BYTES, commit=False)
    if server.storage.direct and await db(server.storage.stat, asset_key(ask.sha256)) == ask.size:
        return {**P.UploadPlan(stored=True).to_json(), **asset(ask.sha256, ask.size)}
    if not server.storage.direct or ask.parts is None:
        return how_to_upload(server)
    made = await db(server.storage.upload_urls, asset_key(ask.sha256), ask.size, ask.parts, ask.upload_id,
                    set(ask.done))
    return made.to_json()


async def commit(server: JobServer, request: Request, sha256: str, through: str) -> dict[str, Any]:
    """A direct upload's end: storage joins the parts and checks the whole file's SHA-256."""
    body = await read_json(request)
    if isinstance(body, dict):
        body.setdefault("sha256", sha256)
    ask = P.UploadRequest.parse(body, MAX_ASSET_BYTES, commit=True)
    if ask.sha256 != P.check_sha256(sha256, "sha256"):
        raise HttpError(422, "invalid", "differs from the SHA-256 in the path", field="sha256")
    if not server.storage.direct:
        raise HttpError(422, "invalid", f"this server stores scenes itself; send them to {through}",
                        field="upload_id")
    await db(server.storage.finish_upload, asset_key(ask.sha256), ask.sha256, ask.size, ask.parts or [],
             ask.upload_id, ask.etags)
    return asset(ask.sha256, ask.size)
