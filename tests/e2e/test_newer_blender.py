"""What depends on Blender's version, against the newest Blender: PyPI's bpy (Blender 5.0 as a Python module,
installed by `make test` into .venv-bpy), running the very scripts a worker's Blender runs."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path


from support.engines import need
from support.harness import FAST_RENDER, ROOT, box_env, homefarm, private_file
from support.pngio import read_png, write_png
from worker_app.app_client import AppClient
from worker_app.demo import sample_scene
from worker_app.render.blendfile import read_header

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


SAVE_AS_NEWER = """
import sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
"""


def test_a_scene_from_a_newer_blender_renders_after_the_worker_installs_that_blender(tmp_path, serve,
                                                                                     bpy45_blender):
    """`homefarm serve` and `homefarm run` (Debian's Blender 3.4 on this PC, `blender.auto_install = yes`, PyPI as
    the source): a scene saved by Blender 4.5 LTS renders after the worker installed 4.5 while the job waited,
    in one attempt."""
    newer = tmp_path / "saved-by-4.5.blend"
    saved = subprocess.run([bpy45_blender.path, "-I", "-c", SAVE_AS_NEWER, str(sample_scene()), str(newer)],
                           capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0 and newer.is_file(), saved.stderr[-2000:]
    assert read_header(newer).version_text == "4.5"
    secret = private_file(tmp_path / "secret" / "worker-token", serve.worker_token)
    env = box_env(tmp_path)
    for key, value in (("server.url", serve.url), ("blender.auto_install", "yes"), ("blender.sources", '["pypi"]')):
        assert homefarm(env, "config", "set", key, value).returncode == 0
    app = AppClient(serve.url, serve.app_token)
    asset = app.upload_asset(newer)
    job = app.submit({"scene": {k: asset[k] for k in ("url", "sha256", "size")}, "render": FAST_RENDER})
    started = time.monotonic()
    worker = subprocess.Popen([sys.executable, "-m", "worker_app", "run", "--max-jobs", "1", "--token-file",
                               str(secret)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = worker.communicate(timeout=600)[0]
    finally:
        worker.kill()
    view = app.job(job["id"])
    assert view["state"] == "done", output[-4000:]
    assert view["attempts"] == 1 and view["stats"]["blender"].startswith("4.5"), view["stats"]
    listed = homefarm(env, "blender", "list")
    assert listed.returncode == 0 and "Blender 4.5" in listed.stdout and "module" in listed.stdout, listed.stdout
    print(f"installed on demand and rendered in {time.monotonic() - started:.1f} s")
