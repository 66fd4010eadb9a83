"""The route docs/scenes.md gives founders: a project with a linked library and a texture, packed into a zip
by Blender Studio's blender-asset-tracer (`bat pack`), rendered by homefarm with nothing missing."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support.harness import FAST_RENDER, TESTS
from support.running import Running

pytestmark = pytest.mark.blender

MAKER = TESTS / "blender" / "make_project.py"


def test_a_project_packed_with_bat_renders_with_nothing_missing(served, blender, tmp_path):
    project = tmp_path / "project"
    subprocess.run([blender.path, "-b", "--factory-startup", "--python", str(MAKER), "--", str(project)],
                   check=True, capture_output=True, timeout=300)
    packed = tmp_path / "shot.zip"
    bat = shutil.which("bat", path=str(Path(sys.executable).parent))  # installed with the dev extra
    subprocess.run([bat, "pack", "-p", str(project), str(project / "shot.blend"), str(packed)], check=True,
                   capture_output=True, timeout=300)
    members = zipfile.ZipFile(packed).namelist()
    assert {"shot.blend", "lib/props.blend", "tex/green.png"} <= set(members), members

    asset = served.app.upload_asset(packed)
    scene = {"url": asset["url"], "sha256": asset["sha256"], "size": asset["size"], "type": "zip",
             "blend": "shot.blend"}
    job = served.submit(FAST_RENDER, scene=scene, strict=True)
    Running(served, blender, tmp_path / "worker").finish(180)
    view = served.app.job(job["id"])
    assert view["state"] == "done", view["error"]
    assert [w for w in view["warnings"] if w["kind"] != "render"] == []
