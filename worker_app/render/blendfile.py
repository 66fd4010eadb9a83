"""What a ``.blend`` file says of itself in its first bytes, read before Blender is started.

A ``.blend`` begins with ``BLENDER``, a pointer-size byte (``_``/``-``), an endianness byte (``v``/``V``) and
three digits of the version that saved it (``BLENDER-v304``); Blender 4.x/5.x files may carry the newer
``BLENDER17-01v0500`` form. Files may be gzip- (older Blender) or Zstandard-compressed (3.0 and later).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEADER = re.compile(rb"^BLENDER(?:[_-][vV](\d)(\d\d)|\d\d-\d\d[vV](\d\d)(\d\d))")


class NotABlendFile(ValueError):
    pass


@dataclass(frozen=True)
class BlendHeader:
    compression: str  # "", "gzip" or "zstd"
    version: tuple[int, int] | None  # (4, 5) for a file saved by 4.5; None where it cannot be read cheaply

    @property
    def version_text(self) -> str:
        return "" if self.version is None else f"{self.version[0]}.{self.version[1]}"


def _zstd_head(path: Path) -> bytes:
    import zstandard

    try:
        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            return reader.read(64)
    except zstandard.ZstdError as error:
        raise NotABlendFile(f"a damaged Zstandard file ({error})") from None


def read_header(path: Path) -> BlendHeader:
    """The file's compression and the Blender version that saved it; NotABlendFile for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    compression = ""
    if head.startswith(GZIP_MAGIC):
        compression = "gzip"
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(64)
        except (OSError, EOFError, zlib.error) as error:
            raise NotABlendFile(f"a damaged gzip file ({error})") from None
    elif head.startswith(ZSTD_MAGIC):
        compression = "zstd"
        head = _zstd_head(path)
    match = _HEADER.match(head)
    if not match:
        what = "a zip archive" if head.startswith(b"PK\x03\x04") else "not a Blender file"
        raise NotABlendFile(what)
    if match.group(1):
        major, minor = int(match.group(1)), int(match.group(2))
    else:
        major, minor = int(match.group(3)), int(match.group(4))
    return BlendHeader(compression, (major, minor))
