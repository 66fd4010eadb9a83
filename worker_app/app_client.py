"""The web app's side of the protocol in Python: upload a scene, submit a job, follow it, fetch outputs.

The demo, the tests and the benchmarks use it; a founder's backend can copy it or call the same
endpoints from any language (docs/protocol.md).
"""

from __future__ import annotations

from pathlib import Path

import requests

from worker_app import constants as C
from worker_app import protocol as P
from worker_app.client import file_sha256, part_hashes


class AppError(Exception):
    def __init__(self, status: int, body: dict):
        field = f"{body.get('field')}: " if body.get("field") else ""
        super().__init__(f"{status} {body.get('error', '')}: {field}{body.get('message', '')}")
        self.status = status
        self.body = body


class AppClient:
    def __init__(self, server_url: str, app_token: str):
        self.server_url = server_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {app_token}"

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, self.server_url + P.API_PREFIX + path,
                                        timeout=(C.CONNECT_TIMEOUT, C.UPLOAD_READ_TIMEOUT), **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if response.status_code >= 300:
            raise AppError(response.status_code, body if isinstance(body, dict) else {})
        return body

    def upload_asset(self, path: Path) -> dict:
        """Stores a scene; returns its sha256, size and the URL a job names it by. With S3 storage the bytes go
        straight to the bucket through presigned URLs, in parts of the size the server names; else through the
        server."""
        path = Path(path)
        size = path.stat().st_size
        sha = file_sha256(path)
        how = self._call("POST", "/assets/uploads", json={"sha256": sha, "size": size})
        if how.get("stored"):
            return {k: how[k] for k in ("sha256", "size", "url")}
        if not how.get("direct"):
            with open(path, "rb") as body:
                return self._call("PUT", "/assets", data=body, headers={"X-Content-SHA256": sha})
        part_size = how["part_size"]
        parts = part_hashes(path, part_size)
        plan = P.UploadPlan.parse(self._call("POST", "/assets/uploads",
                                             json={"sha256": sha, "size": size, "parts": parts}))
        etags = {}
        with open(path, "rb") as handle:
            for part in plan.parts:
                handle.seek((part.number - 1) * part_size)
                response = requests.put(part.url, data=handle.read(part_size), headers=part.headers,
                                        timeout=(C.CONNECT_TIMEOUT, C.UPLOAD_READ_TIMEOUT))
                if response.status_code >= 300:
                    raise AppError(response.status_code, {"message": f"storage refused part {part.number}"})
                etags[str(part.number)] = response.headers.get("ETag", "")
        return self._call("POST", f"/assets/{sha}/commit",
                          json={"sha256": sha, "size": size, "parts": parts, "upload_id": plan.upload_id,
                                "etags": etags})

    def submit(self, spec: dict) -> dict:
        return self._call("POST", "/jobs", json=spec)

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/jobs/{job_id}")

    def jobs(self, state: str | None = None, limit: int = 100) -> list[dict]:
        return self.jobs_page(state, limit)["jobs"]

    def jobs_page(self, state: str | None = None, limit: int = 100, cursor: str | None = None,
                  updated_since: float | None = None) -> dict:
        """One page: ``{"jobs": [...], "next_cursor": ...}``; pass ``next_cursor`` back for the next."""
        params = {"limit": limit, "state": state, "cursor": cursor, "updated_since": updated_since}
        return self._call("GET", "/jobs", params={k: v for k, v in params.items() if v is not None})

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def download_output(self, job_id: str, name: str, dest: Path) -> Path:
        """Saves an output; with S3 storage the server redirects to a presigned URL (the token stays here)."""
        with self.session.get(f"{self.server_url}{P.API_PREFIX}/jobs/{job_id}/outputs/{name}",
                              stream=True, timeout=(C.CONNECT_TIMEOUT, C.UPLOAD_READ_TIMEOUT)) as response:
            if response.status_code != 200:
                raise AppError(response.status_code, {"message": response.text[:200]})
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                for chunk in response.iter_content(C.CHUNK_SIZE):
                    out.write(chunk)
        return dest
