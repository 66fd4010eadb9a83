"""The installers' smoke test (installer/smoke.py) run here, as CI's Windows job runs it against the installed
programs: the job server from another Python, a temp folder reached through a link (Windows hands out 8.3 short
names), and a smoke that fails saying what it saw."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.harness import ROOT, TESTS, posix_only


def _smoke_env(tmp_path) -> dict:
    """The smoke's environment here: the test keyring (no OS keyring on CI) and a temp folder reached through a
    link, as Windows hands out C:\\Users\\RUNNER~1\\... while the worker resolves the long name."""
    real = tmp_path / "real-temp"
    real.mkdir()
    (tmp_path / "linked-temp").symlink_to(real)
    return {**os.environ, "TMPDIR": str(tmp_path / "linked-temp"), "PYTHONPATH": str(TESTS),
            "PYTHON_KEYRING_BACKEND": "support.keyring_file_backend.FileKeyring",
            "HOMEFARM_TEST_KEYRING": str(tmp_path / "keyring.json")}


@pytest.mark.blender
@posix_only("a symlinked temp folder stands for Windows' short names")
def test_the_installers_smoke_passes_with_the_server_from_another_python_and_a_linked_temp_folder(tmp_path):
    cli = Path(sys.executable).with_name("homefarm")
    smoke = subprocess.run([sys.executable, str(ROOT / "installer" / "smoke.py"), str(cli), "--server-python",
                            sys.executable, "--blend", str(ROOT / "resources" / "sample_scene.blend")],
                           env=_smoke_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    for step in ("ok: serve on http://127.0.0.1:", "ok: the worker renders the job",
                 "ok: pausing ends Blender and gives the job back", "smoke test passed"):
        assert step in smoke.stdout


@posix_only("the stand-in for a Python without the server is a shell script")
def test_a_smoke_that_fails_says_what_it_saw(tmp_path):
    # A "Python" that cannot serve, as the PC's bundle could not: the smoke says so and shows its output.
    fake = tmp_path / "no-server"
    fake.write_text("#!/bin/sh\necho 'homefarm serve needs the server extra: pip install homefarm[server]'\nexit 2\n")
    fake.chmod(0o755)
    smoke = subprocess.run([sys.executable, str(ROOT / "installer" / "smoke.py"), "homefarm-cli", "--server-python",
                            str(fake), "--blend", str(ROOT / "resources" / "sample_scene.blend")],
                           env=_smoke_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert smoke.returncode == 1
    assert "FAILED: the job server did not start (exit 2)" in smoke.stdout
    assert "needs the server extra" in smoke.stdout and "Traceback" not in smoke.stderr
