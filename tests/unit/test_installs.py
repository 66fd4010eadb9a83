"""Blenders homefarm installs (render/installs.py): listed only when whole, removed when unused, refused in words."""

import json
import os
import time
from pathlib import Path

import pytest

from worker_app.render import installs
from worker_app.render.discovery import BlenderInstall
from worker_app.render.environment import MODULE_MARK, blender_command, is_module


def fake_install(data_dir: Path, series: str, version: str, partial: bool = False) -> Path:
    """The layout install_module leaves (a venv with its mark), without the 1 GB inside."""
    venv = data_dir / installs.BLENDERS / (f"bpy-{series}" + (".partial" if partial else ""))
    installs.python_of(venv).parent.mkdir(parents=True)
    installs.python_of(venv).write_text("")
    (venv / MODULE_MARK).write_text(json.dumps({"version": version}))
    return venv


def test_only_whole_installs_are_offered_newest_first(tmp_path):
    fake_install(tmp_path, "4.5", "4.5.15")
    fake_install(tmp_path, "5.0", "5.0.1")
    fake_install(tmp_path, "4.2", "4.2.23", partial=True)  # an install cut short: never offered
    broken = tmp_path / installs.BLENDERS / "bpy-4.4"
    broken.mkdir()  # no mark: not finished
    found = installs.module_installs(tmp_path)
    assert [i.version for i in found] == ["5.0.1", "4.5.15"]
    assert all(is_module(i.path) for i in found)
    assert blender_command(found[0].path, Path("render_job.py"), "job.json")[1:] == ["-I", "-B", "render_job.py",
                                                                                  "--", "job.json"]
    assert not is_module("/usr/bin/blender")
    assert "--factory-startup" in blender_command("/usr/bin/blender", Path("render_job.py"), "job.json")


def test_a_blender_no_job_used_for_its_days_is_removed_and_the_system_one_never(tmp_path):
    old = fake_install(tmp_path, "4.5", "4.5.15")
    used = fake_install(tmp_path, "5.0", "5.0.1")
    month_ago = time.time() - 31 * 86400
    os.utime(old / MODULE_MARK, (month_ago, month_ago))
    os.utime(used / MODULE_MARK, (month_ago, month_ago))
    installs.mark_used(BlenderInstall(str(installs.python_of(used)), "5.0.1"))
    installs.mark_used(BlenderInstall("/usr/bin/blender", "3.4.1"))  # an executable: nothing noted
    assert installs.remove_unused(tmp_path, 0) == [], "0 keeps them"
    assert installs.remove_unused(tmp_path, 30) == ["4.5.15"]
    assert [i.version for i in installs.module_installs(tmp_path)] == ["5.0.1"] and not old.exists()


def test_bad_requests_are_refused_in_words(tmp_path, monkeypatch):
    with pytest.raises(installs.InstallError, match="not a Blender series such as 4.5"):
        installs.install_module(tmp_path, "latest")
    with pytest.raises(installs.InstallError, match="no Blender 4.5 was installed by homefarm"):
        installs.remove_module(tmp_path, "4.5")
    monkeypatch.setattr(installs, "BPY_PYTHON", (3, 99))
    with pytest.raises(installs.InstallError, match="needs Python 3.99"):
        installs.install_module(tmp_path, "4.5")
    assert not (tmp_path / installs.BLENDERS / "bpy-4.5.partial").exists()
