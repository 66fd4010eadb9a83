"""Where the job server keeps scenes and outputs: a local folder, or an S3-compatible bucket.

Both stores name things by key: ``assets/<sha256>`` for a scene, ``outputs/<job>/<name>`` for an output.
With a folder (the default) the server carries every byte. With S3 (``s3://bucket/prefix``: AWS S3,
Cloudflare R2, SeaweedFS, MinIO) it carries none: workers and the web app get presigned URLs, upload
straight to the bucket, and the server checks what arrived (size and SHA-256) before it counts it.

Uploads through presigned URLs are checked twice: each URL is signed with the SHA-256 of the bytes it may
carry (``x-amz-checksum-sha256``), so the store itself refuses other bytes; then the server asks the store
for the object's size and checksum. A file larger than one part goes up in parts of a fixed size (R2 wants
all parts but the last of one size); its checksum is then the store's composite: the SHA-256 of the parts'
SHA-256 digests, which the worker declared part by part.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from worker_app.protocol import UploadPart, UploadPlan

log = logging.getLogger("homefarm.server")

PART_SIZE = 16 * 1024 * 1024  # S3 allows 5 MiB to 5 GiB; 16 MiB parts put 64 GiB in 4,096 parts
SINGLE_PUT_MAX = 5 * 1024**3  # S3's largest single PUT
URL_TTL = 3600  # a presigned URL's life; a worker asks again for the parts it has not sent


class StorageError(Exception):
    """The store refused or lost something; ``field`` names the part of the request at fault, if any."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.field = field
        self.code = code


def open_storage(url: str | None, data_dir: Path, part_size: int = PART_SIZE) -> Storage:
    """``None`` or a folder path: a local folder; ``s3://bucket/prefix``: S3 with the standard AWS settings."""
    if url and url.startswith("s3://"):
        return S3Storage(url, part_size)
    if url and "://" in url and not url.startswith("file://"):
        raise ValueError(f"storage: {urlsplit(url).scheme!r} is not a store homefarm knows; "
                         "use a folder, file:///path or s3://bucket/prefix")
    folder = Path(url.removeprefix("file://")) if url else data_dir
    return LocalStorage(folder)


def output_key(job_id: int, name: str) -> str:
    return f"outputs/{job_id}/{name}"


def asset_key(sha256: str) -> str:
    return f"assets/{sha256}"


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


class Storage:
    """The interface: ``direct`` stores hand out URLs; the others serve files through the server."""

    direct = False
    part_size = PART_SIZE

    @property
    def upload_origin(self) -> str:
        """The origin (scheme, host, port) of the presigned URLs this storage gives out, if any."""
        return ""

    def describe(self) -> str:
        raise NotImplementedError

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        """Stores the file at ``path`` (a temp file the server received; it may be moved) under ``key``."""
        raise NotImplementedError

    def stat(self, key: str) -> int | None:
        """The object's size, or None when there is none."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def local_path(self, key: str) -> Path:
        raise NotImplementedError

    def download_url(self, key: str, head: bool = False) -> str:
        raise NotImplementedError

    def upload_urls(self, key: str, size: int, parts: list[str], upload_id: str | None,
                    done: set[int]) -> UploadPlan:
        raise NotImplementedError

    def finish_upload(self, key: str, sha256: str, size: int, parts: list[str], upload_id: str | None,
                      etags: dict[int, str]) -> None:
        raise NotImplementedError


class LocalStorage(Storage):
    def __init__(self, root: Path):
        self.root = Path(root)
        for folder in ("outputs", "assets"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return "a local folder"

    def local_path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        dest = self.local_path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)

    def stat(self, key: str) -> int | None:
        try:
            return self.local_path(key).stat().st_size
        except OSError:
            return None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.local_path(key)
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # the job's folder, once empty
            except OSError:
                pass

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.local_path(prefix), ignore_errors=True)


class S3Storage(Storage):
    """A bucket and a key prefix; endpoint, keys and region come from the standard AWS variables."""

    direct = True

    def __init__(self, url: str, part_size: int = PART_SIZE):
        import boto3
        from botocore.config import Config

        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError("storage: an S3 URL names its bucket: s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.part_size = part_size
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or (
            "auto" if endpoint else None)
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5},
                        # S3-compatible stores at an endpoint of their own (R2, SeaweedFS, MinIO) are addressed
                        # by path; AWS itself by virtual host.
                        s3={"addressing_style": "path" if endpoint else "auto"},
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
        self._origin: str | None = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def upload_origin(self) -> str:
        """The dashboard's page may send to it, and show outputs from it."""
        if self._origin is None:
            url = urlsplit(self.client.generate_presigned_url(
                "put_object", Params={"Bucket": self.bucket, "Key": self._key("probe")}, ExpiresIn=60))
            self._origin = f"{url.scheme}://{url.netloc}"
        return self._origin

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        """A file the server received (a protocol 1 worker's output, a scene PUT to the server)."""
        if os.path.getsize(path) <= SINGLE_PUT_MAX:
            with open(path, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body,
                                       ChecksumSHA256=_b64(sha256))
        else:  # over S3's limit for one PUT: boto3's managed multipart upload (the server hashed it already)
            self.client.upload_file(str(path), self.bucket, self._key(key))
        os.unlink(path)

    def stat(self, key: str) -> int | None:
        from botocore.exceptions import ClientError
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(key)} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def download_url(self, key: str, head: bool = False) -> str:
        """A presigned GET (or HEAD: a signature is for one method) of the object, valid for URL_TTL."""
        return str(self.client.generate_presigned_url("head_object" if head else "get_object",
                                                      Params={"Bucket": self.bucket, "Key": self._key(key)},
                                                      ExpiresIn=URL_TTL))

    def upload_urls(self, key: str, size: int, parts: list[str], upload_id: str | None,
                    done: set[int]) -> UploadPlan:
        """Presigned PUTs for the parts not ``done``; a file of one part is one plain PUT."""
        expected = part_count(size, self.part_size)
        if len(parts) != expected:
            raise StorageError(f"{size} bytes in parts of {self.part_size} make {expected} part(s), "
                               f"not the {len(parts)} SHA-256s given", field="parts")
        full = self._key(key)
        urls = []
        if expected == 1 and upload_id is None:
            checksum = _b64(parts[0])
            urls.append(UploadPart(1, self.client.generate_presigned_url(
                "put_object", Params={"Bucket": self.bucket, "Key": full, "ChecksumSHA256": checksum},
                ExpiresIn=URL_TTL), {"x-amz-checksum-sha256": checksum}))
        else:
            if upload_id is None:
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full,
                                                                ChecksumAlgorithm="SHA256")["UploadId"]
            for number, sha in enumerate(parts, 1):
                if number in done:
                    continue
                checksum = _b64(sha)
                urls.append(UploadPart(number, self.client.generate_presigned_url(
                    "upload_part", Params={"Bucket": self.bucket, "Key": full, "UploadId": upload_id,
                                           "PartNumber": number, "ChecksumSHA256": checksum},
                    ExpiresIn=URL_TTL), {"x-amz-checksum-sha256": checksum}))
        return UploadPlan(direct=True, upload_id=upload_id, part_size=self.part_size, parts=tuple(urls),
                          expires_at=time.time() + URL_TTL)

    def finish_upload(self, key: str, sha256: str, size: int, parts: list[str], upload_id: str | None,
                      etags: dict[int, str]) -> None:
        """Completes a multipart upload, then checks the object's size and checksum; a bad object is deleted."""
        from botocore.exceptions import ClientError
        full = self._key(key)
        if upload_id is not None:
            missing = [n for n in range(1, len(parts) + 1) if n not in etags]
            if missing:
                raise StorageError(f"part(s) {missing[:5]} of the upload have no ETag", field="parts")
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n], "ChecksumSHA256": _b64(sha)}
                                               for n, sha in enumerate(parts, 1)]})
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == "NoSuchUpload":
                    raise StorageError("the upload is gone from the store (it expired or was finished); "
                                       "start it again", field="upload_id", code="upload_gone") from None
                if code in ("InvalidPart", "InvalidPartOrder", "BadDigest", "InvalidDigest", "EntityTooSmall"):
                    raise StorageError(f"the store refused the parts: {code}", field="parts",
                                       code="upload_gone") from None
                raise
            expected = _b64(hashlib.sha256(b"".join(bytes.fromhex(sha) for sha in parts)).hexdigest())
            expected += f"-{len(parts)}"
        else:
            expected = _b64(sha256)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise StorageError("nothing arrived in the store; upload the file first", field="sha256",
                                   code="upload_gone") from None
            raise
        found = head.get("ChecksumSHA256")
        problem = None
        if head["ContentLength"] != size:
            problem = f"the store holds {head['ContentLength']} bytes, not the {size} declared"
        elif found is None:
            # A store that keeps no checksum: the server reads the object once and hashes it.
            if upload_id is None and self._sha256_of(full) != sha256:
                problem = "the stored bytes' SHA-256 differs from the one declared"
        elif found.split("-")[0] != expected.split("-")[0]:
            problem = "the stored bytes' SHA-256 differs from the one declared"
        if problem:
            self.client.delete_object(Bucket=self.bucket, Key=full)
            raise StorageError(problem + "; upload it again", field="sha256", code="upload_gone")

    def _sha256_of(self, full_key: str) -> str:
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=full_key)["Body"]
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
        return digest.hexdigest()


def _b64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
