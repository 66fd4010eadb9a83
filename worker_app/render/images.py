"""Reading an image's size from its header, to check that a render is what was asked for."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, or ValueError if it is not one."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


# Text chunks that differ from one render of the same job to the next, or that reveal the owner's
# folders: the .blend's local path, the date, timings, memory, the host name.
_VOLATILE = re.compile(rb"^(File|Date|Time|RenderTime|Memory|Hostname|[\w.]*_time)$")


def strip_volatile_metadata(path: Path) -> bool:
    """Removes volatile and private text chunks from a PNG in place; other formats are left alone.

    The same job then gives byte-identical files on every attempt, and the web app never learns the
    owner's local paths. Returns whether anything was removed.
    """
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    out, pos, removed = [data[:8]], 8, False
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = data[pos + 8:pos + 8 + length].split(b"\0", 1)[0]
            if _VOLATILE.match(keyword):
                removed = True
                pos = end
                continue
        out.append(data[pos:end])
        pos = end
    if removed:
        tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
        tmp.write_bytes(b"".join(out))
        os.replace(tmp, path)
    return removed
