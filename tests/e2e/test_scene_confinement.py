"""Scenes from strangers write nowhere but the job's folder: one hostile .blend per write path Blender takes on
render (made by tests/blender/make_hostile.py), each first shown to write outside with bare Blender."""

import shutil
import subprocess
from pathlib import Path

import pytest

from support.harness import FAST_RENDER, TESTS
from support.running import Running

pytestmark = pytest.mark.blender

MAKER = TESTS / "blender" / "make_hostile.py"
# Cases that leave the folder of the .blend with bare Blender (on Linux; the share and drive-letter paths are
# odd relative names there, and an input path is joined onto its node's folder).
ESCAPING = ("absolute", "parent", "multilayer", "fluid")
ALL = ESCAPING + ("unc", "drive", "slot")


@pytest.fixture(scope="session")
def hostile(blender, tmp_path_factory):
    """The hostile files, and the folder outside every job that they aim at."""
    root = tmp_path_factory.mktemp("hostile")
    made, outside = root / "made", root / "outside"
    made.mkdir()
    outside.mkdir()
    subprocess.run([blender.path, "-b", "--factory-startup", "--python", str(MAKER), "--", str(made), str(outside)],
                   check=True, capture_output=True, timeout=300)
    shutil.rmtree(outside)  # making the fluid scene already simulated its first frame there
    outside.mkdir()
    return made, outside


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", ESCAPING)
def test_bare_blender_really_writes_outside(hostile, blender, tmp_path, case):
    """The control: without homefarm, each of these files writes outside its folder on render."""
    made, outside = hostile
    folder = tmp_path / "a" / "b" / "c"
    folder.mkdir(parents=True)
    shutil.copy(made / f"{case}.blend", folder / "scene.blend")
    before = files_under(outside)
    subprocess.run([blender.path, "-b", "--factory-startup", str(folder / "scene.blend"), "-o", "//frame_",
                    "-f", "1"], cwd=folder, capture_output=True, timeout=300)
    escaped = (files_under(outside) - before) | {p for p in files_under(tmp_path) if "escaped_" in str(p)}
    assert escaped, f"{case}: the trap did not fire, so the homefarm test proves nothing"
    for path in files_under(outside) - before:
        path.unlink()


@pytest.mark.parametrize("case", ALL)
def test_a_hostile_scene_renders_with_nothing_written_outside_the_job(hostile, served, blender, tmp_path, case):
    made, outside = hostile
    before = files_under(outside)
    job = served.submit({**FAST_RENDER, "frames": "1-2" if case == "fluid" else "1"},
                        scene=served.upload_scene(made / f"{case}.blend"))
    running = Running(served, blender, tmp_path)
    running.finish(180)
    view = served.app.job(job["id"])
    assert view["state"] == "done", view["error"]
    assert files_under(outside) == before, f"{case} wrote outside: {files_under(outside) - before}"
    job_dir = running.jobs_dir / job["id"]
    strays = [p for p in files_under(tmp_path) if "escaped_" in str(p) or "Image0001" in p.name
              and job_dir not in p.parents]
    assert strays == [], strays
    names = [o["name"] for o in view["outputs"]]
    assert "frame_0001.png" in names
    if case != "fluid":
        # The File Output node's images are outputs of the job, named apart from frames.
        extra = [n for n in names if n.startswith("compositor_Leak_")]
        assert extra and all(n.endswith((".png", ".exr")) for n in extra), names
    redirected = [w for w in view["warnings"] if w["kind"] == "redirected"]
    assert redirected, view["warnings"]
    assert not [w for w in redirected if ", input " in (w.get("message") or "") + (w.get("path") or "")], \
        "a File Output node is told once (its folder), not once more per input"
    assert str(tmp_path) not in str(view["warnings"]), "a warning names a folder of this PC"
    # Nothing was written in the job's folder outside its own places either.
    assert not [p for p in files_under(job_dir) if "Startup" in str(p) or "server" in str(p)]
