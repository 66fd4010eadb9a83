"""The worker against a real server on loopback, rendering with the real Blender."""

import hashlib
import json
import threading
import time

import pytest

from support.harness import FAST_RENDER, Served, wait_until
from support.running import SLOW_RENDER, Running, blender_processes
from worker_app.demo import sample_scene
from worker_app.render.images import png_size
from worker_app.server import JobServer
from worker_app.core import Folders, Settings, State, Update, Worker

pytestmark = pytest.mark.blender

def test_renders_frames_end_to_end(served, blender, tmp_path):
    job = served.submit({**FAST_RENDER, "frames": "1-2"})
    running = Running(served, blender, tmp_path)
    running.finish()
    report = running.reports[0]
    assert report.outcome == "done", report.reason
    view = served.app.job(job["id"])
    assert view["state"] == "done"
    assert [o["name"] for o in view["outputs"]] == ["frame_0001.png", "frame_0002.png"]
    for output, local in zip(view["outputs"], report.outputs):
        fetched = served.app.download_output(job["id"], output["name"], tmp_path / "got" / output["name"])
        assert png_size(fetched) == (64, 36)
        assert fetched.read_bytes() == local.read_bytes()
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == output["sha256"]
    assert view["stats"]["frames"] == 2 and view["stats"]["render_s"] > 0
    for state in (State.CONNECTING, State.WAITING, State.DOWNLOADING, State.RENDERING, State.UPLOADING):
        assert state in running.states
    log = (running.jobs_dir / job["id"] / "blender.log").read_text()
    print(f"Blender rendered job {job['id']}; its log:\n{log}")
    assert "Sample 2/2" in log and '"event": "job_done"' in log
    assert running.states[-1] == State.STOPPED


def test_scene_with_wrong_sha256_is_failed_and_nothing_renders(served, blender, tmp_path):
    scene = served.upload_scene()
    scene["sha256"] = hashlib.sha256(b"another scene").hexdigest()
    job = served.submit(scene=scene)
    running = Running(served, blender, tmp_path)
    running.finish()
    view = served.app.job(job["id"])
    assert view["state"] == "failed"
    assert view["error"].startswith("scene.sha256:")
    assert State.RENDERING not in running.states
    assert not (running.jobs_dir / job["id"] / "blender.log").exists()
    assert not list((running.jobs_dir / job["id"] / "out").iterdir())


def test_a_bad_field_is_caught_again_by_the_worker(served, blender, tmp_path):
    # Written straight into the database, as a backend with a looser validator might.
    scene = served.upload_scene()
    job_id = served.server.store.submit({"scene": scene, "render": {"engine": "CYCLES", "samples": "many"}},
                                        0, 1, None)
    running = Running(served, blender, tmp_path)
    running.finish()
    view = served.app.job(str(job_id))
    assert view["state"] == "failed"
    assert view["error"].startswith("invalid job: render.samples:")


def test_blender_failure_is_reported_with_its_reason_and_the_worker_keeps_serving(served, blender, tmp_path):
    bad = served.submit({**FAST_RENDER, "camera": "NoSuchCamera"})
    good = served.submit(FAST_RENDER)
    running = Running(served, blender, tmp_path, max_jobs=2)
    running.finish()
    failed = served.app.job(bad["id"])
    assert failed["state"] == "failed"
    assert failed["error"] == "render.camera: no camera object named 'NoSuchCamera'"
    assert "Traceback" in failed["log_tail"]
    assert served.app.job(good["id"])["state"] == "done"


def test_cancel_stops_blender_at_once(quick_served, blender, tmp_path):
    job = quick_served.submit(SLOW_RENDER)
    running = Running(quick_served, blender, tmp_path)
    running.wait_for_state(State.RENDERING)
    wait_until(lambda: blender_processes(running.jobs_dir), what="Blender to render")
    quick_served.app.cancel(job["id"])
    assert running.ended.wait(15)
    running.finish()
    assert running.reports[0].outcome == "canceled"
    assert blender_processes(running.jobs_dir) == []
    assert quick_served.app.job(job["id"])["state"] == "canceled"


def test_stopping_the_worker_releases_the_job_and_leaves_no_blender(served, blender, tmp_path):
    job = served.submit(SLOW_RENDER)
    running = Running(served, blender, tmp_path)
    running.wait_for_state(State.RENDERING)
    wait_until(lambda: blender_processes(running.jobs_dir), what="Blender to render")
    running.worker.stop()
    running.finish(30)
    assert running.reports[0].outcome == "released"
    assert blender_processes(running.jobs_dir) == []
    view = served.app.job(job["id"])
    assert view["state"] == "queued" and view["attempts"] == 0


def test_wall_clock_limit(served, blender, tmp_path):
    job = served.submit(SLOW_RENDER, timeouts={"total_s": 3})
    running = Running(served, blender, tmp_path)
    running.finish()
    view = served.app.job(job["id"])
    assert view["state"] == "failed"
    assert "timeouts.total_s" in view["error"]
    assert blender_processes(running.jobs_dir) == []


def test_zip_scene(served, blender, tmp_path):
    import zipfile
    archive = tmp_path / "shot.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(sample_scene(), "shot/main.blend")
        zf.writestr("shot/README.txt", "textures would live here")
    asset = served.app.upload_asset(archive)
    job = served.submit(scene={"url": asset["url"], "sha256": asset["sha256"], "size": asset["size"],
                               "type": "zip", "blend": "shot/main.blend"})
    running = Running(served, blender, tmp_path)
    running.finish()
    assert served.app.job(job["id"])["state"] == "done", running.reports[0].reason
    assert (running.jobs_dir / job["id"] / "scene" / "shot" / "README.txt").is_file()


def test_job_file_given_to_blender_is_plain_data(served, blender, tmp_path):
    job = served.submit({**FAST_RENDER, "camera": "Camera'); import os; os.system('touch pwned') #"})
    running = Running(served, blender, tmp_path)
    running.finish()
    view = served.app.job(job["id"])
    assert view["state"] == "failed" and view["error"].startswith("render.camera:")
    job_file = json.loads((running.jobs_dir / job["id"] / "job.json").read_text())
    assert job_file["render"]["camera"].startswith("Camera');")
    assert not list(tmp_path.glob("**/pwned"))


def test_the_server_announces_updates_and_refuses_old_workers(blender, tmp_path):
    from worker_app.client import WorkerClient

    server = JobServer(tmp_path / "s1", latest_worker_version="99.1").start()
    try:
        served = Served(server)
        job = served.submit(FAST_RENDER)
        running = Running(served, blender, tmp_path / "a")
        running.finish()
        assert running.worker.snapshot.update == Update("99.1", required=False)
        assert served.app.job(job["id"])["state"] == "done"
    finally:
        server.stop()

    server = JobServer(tmp_path / "s2", min_worker_version="99.0").start()
    try:
        served = Served(server)
        job = served.submit(FAST_RENDER)
        worker = Worker(WorkerClient(server.url, served.worker_token), blender,
                        Folders(tmp_path / "b" / "jobs", tmp_path / "b" / "cache"))
        thread = worker.start_thread()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and worker.snapshot.state != State.PAUSED:
            time.sleep(0.05)
        assert worker.snapshot.update == Update("99.0", required=True)
        assert worker.snapshot.pause.kind == "update"
        assert "needs homefarm 99.0 or newer" in worker.snapshot.pause.reason
        claimed = threading.Event()
        original = server.store.claim
        server.store.claim = lambda *a, **k: (claimed.set(), original(*a, **k))[1]
        assert not claimed.wait(1.0), "a worker below the minimum version claimed"
        assert served.app.job(job["id"])["state"] == "queued"
        worker.stop()
        thread.join(10)
    finally:
        server.stop()


def test_gpu_figures_in_heartbeats_and_energy_with_complete(quick_served, blender, tmp_path):
    """NVML through the fake provider (no GPU here): figures reach the server, energy comes with complete."""
    from support.fake_nvml import FakeProvider
    from worker_app.guard.energy import Ledger
    from worker_app.system.gpu import GpuMonitor

    provider = FakeProvider()
    provider.load, provider.temp_c, provider.power_w = 97, 71, 180.0
    monitor = GpuMonitor(provider, interval=0.2)

    def burn(snapshot):  # the counter runs while the job renders: 180 W
        provider.energy_mj += int(180.0 * 0.2 * 1000)

    ledger = Ledger(tmp_path / "stats.sqlite3")
    job = quick_served.submit({**FAST_RENDER, "samples": 300, "resolution": [96, 54]})
    worker = Worker(quick_served.worker_client(), blender, Folders(tmp_path / "jobs", tmp_path / "cache"),
                    Settings(device="CPU", max_jobs=1), make_client=quick_served.worker_client, monitor=monitor,
                    ledger=ledger)
    seen = []
    to_worker = monitor.on_sample
    monitor.on_sample = lambda s: (burn(s), to_worker(s))
    original = quick_served.server.store.heartbeat
    quick_served.server.store.heartbeat = lambda j, l, p: (seen.append(p), original(j, l, p))[1]
    monitor.start()
    thread = worker.start_thread()
    thread.join(120)
    monitor.stop()
    view = quick_served.app.job(job["id"])
    assert view["state"] == "done"
    rendering = [p for p in seen if p.get("stage") == "rendering" and p.get("gpu")]
    assert rendering and rendering[-1]["gpu"]["load"] == 97 and rendering[-1]["gpu"]["temp_c"] == 71
    assert view["stats"]["energy_source"] == "counter" and view["stats"]["gpu_energy_wh"] > 0
    assert ledger.summary()["today"].jobs == 1 and ledger.summary()["today"].energy_wh > 0
