"""``homefarm demo``: one real render through the whole path, with the time of each stage.

The reference server starts on a loopback port in this process; the worker signs on and waits in
its long poll; the web app's side uploads the bundled sample scene and submits a job; the worker
claims it, downloads the scene, renders it with headless Blender, uploads the image and completes;
the web app's side downloads the image. The image's path is the last line printed.
"""

from __future__ import annotations

import shutil
import threading
import time
from importlib import resources
from pathlib import Path

from worker_app.app_client import AppClient
from worker_app.render.discovery import BlenderInstall
from worker_app.client import WorkerClient
from worker_app.render.images import png_size
from worker_app.server import JobServer
from worker_app.core import BUSY_STATES, Folders, JobReport, Settings, State, Worker

SAMPLE_SPEC = {"engine": "CYCLES", "samples": 16, "resolution": [640, 360], "frames": "1",
               "format": "PNG"}


def sample_scene() -> Path:
    return Path(str(resources.files("worker_app.resources").joinpath("sample_scene.blend")))


def run_demo(blender: BlenderInstall, work_dir: Path, device: str = "AUTO", out=print) -> Path:
    """Renders the sample scene through a real server and worker; returns the image's path."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    out(f"Blender {blender.version} at {blender.path}")
    t_start = time.monotonic()
    server = JobServer(work_dir / "server").start()
    app_token = server.store.create_token("app", "demo")
    worker_token = server.store.create_token("worker", "demo")
    out(f"job server listening on {server.url}")

    reports: list[JobReport] = []
    ended = threading.Event()
    waiting = threading.Event()

    shown = {"state": None}

    def on_snapshot(snapshot):
        if snapshot.state == State.WAITING:
            waiting.set()
        if snapshot.job_id and snapshot.state != shown["state"] and snapshot.state in BUSY_STATES:
            out(f"  {time.monotonic() - t_start:7.3f} s  worker: {snapshot.message}")
        shown["state"] = snapshot.state

    def on_job_end(report):
        reports.append(report)
        ended.set()

    client = WorkerClient(server.url, worker_token)
    worker = Worker(client, blender, Folders(work_dir / "worker" / "jobs", work_dir / "worker" / "cache"),
                    Settings(device=device, claim_wait=30.0, max_jobs=1),
                    make_client=lambda: WorkerClient(server.url, worker_token), on_snapshot=on_snapshot,
                    on_job_end=on_job_end)
    thread = worker.start_thread()
    app = AppClient(server.url, app_token)
    try:
        if not waiting.wait(30):
            raise RuntimeError(f"the worker did not reach the server: {worker.snapshot.message}")
        out("worker signed on and waiting in its long poll")
        asset = app.upload_asset(sample_scene())
        job = app.submit({"scene": {"url": asset["url"], "sha256": asset["sha256"], "size": asset["size"]},
                          "render": SAMPLE_SPEC, "tag": "homefarm-demo"})
        out(f"  {time.monotonic() - t_start:7.3f} s  submitted job {job['id']}: {SAMPLE_SPEC['engine']}, {SAMPLE_SPEC['samples']} samples, "
            f"{SAMPLE_SPEC['resolution'][0]}x{SAMPLE_SPEC['resolution'][1]}")
        while not ended.wait(0.2):
            if not thread.is_alive():
                break
        if not reports:
            raise RuntimeError(f"the worker stopped before the job ended: {worker.snapshot.message}")
        report = reports[0]
        final = app.job(job["id"])
        if report.outcome != "done" or final["state"] != "done":
            raise RuntimeError(f"job {job['id']} {final['state']}: {final.get('error') or report.reason}")
        name = final["outputs"][0]["name"]
        image = app.download_output(job["id"], name, work_dir / "result" / name)
        width, height = png_size(image)
        out("")
        out("stage                       seconds")
        out(f"  submitted -> claimed      {final['claimed'] - final['created']:8.3f}")
        for stage in ("download", "render", "upload"):
            out(f"  {stage:<25} {report.stages.get(stage, 0.0):8.3f}")
        out(f"  claimed -> done           {final['finished'] - final['claimed']:8.3f}")
        out(f"  whole demo                {time.monotonic() - t_start:8.3f}")
        out(f"rendered {width}x{height} PNG, {image.stat().st_size} bytes:")
        out(str(image))
        return image
    finally:
        worker.stop()
        thread.join(timeout=10)
        app.close()
        server.stop()
