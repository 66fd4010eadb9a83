"""A headless render box: no desktop, no unlocked keyring. `homefarm run` gets its token from the service
manager (a systemd credential, or a private token file) and renders; a token file others can read is
refused; the token shows in no file, log or command line. The systemd unit is checked as shipped."""

import configparser
import re
import shutil
import stat
import subprocess
import sys
import time

import psutil
import pytest

from support.harness import FAST_RENDER, TESTS, box_env, homefarm, private_file
from worker_app.app_client import AppClient
from worker_app.demo import sample_scene

ROOT = TESTS.parent
UNIT = ROOT / "installer" / "homefarm-worker.service"


@pytest.mark.blender
@pytest.mark.parametrize("source", ["--token-file", "HOMEFARM_TOKEN_FILE", "systemd credential"])
def test_a_headless_worker_renders_with_each_token_source(tmp_path, serve, source):
    secret = private_file(tmp_path / "secret" / ("homefarm-token" if source == "systemd credential"
                                                 else "worker-token"), serve.worker_token)
    extra = {"HOMEFARM_TOKEN_FILE": str(secret)} if source == "HOMEFARM_TOKEN_FILE" else \
        {"CREDENTIALS_DIRECTORY": str(secret.parent)} if source == "systemd credential" else {}
    env = box_env(tmp_path, **extra)
    assert homefarm(env, "config", "set", "server.url", serve.url).returncode == 0
    args = ["--token-file", str(secret)] if source == "--token-file" else []
    doctor = homefarm(env, "doctor", *args)
    assert "[ok  ] token    accepted by the server; it comes from the" in doctor.stdout, doctor.stdout
    assert "keyring  not needed" in doctor.stdout

    app = AppClient(serve.url, serve.app_token)
    asset = app.upload_asset(sample_scene())
    job = app.submit({"scene": {k: asset[k] for k in ("url", "sha256", "size")}, "render": FAST_RENDER})
    worker = subprocess.Popen([sys.executable, "-m", "worker_app", "run", "--max-jobs", "1", *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    command_lines = []
    deadline = time.monotonic() + 120
    while worker.poll() is None and time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline", "environ"]):
            command_lines.append(" ".join(proc.info["cmdline"] or []))
        time.sleep(0.2)
    output = worker.communicate(timeout=10)[0]
    assert worker.returncode == 0, output
    assert app.job(job["id"])["state"] == "done", output
    assert "the worker token comes from the" in output

    files = [p for p in (tmp_path / "box").rglob("*") if p.is_file() and p.suffix not in (".png", ".blend")]
    assert any(p.name == "homefarm.log" for p in files) and any(p.name == "config.toml" for p in files)
    for path in files:
        assert serve.worker_token not in path.read_text(errors="ignore"), path
    assert serve.worker_token not in output + doctor.stdout + doctor.stderr
    assert not any(serve.worker_token in line for line in command_lines)


def test_a_token_file_others_can_read_is_refused(tmp_path, serve):
    secret = private_file(tmp_path / "worker-token", serve.worker_token, mode=0o644)
    env = box_env(tmp_path)
    homefarm(env, "config", "set", "server.url", serve.url)
    run = homefarm(env, "run", "--max-jobs", "1", "--token-file", str(secret))
    assert run.returncode == 1
    assert f"the token file {secret} can be read by other users (mode 644); make it private: chmod 600" in run.stderr
    assert "Traceback" not in run.stderr and serve.worker_token not in run.stderr
    secret.write_text("\n")
    secret.chmod(0o600)
    empty = homefarm(env, "run", "--max-jobs", "1", "--token-file", str(secret))
    assert empty.returncode == 1 and "must hold the worker token alone, on one line" in empty.stderr
    doctor = homefarm(env, "doctor", "--token-file", str(tmp_path / "missing"))
    assert doctor.returncode == 1 and "cannot be read (no such file or directory)" in doctor.stdout


def test_without_any_token_source_the_box_is_told_every_way(tmp_path):
    env = box_env(tmp_path)
    run = homefarm(env, "run", "--max-jobs", "1")
    assert run.returncode == 1
    assert "homefarm-worker.service" in run.stderr and "--token-file" in run.stderr, run.stderr


def test_the_systemd_unit_runs_the_worker_as_its_own_user_and_releases_the_job_on_stop():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    assert service["ExecStart"] == "/usr/bin/homefarm-cli run"
    assert service["User"] == "homefarm" and service["Restart"] == "on-failure"
    assert service["LoadCredential"] == "homefarm-token:/etc/homefarm/worker-token"
    assert "HOMEFARM_HOME=/var/lib/homefarm" in service["Environment"]
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    # A stop ends Blender (its grace plus a kill), gives the job back and flushes: well within the limit.
    from worker_app import constants as C
    assert int(service["TimeoutStopSec"]) >= C.BLENDER_STOP_GRACE + C.BLENDER_KILL_WAIT + C.READ_TIMEOUT + 10
    assert "PrivateDevices" not in service, "the GPU's device nodes must stay visible"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    build = (ROOT / "installer" / "build_linux.sh").read_text()
    assert "homefarm-worker.service" in build and "lib/systemd/system" in build, "the .deb ships the unit"
    postinst = (ROOT / "installer" / "deb" / "postinst").read_text()
    assert "useradd --system" in postinst and "render" in postinst and "video" in postinst
    assert stat.S_IMODE((ROOT / "installer" / "deb" / "postinst").stat().st_mode) & 0o111


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian: systemd)")
def test_systemd_accepts_the_unit_and_rates_its_sandbox(tmp_path):
    unit = tmp_path / UNIT.name
    # The executable is the .deb's; here a stand-in that exists, so that verify checks everything else.
    unit.write_text(UNIT.read_text().replace("ExecStart=/usr/bin/homefarm-cli run", "ExecStart=/bin/true run"))
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                              text=True, timeout=60)
    exposure = float(re.search(r"Overall exposure level for \S+: (\d+\.\d)", security.stdout)[1])
    assert exposure <= 4.0, security.stdout[-2000:]
