"""Hostile input: each gets a clear reason, writes nothing outside the job's folder, and the worker goes on."""

import io
import json
import socket
import subprocess
import threading
import time
import zipfile

import pytest
import requests

from support.harness import FAST_RENDER
from support.running import Running
from worker_app import constants as C
from worker_app.client import Unreachable, WorkerClient
from worker_app.demo import sample_scene
from worker_app.core import Folders, State, Worker

SCENE = {"url": "/api/worker/v1/assets/" + "e" * 64, "sha256": "e" * 64, "size": 10}


def post_raw(served, body: bytes, content_type="application/json"):
    return requests.post(served.url + "/api/v1/jobs", data=body, timeout=10,
                         headers={"Authorization": f"Bearer {served.app_token}", "Content-Type": content_type})


@pytest.mark.parametrize("spec, status, field", [
    ({"scene": SCENE, "render": {"engine": "OCTANE"}}, 422, "render.engine"),
    ({"scene": SCENE, "render": {"frames": "1-999999999"}}, 422, "render.frames"),
    ({"scene": SCENE, "render": {"resolution": [-1920, 1080]}}, 422, "render.resolution[0]"),
    ({"scene": SCENE, "render": {"resolution": [10**9, 1080]}}, 422, "render.resolution[0]"),
    ({"scene": SCENE, "render": {"samples": 1e400}}, 422, "render.samples"),
    ({"scene": SCENE, "timeouts": {"total_s": float("nan")}}, 422, "timeouts.total_s"),
    ({"scene": SCENE, "post_render_hook": "rm -rf /"}, 422, "post_render_hook"),
    ({"scene": {**SCENE, "url": "file:///etc/shadow"}}, 422, "scene.url"),
    ({"scene": SCENE, "overrides": {"objects": {"Hero": {"location": [0, 0, "__import__('os')"]}}}}, 422,
     "overrides.objects.Hero.location[2]"),
])
def test_hostile_job_fields_get_a_422_that_names_them(served, spec, status, field):
    response = post_raw(served, json.dumps(spec, allow_nan=True).encode())
    assert response.status_code == status
    assert response.json()["field"] == field


@pytest.mark.parametrize("body, status", [
    (b"\xff\xfe not utf-8 \x80", 400),
    (b"[" * 300_000 + b"]" * 300_000, 413),  # over the body limit before it is even parsed
    (b"[" * 50_000, 400),  # deeply nested, under the limit: the parser's recursion limit, not a crash
    (json.dumps({"scene": SCENE, "pad": "x" * 10 * 1024 * 1024}).encode(), 413),
])
def test_malformed_bodies_are_refused_and_the_server_goes_on(served, body, status):
    assert post_raw(served, body).status_code == status
    assert requests.get(served.url + "/api/health", timeout=5).json()["ok"] is True
    assert served.app.jobs() == []


def inject(served, spec: dict) -> str:
    """A job written straight into the database, as a backend with a looser validator might."""
    return str(served.server.store.submit(spec, 0, 1, None))


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.blender
def test_hostile_jobs_fail_with_reasons_and_the_worker_serves_the_next(served, blender, tmp_path):
    evil_zip = make_zip({"scene.blend": sample_scene().read_bytes(), "../../escaped.txt": b"x"})
    path = tmp_path / "evil.zip"
    path.write_bytes(evil_zip)
    evil = served.app.upload_asset(path)
    real = served.upload_scene()
    cases = {
        inject(served, {"scene": {**real, "size": real["size"] + 1000}, "render": FAST_RENDER}): "scene.size:",
        inject(served, {"scene": {**real, "sha256": "0" * 64}, "render": FAST_RENDER}): "scene.sha256:",
        inject(served, {"scene": real, "render": {**FAST_RENDER, "frames": "1-999999999"}}):
            "invalid job: render.frames:",
        inject(served, {"scene": real, "render": {**FAST_RENDER, "engine": "OCTANE"}}):
            "invalid job: render.engine:",
        inject(served, {"scene": {"url": evil["url"], "sha256": evil["sha256"], "size": evil["size"],
                                  "type": "zip", "blend": "scene.blend"}, "render": FAST_RENDER}):
            "scene: zip member '../../escaped.txt' would be written outside the job's folder",
        inject(served, {"scene": {**real, "url": "/api/worker/v1/assets/" + "f" * 64, "sha256": "f" * 64},
                        "render": FAST_RENDER}): "scene.url: the scene could not be downloaded",
    }
    good = served.submit(FAST_RENDER)
    running = Running(served, blender, tmp_path / "w", max_jobs=len(cases) + 1)
    running.finish(120)
    for job_id, reason in cases.items():
        view = served.app.job(job_id)
        assert view["state"] == "failed" and view["error"].startswith(reason), (job_id, view["error"])
    assert served.app.job(good["id"])["state"] == "done"
    assert not list(tmp_path.rglob("escaped.txt"))


AUTORUN = r'''
import bpy
marker = {marker!r}
text = bpy.data.texts.new("autorun.py")
text.write("import pathlib\npathlib.Path(%r).write_text('text block ran')\n" % marker)
text.use_module = True  # "Register": runs when the file loads, if auto-run is allowed
hero = bpy.data.objects["Hero"]
driver = hero.driver_add("location", 2).driver
driver.type = "SCRIPTED"
driver.expression = "__import__('pathlib').Path(%r).write_text('driver ran') or 1" % (marker + ".driver")
bpy.ops.wm.save_as_mainfile(filepath={out!r})
'''


@pytest.mark.blender
def test_a_blend_that_would_run_python_on_load_never_does(served, blender, tmp_path):
    marker = tmp_path / "marker"
    booby_trapped = tmp_path / "trap.blend"
    script = tmp_path / "make_trap.py"
    script.write_text(AUTORUN.format(marker=str(marker), out=str(booby_trapped)))
    subprocess.run([blender.path, "-b", "--factory-startup", "-Y", str(sample_scene()), "--python", str(script)],
                   check=True, capture_output=True, timeout=120)
    asset = served.app.upload_asset(booby_trapped)
    jobs = [served.submit(FAST_RENDER, scene={k: asset[k] for k in ("url", "sha256", "size")}) for _ in range(2)]
    Running(served, blender, tmp_path / "w", max_jobs=2, warm=True).finish(120)
    views = [served.app.job(job["id"]) for job in jobs]
    assert [v["state"] for v in views] == ["done", "done"]
    assert "scene_reused" not in views[1]["stats"], "a scene whose Python was blocked is opened anew for each job"
    assert not marker.exists() and not (tmp_path / "marker.driver").exists()
    # The file really is booby-trapped: with auto-run allowed, Blender runs its code.
    subprocess.run([blender.path, "-b", "--factory-startup", "--enable-autoexec", str(booby_trapped),
                    "--python-expr", "import bpy; bpy.context.scene.frame_set(2)"], capture_output=True, timeout=120)
    assert marker.exists() or (tmp_path / "marker.driver").exists()


class RudeServer:
    """A TCP server on loopback that answers garbage, trickles bytes, or never answers."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.recv(65536)
            if self.mode == "garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{{{not json!")
            elif self.mode == "binary":
                conn.sendall(bytes(range(256)) * 4)
            elif self.mode == "trickle":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                    if self.stop.wait(0.5):
                        return
                    conn.sendall(bytes([byte]))
            elif self.mode == "silent":
                self.stop.wait(120)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.mark.parametrize("mode", ["garbage", "binary", "trickle", "silent"])
def test_a_rude_server_gives_a_clear_error_in_bounded_time(mode, monkeypatch):
    monkeypatch.setattr(C, "READ_TIMEOUT", 2.0)
    monkeypatch.setattr(C, "REQUEST_DEADLINE", 3.0)
    server = RudeServer(mode)
    try:
        client = WorkerClient(server.url, "hfw_token")
        started = time.monotonic()
        with pytest.raises(Unreachable):
            client.ping()
        assert time.monotonic() - started < 8
    finally:
        server.close()


def test_the_worker_keeps_going_against_a_rude_server(blender, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "READ_TIMEOUT", 2.0)
    monkeypatch.setattr(C, "REQUEST_DEADLINE", 3.0)
    server = RudeServer("trickle")
    worker = Worker(WorkerClient(server.url, "hfw_token"), blender, Folders(tmp_path / "jobs", tmp_path / "cache"))
    thread = worker.start_thread()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and worker.snapshot.state != State.BACKING_OFF:
            time.sleep(0.1)
        assert worker.snapshot.state == State.BACKING_OFF
        assert "retrying in" in worker.snapshot.message
        assert thread.is_alive()
    finally:
        worker.stop()
        server.close()
        thread.join(10)
    assert not thread.is_alive()
