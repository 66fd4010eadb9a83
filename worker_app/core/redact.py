"""Nothing of the owner's PC leaves it: the job's folder, homefarm's data and the home folder get neutral names
in every failure reason, log tail and warning before it goes to the server. The founder's own files are named
as they sent them: ``scene`` for a .blend, the member's path for a zip."""

from __future__ import annotations

import re
from pathlib import Path

JOB = "<job>"
DATA = "<homefarm>"
HOME = "~"

# Home folders that a scene or Blender may name though they are not ours: C:\Users\<name>, /home/<name>,
# /Users/<name>. The user's name is the private part.
_OTHER_HOMES = re.compile(r"(?i)\b[a-z]:[\\/]+users[\\/]+[^\\/\s'\"]+|(?<![\w.])/(?:home|Users)/[^/\s'\"]+")


def _spellings(path: Path) -> list[str]:
    """The ways a folder may appear in text: as given and resolved, with either slash."""
    out = set()
    for p in (path, path.resolve()):
        text = str(p).rstrip("\\/")
        if len(text) > 1:
            out.update({text, text.replace("\\", "/"), text.replace("/", "\\")})
    return sorted(out, key=len, reverse=True)  # longest first: a folder before its parent


class Redactor:
    """Replaces the job folder, homefarm's data folder and the home folder with neutral names."""

    def __init__(self, job_dir: Path, data_dir: Path, home: Path | None = None):
        unpacked = [(s + sep, "") for s in _spellings(job_dir / "scene") for sep in ("/", "\\")]
        self.pairs = [(s, "scene") for s in _spellings(job_dir / "scene.blend")] + unpacked \
            + [(s, JOB) for s in _spellings(job_dir)] + [(s, DATA) for s in _spellings(data_dir)] \
            + [(s, HOME) for s in _spellings(home or Path.home())]

    def __call__(self, text: str) -> str:
        for spelling, name in self.pairs:
            text = re.sub(re.escape(spelling), name.replace("\\", "\\\\"), text, flags=re.IGNORECASE)
        return _OTHER_HOMES.sub(HOME, text)
