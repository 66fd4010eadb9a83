"""`homefarm blender add` from the official archives' layout, against a mirror on loopback that serves a real
archive built for the test (its Blender is the PC's own, so the version read after unpacking is a real
Blender's answer): verified before unpacking, resumed after a cut, refused on a full disk, atomic."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from support.blender_mirror import Mirror, build_release
from support.harness import box_env, homefarm
from worker_app.render import archives, installs


@pytest.fixture
def box(tmp_path, blender):
    """A headless box whose Blenders come from the mirror's archives only."""
    env = box_env(tmp_path)
    release = tmp_path / "release"
    with Mirror(release) as mirror:
        for key, value in (("blender.sources", '["archives"]'), ("blender.mirror", mirror.url)):
            assert homefarm(env, "config", "set", key, value).returncode == 0
        yield env, mirror, release, tmp_path / "box" / "data" / installs.BLENDERS, blender


def _left(blenders):
    return sorted(str(p.relative_to(blenders)) for p in blenders.rglob("*")) if blenders.exists() else []


def test_an_archive_is_checked_unpacked_listed_used_and_removed(box):
    env, mirror, release, blenders, blender = box
    build_release(release, "3.4.0", blender.path)  # an older patch release of the series: not taken
    archive = build_release(release, blender.version, blender.path)
    added = homefarm(env, "blender", "add", "3.4", timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"Blender {blender.version} is ready" in added.stdout
    assert any(path.endswith(archive.name) for path, _ in mirror.requests)
    assert not any("3.4.0-linux" in path for path, _ in mirror.requests)
    mark = json.loads((blenders / "blender-3.4" / archives.ARCHIVE_MARK).read_text())
    assert mark["version"] == blender.version and mark["source"] == "archives" and mark["executable"] == "blender"
    assert not (blenders / "downloads").exists(), "the archive is not kept once unpacked"
    assert not list(blenders.glob("*.partial"))
    listed = homefarm(env, "blender", "list")
    assert f"Blender {blender.version:<10} archive" in listed.stdout, listed.stdout
    doctor = homefarm(env, "doctor", timeout=300)
    assert "installed by homefarm from the archives" in doctor.stdout, doctor.stdout
    removed = homefarm(env, "blender", "remove", "3.4")
    assert removed.returncode == 0 and not (blenders / "blender-3.4").exists()


def test_a_wrong_checksum_is_refused_and_nothing_is_unpacked(box):
    env, mirror, release, blenders, blender = box
    build_release(release, blender.version, blender.path, wrong_checksum=True)
    added = homefarm(env, "blender", "add", "3.4", timeout=300)
    assert added.returncode != 0
    assert "does not match the checksum its release publishes, so nothing was unpacked" in added.stderr
    assert "Traceback" not in added.stderr and str(blenders) not in added.stderr
    assert _left(blenders) == [], _left(blenders)
    assert "archive" not in homefarm(env, "blender", "list").stdout


def test_a_cut_download_is_resumed_where_it_stopped_within_the_install_and_by_the_next(box):
    env, mirror, release, blenders, blender = box
    archive = build_release(release, blender.version, blender.path, padding=3_000_000)
    mirror.cut_after = 1_000_000
    added = homefarm(env, "blender", "add", "3.4", timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    ranges = [wanted for path, wanted in mirror.requests if path.endswith(archive.name)]
    assert len(ranges) == 2 and ranges[0] == "" and ranges[1].startswith("bytes="), ranges
    assert 500_000 < int(ranges[1][6:].rstrip("-")) <= 1_000_000, "resumed from what had come, not from 0"
    assert homefarm(env, "blender", "remove", "3.4").returncode == 0
    # What an install stopped by a reboot left: the next install goes on from there.
    part = blenders / "downloads" / (archive.name + ".part")
    part.parent.mkdir()
    part.write_bytes(archive.read_bytes()[:2_000_000])
    mirror.requests.clear()
    again = homefarm(env, "blender", "add", "3.4", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [w for p, w in mirror.requests if p.endswith(archive.name)] == ["bytes=2000000-"]
    assert not part.exists() and (blenders / "blender-3.4" / "blender").is_file()


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs util-linux's unshare")
def test_a_full_disk_is_refused_in_words_and_nothing_is_left_behind(box):
    """The install's folder on a real filesystem of 4 MB (a tmpfs in a mount namespace of the test's own)
    and an archive of 3 MB that unpacks to more than is left."""
    env, mirror, release, blenders, blender = box
    build_release(release, blender.version, blender.path, padding=3_000_000)
    blenders.mkdir(parents=True)
    script = 'mount -t tmpfs -o size=4m tmpfs "$0" || exit 99; "$@"; rc=$?; echo "left:"; ls -A "$0"; exit $rc'
    # A mount namespace of the test's own: as root it needs nothing more, else a user namespace maps us to root.
    namespace = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    added = subprocess.run([*namespace, "sh", "-c", script, str(blenders),
                            sys.executable, "-m", "worker_app", "blender", "add", "3.4"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert added.returncode not in (0, 99), added.stdout + added.stderr
    assert "Blender needs about" in added.stderr and "free some space and try again" in added.stderr, added.stderr
    assert "Traceback" not in added.stderr
    assert added.stdout.split("left:")[-1].split() == [], "nothing is left on the full disk: " + added.stdout


def test_a_mirror_over_plain_http_to_another_machine_is_refused(box):
    env, mirror, release, blenders, blender = box
    assert homefarm(env, "config", "set", "blender.mirror", "http://mirror.example.com/release").returncode == 0
    added = homefarm(env, "blender", "add", "3.4")
    assert added.returncode != 0 and "plain http to another machine" in added.stderr, added.stderr
    assert not os.path.exists(blenders / "blender-3.4")
