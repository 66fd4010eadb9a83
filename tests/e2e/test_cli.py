"""The `homefarm` command as a person runs it: separate processes, a real server, a real Blender."""

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from support.harness import FAST_RENDER, cli_env as homefarm_env, run_cli as homefarm
from support.server_process import start_server
from worker_app.app_client import AppClient
from worker_app.demo import sample_scene
from worker_app.render.images import png_size


@pytest.mark.blender
def test_demo_renders_the_sample_scene_and_prints_its_path_last(tmp_path):
    result = homefarm(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    lines = result.stdout.strip().splitlines()
    image = Path(lines[-1])
    assert image.is_file() and png_size(image) == (640, 360)
    assert image.stat().st_size > 50_000  # a real render, not a blank image
    for stage in ("submitted -> claimed", "download", "render", "upload", "claimed -> done"):
        assert any(line.strip().startswith(stage) for line in lines), stage


def test_version_and_help(tmp_path):
    assert homefarm(tmp_path, "--version").stdout.startswith("homefarm ")
    assert "serve" in homefarm(tmp_path, "--help").stdout


def test_bad_config_value_is_refused_with_the_key(tmp_path):
    result = homefarm(tmp_path, "config", "set", "blender.device", "TPU")
    assert result.returncode != 0
    assert "blender.device: must be one of AUTO, GPU, CPU" in result.stderr


@pytest.fixture
def serve(tmp_path):
    server = start_server(tmp_path / "home" / "data" / "server", env=homefarm_env(tmp_path))
    try:
        yield server.url, server.app_token, server.worker_token, server.proc
    finally:
        server.stop()


@pytest.mark.blender
def test_serve_login_run_and_the_token_stays_secret(tmp_path, serve):
    url, app_token, worker_token, server_proc = serve
    login = homefarm(tmp_path, "login", "--server", url, "--token-stdin", input=worker_token + "\n")
    assert login.returncode == 0, login.stderr
    doctor = homefarm(tmp_path, "doctor")
    assert "[ok  ] token" in doctor.stdout and "[ok  ] blender" in doctor.stdout, doctor.stdout
    assert doctor.returncode == 0

    app = AppClient(url, app_token)
    asset = app.upload_asset(sample_scene())
    job = app.submit({"scene": {k: asset[k] for k in ("url", "sha256", "size")}, "render": FAST_RENDER})
    worker = subprocess.Popen([sys.executable, "-m", "worker_app", "run", "--max-jobs", "1"],
                              env=homefarm_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    command_lines = []
    deadline = time.monotonic() + 120
    while worker.poll() is None and time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            command_lines.append(" ".join(proc.info["cmdline"] or []))
        time.sleep(0.2)
    output = worker.communicate(timeout=10)[0]
    assert worker.returncode == 0, output
    assert app.job(job["id"])["state"] == "done", output

    home = tmp_path / "home"
    files = [p for p in home.rglob("*") if p.is_file() and p.suffix not in (".png", ".blend")]
    assert any(p.name == "homefarm.log" for p in files)
    assert any(p.name == "config.toml" for p in files)
    for path in files:
        assert worker_token not in path.read_text(errors="ignore"), path
    assert worker_token not in output + login.stdout + login.stderr + doctor.stdout
    assert not any(worker_token in line for line in command_lines)
    assert (tmp_path / "test-keyring.json").read_text().count(worker_token) == 1


def test_login_refuses_a_wrong_token(tmp_path, serve):
    url = serve[0]
    result = homefarm(tmp_path, "login", "--server", url, "--token-stdin", input="hfw_wrong\n")
    assert result.returncode != 0 and "refused this token" in result.stderr
    assert not (tmp_path / "test-keyring.json").exists()


def test_run_without_login_says_what_to_do(tmp_path):
    result = homefarm(tmp_path, "run")
    assert result.returncode != 0
    assert "homefarm login --server" in result.stderr


def test_pause_and_resume_from_the_command_line(tmp_path):
    import datetime as dt

    from worker_app.guard import ManualPause

    out = homefarm(tmp_path, "pause", "30m")
    assert out.returncode == 0 and out.stdout.startswith("Paused by you until ")
    pause = ManualPause(tmp_path / "home" / "data" / "pause.json")
    assert pause.check(dt.datetime.now()).kind == "manual"
    assert homefarm(tmp_path, "pause", "tomorrow").stdout.strip().endswith("08:00")
    assert homefarm(tmp_path, "pause").stdout.strip() == "Paused until you resume"
    bad = homefarm(tmp_path, "pause", "a while")
    assert bad.returncode != 0 and "use 30m, 1h, tomorrow or indefinitely" in bad.stderr
    assert homefarm(tmp_path, "resume").returncode == 0
    assert pause.check(dt.datetime.now()) is None


def test_stats_prints_totals_and_cost(tmp_path):
    from worker_app.guard.energy import Ledger

    Ledger(tmp_path / "home" / "data" / "stats.sqlite3").record("7", "http://s", "done", 65.0, 60.0, 250.0)
    out = homefarm(tmp_path, "stats").stdout
    assert "today" in out and "0.250" in out and "0.07 EUR" in out
    assert "job 7" in out and "250.00 Wh = 0.0750 EUR" in out


def test_login_says_what_went_wrong_in_words(tmp_path, serve):
    url = serve[0]
    app_token = homefarm(tmp_path, "login", "--server", url, "--token-stdin", input="hfa_abc\n")
    assert app_token.returncode != 0 and "that is the web app's token" in app_token.stderr
    no_terminal = homefarm(tmp_path, "login", "--server", url, input="")
    assert no_terminal.returncode != 0 and "--token-stdin" in no_terminal.stderr
    assert "Traceback" not in no_terminal.stderr + app_token.stderr
    gone = homefarm(tmp_path, "login", "--server", "http://127.0.0.1:9", "--token-stdin", input="hfw_x\n")
    assert "nothing answers at 127.0.0.1:9: is the job server running?" in gone.stderr
    assert "Error" not in gone.stderr
    assert not (tmp_path / "test-keyring.json").exists()


def test_config_speaks_toml_and_shows_one_key(tmp_path):
    everything = homefarm(tmp_path, "config").stdout
    assert "blender.warm = true" in everything and "guard.games = []" in everything
    assert "False" not in everything and "()" not in everything
    assert homefarm(tmp_path, "config", "show", "blender.device").stdout.strip() == 'blender.device = "AUTO"'
    changed = homefarm(tmp_path, "config", "set", "blender.warm_idle_s", "300").stdout
    assert changed.startswith("blender.warm_idle_s = 300  (saved in ") and changed.count("\n") == 1
    unknown = homefarm(tmp_path, "config", "show", "blender.colour")
    assert unknown.returncode != 0 and "blender.colour: unknown key (allowed: server.url" in unknown.stderr


def test_scripts_get_json_from_doctor_stats_and_config(tmp_path):
    import json

    from worker_app.guard.energy import Ledger

    homefarm(tmp_path, "config", "set", "server.url", "http://127.0.0.1:9")  # nothing answers there
    doctor = homefarm(tmp_path, "doctor", "--json")
    result = json.loads(doctor.stdout)
    assert doctor.returncode == 1 and result["ok"] is False
    checks = {check["name"]: check for check in result["checks"]}
    assert checks["server"]["ok"] is False and "nothing answers at 127.0.0.1:9" in checks["server"]["detail"]
    assert checks["token"] == {"name": "token", "ok": False, "required": True,
                               "detail": "no worker token for http://127.0.0.1:9 in the keyring",
                               "fix": "run `homefarm login --server http://127.0.0.1:9`"}, \
        "a PC not signed in is told so even when the server does not answer"
    Ledger(tmp_path / "home" / "data" / "stats.sqlite3").record("7", "http://s", "done", 65.0, 60.0, 250.0)
    stats = json.loads(homefarm(tmp_path, "stats", "--json").stdout)
    assert stats["totals"]["today"] == {"jobs": 1, "render_s": 60.0, "gpu_energy_wh": 250.0, "cost": 0.075}
    assert stats["recent"][0]["job_id"] == "7" and stats["currency"] == "EUR"
    assert json.loads(homefarm(tmp_path, "config", "show", "guard.games", "--json").stdout) == {"guard.games": []}
    assert json.loads(homefarm(tmp_path, "config", "--json").stdout)["blender.warm"] is True


def test_config_set_takes_one_word_for_a_list_and_explains_windows(tmp_path):
    games = homefarm(tmp_path, "config", "set", "guard.games", "eldenring.exe")
    assert games.stdout.startswith('guard.games = ["eldenring.exe"]')
    weekends = homefarm(tmp_path, "config", "set", "guard.render_only", "weekends")
    assert weekends.returncode == 1
    assert "guard.render_only: 'weekends' is not a window such as 'mon-fri 01:00-08:00' or '18:00-23:00'" \
        in weekends.stderr
    number = homefarm(tmp_path, "config", "set", "guard.never", "3")
    assert 'must be a list of strings, e.g. ["sat-sun 10:00-22:00"]' in number.stderr
