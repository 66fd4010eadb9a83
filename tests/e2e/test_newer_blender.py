"""What depends on Blender's version, against the newest Blender: PyPI's bpy (Blender 5.0 as a Python module,
installed by `make test` into .venv-bpy), running the very scripts a worker's Blender runs."""

import hashlib
import json
import subprocess
from pathlib import Path

from support.engines import need
from support.harness import ROOT
from support.pngio import read_png, write_png
from worker_app.demo import sample_scene

BPY_PYTHON = ROOT / ".venv-bpy" / "bin" / "python"


def _digest(path: str) -> str:
    width, height, pixels = read_png(Path(path))
    return hashlib.sha256(repr((width, height, pixels)).encode()).hexdigest()


def test_a_kept_scene_renders_each_kind_of_change_as_an_opened_file_and_a_movie_renders_in_the_newest_blender(
        tmp_path):
    need(str(BPY_PYTHON) if BPY_PYTHON.exists() else None, "PyPI's bpy", "make bpy")
    label = write_png(tmp_path / "label.png", 16, 16, (220, 20, 20))
    ran = subprocess.run([str(BPY_PYTHON), str(ROOT / "tests" / "blender" / "kept_scene_check.py"),
                          str(sample_scene()), str(tmp_path / "work"), str(label)],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in ran.stdout.splitlines() if line.startswith("@result ")]
    assert ran.returncode == 0 and lines, ran.stdout[-3000:] + ran.stderr[-3000:]
    result = json.loads(lines[-1][len("@result "):])
    assert result["blender"].startswith("5."), result["blender"]
    jobs = result["jobs"]
    for n, job in enumerate(jobs):
        assert _digest(job["kept"]) == _digest(job["opened"]), f"{job['name']} (job {n}) on the kept scene"
        after_image = n > 0 and jobs[n - 1]["name"] == "image"
        assert job["reused"] == (n > 0 and not after_image), (n, job["name"])
    plain = {_digest(job["opened"]) for job in jobs if job["name"] == "A"}
    assert len(plain) == 1, "A is A, whatever came before"
    assert len({_digest(job["opened"]) for job in jobs}) == len({job["name"] for job in jobs}), \
        "each change changes the picture"
    movies = result["movies"]
    assert len(movies) == 1 and Path(movies[0]).name.startswith("movie_") and Path(movies[0]).stat().st_size > 1000
