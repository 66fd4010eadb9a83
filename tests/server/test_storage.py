"""Scenes and outputs in the server's storage: its own folder, and S3 (a real SeaweedFS on loopback).

With S3 the bytes go straight between the worker or the web app and the bucket, through presigned URLs the
server signs with each part's SHA-256; the server checks what arrived before it counts it.
"""

import hashlib
import os
import threading
from pathlib import Path

import pytest
import requests

from support.harness import Served
from worker_app import protocol as P
from worker_app.client import Rejected, WorkerClient
from worker_app.server import JobServer

MiB = 1024 * 1024


def _serving(tmp_path, storage_url):
    server = JobServer(tmp_path / "server", storage_url=storage_url, part_size=5 * MiB).start()
    try:
        yield Served(server)
    finally:
        server.stop()


@pytest.fixture
def stored(tmp_path, storage_url):
    """A server keeping its files in the folder or the bucket, with 5 MiB parts (S3's smallest)."""
    yield from _serving(tmp_path, storage_url)


@pytest.fixture
def on_s3(tmp_path, seaweed, monkeypatch):
    """A server on S3 only, for what only S3 has (parts, presigned URLs, the store's own checks)."""
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    yield from _serving(tmp_path, seaweed.url(f"t-{os.urandom(6).hex()}"))


def leased(served: Served, tmp_path: Path) -> tuple[WorkerClient, P.Lease]:
    client = served.worker_client()
    worker_id = client.hello(P.Hello(name="pc", os="Linux", app_version="0")).worker_id
    served.submit()
    lease = client.claim(worker_id, 5)
    assert lease is not None
    return client, lease


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_an_output_round_trips_byte_for_byte(stored, tmp_path, storage_url):
    client, lease = leased(stored, tmp_path)
    assert (client.upload_part_size is not None) == (storage_url is not None)
    out = tmp_path / "frame_0001.png"
    sha = write_random(out, 200_000)
    first = client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
    again = client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
    assert first.stored is True and first.size == 200_000
    assert again.stored in (True, False) and again.sha256 == sha
    client.complete(lease.job_id, lease.lease_id, [out.name], {})
    view = stored.app.job(lease.job_id)
    assert [o["name"] for o in view["outputs"]] == [out.name]
    got = stored.app.download_output(lease.job_id, out.name, tmp_path / "got.png")
    assert got.read_bytes() == out.read_bytes()
    # The view's URL needs no token with S3 (presigned), and the app token with the folder.
    url = view["outputs"][0]["url"]
    headers = {} if storage_url else {"Authorization": f"Bearer {stored.app_token}"}
    assert requests.get(url, headers=headers, timeout=10).content == out.read_bytes()
    if storage_url:
        assert not url.startswith(stored.url)  # the server carries none of the bytes


def test_range_and_head_on_an_output(stored, tmp_path):
    client, lease = leased(stored, tmp_path)
    out = tmp_path / "frame_0001.exr"
    sha = write_random(out, 100_000)
    client.upload(lease.job_id, lease.lease_id, out.name, out, sha)
    url = f"{stored.url}/api/v1/jobs/{lease.job_id}/outputs/{out.name}"
    auth = {"Authorization": f"Bearer {stored.app_token}"}
    head = requests.head(url, headers=auth, timeout=10, allow_redirects=True)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == 100_000
    part = requests.get(url, headers={**auth, "Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == out.read_bytes()[1000:2000]
    outside = requests.get(url, headers={**auth, "Range": "bytes=200000-"}, timeout=10)
    assert outside.status_code == 416


def test_a_large_output_goes_up_in_parts_and_resumes_after_a_crash(on_s3, tmp_path):
    stored = on_s3
    client, lease = leased(stored, tmp_path)
    out = tmp_path / "frame_0001.exr"
    sha = write_random(out, 12 * MiB)  # 3 parts: 5 + 5 + 2 MiB

    class Crash(Exception):
        pass

    saved = {}

    def save_then_crash(state):
        saved.update(state)
        if len(state.get("etags", {})) == 1:
            raise Crash("the worker's PC lost power after the first part")

    with pytest.raises(Crash):
        client.upload(lease.job_id, lease.lease_id, out.name, out, sha, state={}, save=save_then_crash)
    assert saved["upload_id"] and list(saved["etags"]) == ["1"]

    sent = []
    real_put = client._put_part
    client._put_part = lambda path, part, size: sent.append(part.number) or real_put(path, part, size)
    done = client.upload(lease.job_id, lease.lease_id, out.name, out, sha, state=dict(saved), save=lambda s: None)
    assert done.stored is True and done.size == 12 * MiB
    assert sent == [2, 3]  # the part sent before the crash is not sent again
    client.complete(lease.job_id, lease.lease_id, [out.name], {})
    got = stored.app.download_output(lease.job_id, out.name, tmp_path / "got.exr")
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha


def test_storage_and_server_refuse_bytes_other_than_those_declared(on_s3, tmp_path):
    stored = on_s3
    client, lease = leased(stored, tmp_path)
    out = tmp_path / "frame_0001.png"
    sha = write_random(out, 50_000)
    base = f"{stored.url}{P.WORKER_PREFIX}/jobs/{lease.job_id}/outputs/{out.name}"
    auth = {"Authorization": f"Bearer {stored.worker_token}"}
    ask = {"lease_id": lease.lease_id, "sha256": sha, "size": 50_000, "parts": [sha]}
    plan = requests.post(base + "/uploads", json=ask, headers=auth, timeout=10).json()
    part = plan["parts"][0]
    # Other bytes under the signed checksum: the store refuses them.
    assert requests.put(part["url"], data=b"x" * 50_000, headers=part["headers"], timeout=10).status_code == 400
    # Without the checksum the signature does not match.
    assert requests.put(part["url"], data=out.read_bytes(), timeout=10).status_code == 403
    # Nothing arrived: the commit is refused, and the output not counted.
    commit = requests.post(base + "/commit", json={**ask, "etags": {}}, headers=auth, timeout=10)
    assert commit.status_code == 422 and commit.json()["error"] == "upload_gone"
    assert stored.app.job(lease.job_id)["outputs"] == []
    # A wrong size declared: the server sees it in the store and deletes the object.
    assert requests.put(part["url"], data=out.read_bytes(), headers=part["headers"], timeout=10).status_code == 200
    wrong = requests.post(base + "/commit", json={**ask, "size": 49_999, "etags": {}}, headers=auth, timeout=10)
    assert wrong.status_code == 422 and wrong.json()["field"] == "sha256"


def test_a_protocol_1_worker_still_puts_its_outputs_through_the_server(stored, tmp_path):
    client, lease = leased(stored, tmp_path)
    client.upload_part_size = None  # as a worker that does not know direct uploads
    out = tmp_path / "frame_0001.png"
    sha = write_random(out, 30_000)
    assert client.upload(lease.job_id, lease.lease_id, out.name, out, sha).stored is True
    with pytest.raises(Rejected):
        client.upload(lease.job_id, lease.lease_id, "frame_0002.png", out, "0" * 64)
    got = stored.app.download_output(lease.job_id, out.name, tmp_path / "got.png")
    assert got.read_bytes() == out.read_bytes()


def test_the_scene_goes_straight_to_storage_and_the_worker_fetches_it_without_its_token(stored, tmp_path,
                                                                                       storage_url):
    scene = tmp_path / "scene.blend"
    sha = write_random(scene, 6 * MiB)  # two parts
    asset = stored.app.upload_asset(scene)
    assert asset["sha256"] == sha and asset["url"] == f"{P.WORKER_PREFIX}/assets/{sha}"
    assert stored.app.upload_asset(scene)["sha256"] == sha  # once stored, not sent again
    client = stored.worker_client()
    worker_id = client.hello(P.Hello(name="pc", os="Linux", app_version="0")).worker_id
    stored.app.submit({"scene": asset})
    lease = client.claim(worker_id, 5)
    url = lease.spec["scene"]["url"]
    assert url.startswith("http") and (url.startswith(stored.url) != bool(storage_url))
    seen = []
    real = client.session.get
    client.session.get = lambda u, headers=None, **kw: seen.append(dict(headers or {})) or real(u, headers=headers,
                                                                                                  **kw)
    with open(tmp_path / "fetched", "wb") as out:
        got_sha, size = client.download(url, out, 7 * MiB)
    assert (got_sha, size) == (sha, 6 * MiB)
    assert ("Authorization" in seen[0]) == (storage_url is None)  # the token goes to the server only


def test_a_plan_needs_the_parts_of_the_declared_size(on_s3):
    stored = on_s3
    response = requests.post(f"{stored.url}{P.API_PREFIX}/assets/uploads", timeout=10,
                             headers={"Authorization": f"Bearer {stored.app_token}"},
                             json={"sha256": "a" * 64, "size": 12 * MiB, "parts": ["a" * 64]})
    assert response.status_code == 422 and response.json()["field"] == "parts"


def test_many_outputs_upload_at_once(stored, tmp_path):
    client, lease = leased(stored, tmp_path)
    files = []
    for n in range(8):
        path = tmp_path / f"frame_{n:04d}.png"
        files.append((path, write_random(path, 20_000 + n)))
    errors = []

    def send(path, sha):
        try:
            WorkerClient.upload(client, lease.job_id, lease.lease_id, path.name, path, sha)
        except Exception as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [threading.Thread(target=send, args=item) for item in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    client.complete(lease.job_id, lease.lease_id, [p.name for p, _ in files], {})
    assert {o["name"]: o["sha256"] for o in stored.app.job(lease.job_id)["outputs"]} == \
        {p.name: sha for p, sha in files}


def test_the_outbox_keeps_a_direct_upload_s_progress_across_a_restart(tmp_path):
    from worker_app.core.outbox import Outbox
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add_output("7", "l_1", "frame_0001.exr", tmp_path / "frame_0001.exr", "a" * 64)
    entry = outbox.next()
    assert entry.upload == {}
    outbox.save_upload(entry, {"upload_id": "u-1", "part_size": 5 * MiB, "parts": ["b" * 64] * 2,
                               "etags": {"1": '"e1"'}})
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3")
    assert reopened.next().upload["etags"] == {"1": '"e1"'} and reopened.next().upload["upload_id"] == "u-1"
    reopened.close()
