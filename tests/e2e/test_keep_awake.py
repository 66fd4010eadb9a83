"""The PC stays awake while a job is held, and only then: a real `homefarm run`, a real server and Blender, and a
real D-Bus whose logind and GNOME session manager are stand-ins (tests/support_dbus.py).

Taken within 1 s of a claim; released within 1 s of the job's end, a pause, a stop and a SIGKILL of the worker.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from support.harness import FAST_RENDER
from support.running import SLOW_RENDER
from support.bus import GNOME, LOGIND, PrivateBus
from support.harness import box_env, homefarm, private_file
from worker_app.app_client import AppClient
from worker_app.demo import sample_scene

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(shutil.which("dbus-daemon") is None,
                                 reason="needs dbus-daemon (Debian: dbus-daemon); .ci/run installs it")]


@pytest.fixture
def bus(tmp_path):
    bus = PrivateBus.start(tmp_path / "dbus")
    yield bus
    bus.stop()


def wait_job(app, job_id, predicate, timeout=120.0) -> tuple[dict, float]:
    """Polls the job until ``predicate(job)``; returns it and when it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = app.job(job_id)
        if predicate(job):
            return job, time.time()
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {app.job(job_id)}")


def start_worker(env, token_file):
    return subprocess.Popen([sys.executable, "-m", "worker_app", "run", "--token-file", str(token_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_pc_is_kept_awake_from_claim_to_end_and_let_sleep_at_a_pause_a_stop_and_a_kill(tmp_path, bus, serve):
    env = box_env(tmp_path, **bus.env())
    token = private_file(tmp_path / "secret" / "worker-token", serve.worker_token)
    for key, value in (("server.url", serve.url), ("blender.device", "CPU"), ("guard.check_interval_s", "0.2"),
                       ("guard.hold_off_s", "0"), ("guard.foreign_gpu_load_percent", "0")):
        assert homefarm(env, "config", "set", key, value).returncode == 0
    doctor = homefarm(env, "doctor", "--token-file", str(token))
    assert "[ok  ] awake    keep awake: through logind and GNOME's session manager, while a job is held" \
           in doctor.stdout, doctor.stdout
    app = AppClient(serve.url, serve.app_token)
    asset = app.upload_asset(sample_scene())
    scene = {k: asset[k] for k in ("url", "sha256", "size")}
    seen = len(bus.events())

    worker = start_worker(env, token)
    try:
        # 1. A job from claim to done: held while it is, released within 1 s of its end.
        quick = app.submit({"scene": scene, "render": FAST_RENDER})
        _, claimed = wait_job(app, quick["id"], lambda j: j["state"] != "queued")
        taken = bus.wait_for("taken", after=seen, service=LOGIND)
        assert taken["what"] == "sleep" and taken["mode"] == "block" and taken["who"] == "homefarm"
        assert f"job {quick['id']}" in taken["why"]
        assert taken["t"] - claimed < 1.0, f"taken {taken['t'] - claimed:.2f} s after the claim"
        assert bus.wait_for("taken", after=seen, service=GNOME)["flags"] == 4  # suspend, not idle or the screen
        job, done = wait_job(app, quick["id"], lambda j: j["state"] == "done")
        released = bus.wait_for("released", after=seen, service=LOGIND)
        assert released["t"] - done < 1.0, f"released {released['t'] - done:.2f} s after the job ended"
        assert bus.wait_for("released", after=seen, service=GNOME)["how"] == "uninhibit"
        time.sleep(1.5)
        assert bus.held(LOGIND) == 0 and bus.held(GNOME) == 0, "nothing is held while the worker waits"

        # 2. A long job, then a pause: released within 1 s of the pause.
        slow = app.submit({"scene": scene, "render": {**SLOW_RENDER, "samples": 1_000_000}})
        seen = len(bus.events())
        wait_job(app, slow["id"], lambda j: j["state"] == "leased")
        bus.wait_for("taken", after=seen, service=LOGIND)
        seen = len(bus.events())
        assert homefarm(env, "pause", "1h").returncode == 0
        paused = time.time()
        released = bus.wait_for("released", after=seen, service=LOGIND)
        assert released["t"] - paused < 1.0, f"released {released['t'] - paused:.2f} s after the pause"

        # 3. Resumed, the job comes back and is held again; a stop (SIGTERM, as systemd stops it) releases it.
        seen = len(bus.events())
        assert homefarm(env, "resume").returncode == 0
        bus.wait_for("taken", after=seen, service=LOGIND, timeout=60)
        seen = len(bus.events())
        worker.send_signal(signal.SIGTERM)
        stopped = time.time()
        released = bus.wait_for("released", after=seen, service=LOGIND)
        assert released["t"] - stopped < 1.0, f"released {released['t'] - stopped:.2f} s after the stop"
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
        output = worker.communicate(timeout=30)[0]
    assert "keeping the PC awake" in output and "the PC may sleep again" in output, output

    # 4. A worker killed outright: the kernel closes its descriptor and logind drops the inhibitor.
    seen = len(bus.events())
    worker = start_worker(env, token)
    try:
        bus.wait_for("taken", after=seen, service=LOGIND, timeout=60)
        bus.wait_for("taken", after=seen, service=GNOME)
        assert bus.held(LOGIND) == 1 and bus.held(GNOME) == 1
        seen = len(bus.events())
        worker.kill()
        killed = time.time()
        released = bus.wait_for("released", after=seen, service=LOGIND)
        assert released["t"] - killed < 1.0, f"released {released['t'] - killed:.2f} s after the kill"
        assert bus.wait_for("released", after=seen, service=GNOME)["how"] == "disconnected"
    finally:
        worker.kill()
        worker.communicate(timeout=30)
        # Its Blender (a child in its own process group) ends with it; never left behind.
        from worker_app.render import procs
        procs.reap_orphans([*(tmp_path / "box").rglob("blender.pid")])
    assert bus.held(LOGIND) == 0 and bus.held(GNOME) == 0


def test_with_keep_awake_off_nothing_is_taken(tmp_path, bus, serve):
    env = box_env(tmp_path, **bus.env())
    token = private_file(tmp_path / "secret" / "worker-token", serve.worker_token)
    for key, value in (("server.url", serve.url), ("blender.device", "CPU"), ("power.keep_awake", "false")):
        assert homefarm(env, "config", "set", key, value).returncode == 0
    doctor = homefarm(env, "doctor", "--token-file", str(token))
    assert "keep awake: off (power.keep_awake = false)" in doctor.stdout
    app = AppClient(serve.url, serve.app_token)
    asset = app.upload_asset(sample_scene())
    job = app.submit({"scene": {k: asset[k] for k in ("url", "sha256", "size")}, "render": FAST_RENDER})
    run = subprocess.run([sys.executable, "-m", "worker_app", "run", "--max-jobs", "1", "--token-file", str(token)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and app.job(job["id"])["state"] == "done", run.stdout + run.stderr
    assert [e["event"] for e in bus.events()] == ["ready"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_without_any_bus_doctor_says_what_to_do(tmp_path):
    env = box_env(tmp_path, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path / 'none'}",
                  DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path / 'none'}")
    doctor = homefarm(env, "doctor")
    line = next(line for line in doctor.stdout.splitlines() if "awake" in line)
    assert line.startswith("[warn] awake    keep awake: nothing here can keep the PC awake"), doctor.stdout
    assert "set your power settings to never suspend" in doctor.stdout
    assert "Traceback" not in doctor.stdout + doctor.stderr
