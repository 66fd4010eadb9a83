"""An outage costs no work and no attempt: the server is killed mid-render and none is alive for three lease
lengths; the PC renders on and keeps its frames; the server that comes back extends the leases by the time none
was alive, so the worker's next heartbeat finds its lease standing, every frame is uploaded and the job ends
done on its first attempt. Behind nginx, as behind a CDN; on both kinds of database."""

import os
import time

import pytest

from support.engines import Nginx, free_port
from support.harness import FAST_RENDER, Remote, posix_only, wait_until
from support.running import Running, job_rows, kill_mid_render, stop_everything
from support.server_process import start_server

LEASE_TTL = 4.0
FRAMES = {**FAST_RENDER, "samples": 48, "resolution": [96, 54], "frames": "1-6"}


@posix_only("SIGKILL")
@pytest.mark.parametrize("engine_kind", ["postgresql", "mariadb"])
def test_three_lease_lengths_without_a_server_cost_no_frame_and_no_attempt(request, blender, tmp_path, engine_kind):
    db_url = request.getfixturevalue(f"{engine_kind}_engine").new_database()
    port = free_port()

    def instance(name: str):
        env = {**os.environ, "HOMEFARM_HOME": str(tmp_path / name)}
        return start_server(tmp_path / name, env=env, port=port,
                            extra_args=["--db", db_url, "--lease-ttl", str(LEASE_TTL)])

    first = instance("one")
    proxy = Nginx.start(f"127.0.0.1:{port}")
    remote = Remote(proxy.url, first.app_token, first.worker_token)
    job = remote.submit(FRAMES, scene=remote.upload_scene())
    running = Running(remote, blender, tmp_path, max_jobs=1)
    second = None
    try:
        gone = kill_mid_render(running, first)
        time.sleep(max(0.0, 3 * LEASE_TTL - (time.monotonic() - gone)))
        second = instance("two")
        wait_until(lambda: remote.app.job(job["id"])["state"] in ("done", "failed"), timeout=180,
                   what="the job to end")
        running.finish(60)
        view = remote.app.job(job["id"])
        assert view["state"] == "done" and view["attempts"] == 1, view
        assert [o["name"] for o in view["outputs"]] == [f"frame_{n:04d}.png" for n in range(1, 7)]
    finally:
        stop_everything(running, (first, second), proxy)
    assert [report.outcome.value for report in running.reports] == ["done"]
    assert job_rows(db_url) == [("done", 1)], "done once, on its first attempt"
