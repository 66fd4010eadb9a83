"""A Blender archive mirror on loopback, with the layout of download.blender.org/release, serving archives built
for the test: a real .tar.xz (or .zip) whose ``blender`` starts the PC's own Blender, and the release's
``.sha256`` list. It answers Range requests (a resumed download), and can cut the first download of an
archive after some bytes or publish a wrong checksum."""

from __future__ import annotations

import hashlib
import html
import io
import os
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The archive's Blender: the PC's own, started through the path the archive gives it (as an unpacked release
# starts itself), so the version the install reads is a real Blender's answer.
LAUNCHER = """#!/bin/sh
exec {blender} "$@"
"""


def build_release(root: Path, version: str, blender: str, padding: int = 0, plat: str = "linux-x64",
                  wrong_checksum: bool = False) -> Path:
    """Writes ``root/Blender<series>/blender-<version>-<plat>.tar.xz`` (``.zip`` for windows) and its
    ``blender-<version>.sha256``; ``padding`` bytes of random data make it as large as a test needs."""
    series = ".".join(version.split(".")[:2])
    folder = root / f"Blender{series}"
    folder.mkdir(parents=True, exist_ok=True)
    top = f"blender-{version}-{plat}"
    files = {"blender": LAUNCHER.format(blender=blender).encode(), "readme.html": b"<p>Blender</p>",
             f"{series}/datafiles/padding.bin": os.urandom(padding)}
    if plat.startswith("windows"):
        archive = folder / f"{top}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
            for name, data in files.items():
                zipped.writestr(f"{top}/{'blender.exe' if name == 'blender' else name}", data)
    else:
        archive = folder / f"{top}.tar.xz"
        with tarfile.open(archive, "w:xz", preset=0) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mode = len(data), 0o755 if name == "blender" else 0o644
                tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if wrong_checksum:
        digest = hashlib.sha256(b"another file").hexdigest()
    (folder / f"blender-{version}.sha256").write_text(f"{digest}  {archive.name}\n")
    (folder / f"blender-{version}.md5").write_text("not read\n")
    return archive


class Mirror:
    """``with Mirror(root) as mirror:`` serves ``root`` at ``mirror.url``; ``mirror.cut_after`` bytes cut the
    next whole download of an archive; ``mirror.requests`` lists (path, Range header) as they came."""

    def __init__(self, root: Path):
        self.root = root
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Range", "")))
                path = (mirror.root / self.path.split("?")[0].removeprefix("/release").lstrip("/")).resolve()
                if not path.is_relative_to(mirror.root.resolve()) or not path.exists():
                    self.send_error(404)
                elif path.is_dir():
                    names = sorted(p.name for p in path.iterdir())
                    body = "".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>\n' for n in names).encode()
                    self._send(200, body, "text/html")
                else:
                    self._file(path)

            def _file(self, path: Path) -> None:
                size = path.stat().st_size
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes="):
                    start = int(wanted[6:].split("-")[0])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                cut = mirror.cut_after if not start and path.suffix in (".xz", ".zip") else None
                with open(path, "rb") as source:
                    source.seek(start)
                    if cut is not None:
                        mirror.cut_after = None
                        self.wfile.write(source.read(cut))
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)  # the network went away mid-download
                        return
                    shutil.copyfileobj(source, self.wfile)

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/release"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
