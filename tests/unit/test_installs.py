"""Blenders homefarm installs (render/installs.py): listed only when whole, removed when unused, refused in words."""

import io
import json
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from worker_app.render import archives, installs
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
        installs.remove(tmp_path, "4.5")
    monkeypatch.setattr(installs, "BPY_PYTHON", (3, 99))
    with pytest.raises(installs.InstallError, match="needs Python 3.99"):
        installs.install_module(tmp_path, "4.5")
    assert not (tmp_path / installs.BLENDERS / "bpy-4.5.partial").exists()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return path


def test_a_windows_zip_unpacks_without_its_top_folder_and_a_member_outside_refuses_it(tmp_path):
    good = _zip(tmp_path / "blender-4.5.3-windows-x64.zip", {"blender-4.5.3-windows-x64/blender.exe": b"MZ",
                                                             "blender-4.5.3-windows-x64/4.5/datafiles/a": b"1"})
    assert archives.unpack(good, tmp_path / "good") == tmp_path / "good" / "blender.exe"
    assert (tmp_path / "good" / "4.5" / "datafiles" / "a").read_bytes() == b"1"
    for evil in ("blender-4.5.3-windows-x64/../../evil.txt", "/etc/evil.txt", "C:/evil.txt"):
        bad = _zip(tmp_path / "blender-4.5.3-windows-x64.zip", {"blender-4.5.3-windows-x64/blender.exe": b"MZ",
                                                                evil: b"x"})
        target = tmp_path / f"bad{len(evil)}"
        with pytest.raises(archives.ArchiveError, match="would land outside Blender's folder"):
            archives.unpack(bad, target)
    assert not (tmp_path / "evil.txt").exists()


def test_a_tar_member_outside_or_a_link_out_refuses_the_archive(tmp_path):
    for name, kind in (("blender-4.5.3-linux-x64/../../evil", tarfile.REGTYPE),
                       ("blender-4.5.3-linux-x64/lib", tarfile.SYMTYPE)):
        archive = tmp_path / "blender-4.5.3-linux-x64.tar.xz"
        with tarfile.open(archive, "w:xz") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc"
            tar.addfile(info, io.BytesIO(b""))
            blender = tarfile.TarInfo("blender-4.5.3-linux-x64/blender")
            tar.addfile(blender, io.BytesIO(b""))
        with pytest.raises(archives.ArchiveError, match="would land outside Blender's folder"):
            archives.unpack(archive, tmp_path / f"out-{kind!r}")
    assert not (tmp_path / "evil").exists()


def test_each_os_gets_its_archive_and_a_mirror_is_https_or_this_pc(tmp_path):
    assert archives.platform_name("win32", "AMD64") == ("windows-x64", ".zip")
    assert archives.platform_name("darwin", "arm64") == ("macos-arm64", ".dmg")
    assert archives.platform_name("linux", "x86_64") == ("linux-x64", ".tar.xz")
    with pytest.raises(archives.ArchiveError, match="publishes no archive for this PC"):
        archives.platform_name("linux", "aarch64")
    assert archives.check_mirror("https://download.blender.org/release/", False) == \
        "https://download.blender.org/release"
    assert archives.check_mirror("http://127.0.0.1:8080/release", False)
    with pytest.raises(archives.ArchiveError, match="plain http to another machine"):
        archives.check_mirror("http://mirror.example.com/release", False)
    assert archives.check_mirror("http://mirror.example.com/release", True)


def test_sources_are_tried_in_order_and_every_reason_is_told(tmp_path, monkeypatch):
    tried = []

    def archive_fails(root, series, *args, **kwargs):
        tried.append("archives")
        raise archives.ArchiveError("could not reach the Blender archives")

    def module_fails(data_dir, series, **kwargs):
        tried.append("pypi")
        raise installs.InstallError("installing Blender needs Python 3.11")

    monkeypatch.setattr(archives, "install_archive", archive_fails)
    monkeypatch.setattr(installs, "install_module", module_fails)
    with pytest.raises(installs.InstallError) as error:
        installs.install(tmp_path, "4.5", ("pypi", "archives"))
    assert tried == ["pypi", "archives"]
    assert str(error.value) == ("Blender 4.5 could not be installed. PyPI: installing Blender needs Python 3.11; "
                                "the archives: could not reach the Blender archives")
    fake_install(tmp_path, "4.5", "4.5.15")
    assert installs.install(tmp_path, "4.5").version == "4.5.15", "an installed series is not installed again"
