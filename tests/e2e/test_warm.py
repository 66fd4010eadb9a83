"""The warm Blender with the real Blender: one process, jobs one after another, nothing leaking between them."""

import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from support.pngio import read_png
from worker_app.blender_scripts import contract as K
from worker_app.demo import sample_scene
from worker_app.render.blender import BlenderRun
from worker_app.render.warm import WarmBlender, WarmLimits, warm_run

pytestmark = pytest.mark.blender
SAMPLE_KEY = "sample-scene"  # what the worker sends: the scene's SHA-256
RENDER = {"engine": "CYCLES", "samples": 4, "resolution": [64, 36], "format": "PNG", "device": "CPU"}
A = {}
B = {"objects": {"Hero": {"location": [0, 0, -20]}}, "collections": {"Props": {"visible": False}},
     "texts": {"Title": "warm"}, "materials": {"HeroMat": {"base_color": [0, 1, 0]}}}


def job_of(tmp_path: Path, name: str, overrides: dict, frames=(1,), render=None, images=None,
           keep=False) -> tuple[Path, dict]:
    job_dir = tmp_path / "jobs" / name
    (job_dir / "out").mkdir(parents=True)
    return job_dir, {K.RENDER: {**RENDER, **(render or {})}, K.FRAMES: list(frames), K.OUTPUT_DIR: str(job_dir / "out"),
                     K.OVERRIDES: overrides, K.IMAGES: images or {},
                     K.SCENE_KEY: SAMPLE_KEY if keep else None}


def render(kind, blender, tmp_path, name, overrides, warm=None, keep=False, job_render=None, images=None,
           frames=(1,), scene=None, **limits):
    job_dir, job = job_of(tmp_path, name, overrides, frames, job_render, images, keep)
    args = (blender.path, scene or sample_scene(), job, job_dir)
    kwargs = dict(total_timeout=limits.get("total", 120), silence_timeout=60, user_dir=tmp_path / "user")
    run = warm_run(warm, *args, **kwargs) if kind == "warm" else BlenderRun(*args, **kwargs)
    result = run.run()
    return run, result


def digest(result, index=0) -> str:
    """The SHA-256 of a frame's pixels (the PNG's text chunks carry the render's date and time)."""
    width, height, pixels = read_png(Path(sorted(result.saved)[index]))
    return hashlib.sha256(repr((width, height, pixels)).encode()).hexdigest()


# Each kind of change a template job makes, twice (B, then A' with other values): objects, materials, texts,
# collections, the camera, render settings, images.
KINDS = {
    "object": ({"objects": {"Hero": {"location": [0.6, 0.2, 1.3], "scale": [1.3, 1.3, 1.3]}}},
               {"objects": {"Hero": {"rotation": [0, 40, 10], "visible": False}, "Floor": {"scale": [0.5, 0.5, 1]}}}),
    "material": ({"materials": {"HeroMat": {"base_color": [0, 1, 0], "roughness": 0.9}}},
                 {"materials": {"HeroMat": {"metallic": 0.0}, "RingMat": {"emission_strength": 8.0}}}),
    "text": ({"texts": {"Title": "warm"}}, {"texts": {"Title": "a longer title"}}),
    "collection": ({"collections": {"Props": {"visible": False}}},
                   {"collections": {"Props": {"visible": False}}, "objects": {"Hero": {"visible": False}}}),
    "camera": ({"objects": {"Camera": {"location": [1.5, -7.5, 3.0]}}},
               {"objects": {"Camera": {"rotation": [65, 0, 12]}}}),
    "render": ({"render": {"samples": 8, "resolution": [48, 27]}}, {"render": {"resolution": [72, 40]}}),
    "image": ({"images": "red"}, {"images": "blue"}),
}


def _job_args(tmp_path, change):
    """(overrides, render settings, images) of a change from KINDS."""
    change = dict(change)
    job_render = change.pop("render", None)
    images = None
    if "images" in change:
        from support.pngio import write_png
        colour = {"red": (220, 20, 20), "blue": (20, 20, 220)}[change.pop("images")]
        images = {"Label": str(write_png(tmp_path / f"label-{colour[0]}.png", 16, 16, colour))}
    return change, job_render, images


def test_a_kept_scene_renders_each_kind_of_change_as_a_cold_blender_does(any_blender, tmp_path):
    """Sequences A, B, A', A on the scene the warm Blender keeps, for every kind of change, against cold renders
    of each, pixel for pixel; and a job that fails halfway through its overrides leaves nothing behind."""
    cold_a = digest(render("cold", any_blender, tmp_path, "cold-A", A)[1])
    warm = WarmBlender(tmp_path / "warm")
    try:
        run, result = render("warm", any_blender, tmp_path, "first", A, warm, keep=True)
        assert result.ok and not run.tracker.scene_reused and digest(result) == cold_a
        pid = run.proc.pid
        for kind, changes in KINDS.items():
            for n, change in enumerate(changes):
                overrides, job_render, images = _job_args(tmp_path, change)
                cold = digest(render("cold", any_blender, tmp_path, f"cold-{kind}-{n}", overrides,
                                     job_render=job_render, images=images)[1])
                assert cold != cold_a, f"{kind} {n} changes the picture"
                run, result = render("warm", any_blender, tmp_path, f"{kind}-{n}", overrides, warm, keep=True,
                                     job_render=job_render, images=images)
                assert result.ok, result.reason
                assert run.tracker.scene_reused == (kind != "image" or n == 0), (kind, n)
                assert digest(result) == cold, f"{kind} {n} on the kept scene differs from a cold render"
            run, result = render("warm", any_blender, tmp_path, f"{kind}-A", A, warm, keep=True)
            assert result.ok and digest(result) == cold_a, f"after {kind}, A differs from a cold A"
            assert run.tracker.scene_reused == (kind != "image"), "a replaced image is not put back: reopened"
        # Fails halfway: the Hero moved, then a material that is not there.
        _, failed = render("warm", any_blender, tmp_path, "half", {"objects": {"Hero": {"location": [0, 0, 3]}},
                                                               "materials": {"NoSuchMat": {"metallic": 1.0}}},
                           warm, keep=True)
        assert not failed.ok and "overrides.materials.NoSuchMat" in failed.reason
        run, result = render("warm", any_blender, tmp_path, "after-half", A, warm, keep=True)
        assert result.ok and digest(result) == cold_a and not run.tracker.scene_reused, "reopened after a failure"
        assert run.proc.pid == pid, "all in one process"
    finally:
        warm.close("the test is over")


def test_after_each_job_the_kept_scene_is_as_it_was_loaded(any_blender, tmp_path):
    """Every setting a job touches, compared after each kind of job with the scene as loaded
    (tests/blender/restore_check.py): a JPEG job once left the next PNG without its alpha."""
    from worker_app.render.environment import blender_command

    script = Path(__file__).parent.parent / "blender" / "restore_check.py"
    ran = subprocess.run(blender_command(any_blender.path, script, str(sample_scene()), str(tmp_path / "work")),
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in ran.stdout.splitlines() if line.startswith("@result ")]
    assert lines, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert json.loads(lines[-1][len("@result "):])["differences"] == []


def test_a_job_that_may_not_keep_its_scene_opens_it_each_time(blender, tmp_path):
    warm = WarmBlender(tmp_path / "warm")
    try:
        for n in range(2):
            run, result = render("warm", blender, tmp_path, f"plain-{n}", A, warm, keep=False)
            assert result.ok and not run.tracker.scene_reused
        run, result = render("warm", blender, tmp_path, "other-settings", A, warm, keep=True)
        run, result = render("warm", blender, tmp_path, "other-device", A, warm, keep=True,
                             job_render={"engine": "BLENDER_WORKBENCH"})
        assert result.ok and not run.tracker.scene_reused, "another engine: the file is opened anew"
    finally:
        warm.close("the test is over")


@pytest.fixture(scope="module")
def moving_camera_scene(blender, tmp_path_factory):
    """A small template scene (tests/support/make_template_scene.py) whose camera moves over frames 1 to 3."""
    out = tmp_path_factory.mktemp("scene") / "template.blend"
    made = subprocess.run([blender.path, "-b", "--factory-startup", "--python",
                           str(Path(__file__).parent.parent / "support" / "make_template_scene.py"), "--",
                           str(out), "40", "64", "3"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and out.is_file(), made.stdout[-2000:] + made.stderr[-2000:]
    return out


def test_the_frames_of_an_animation_with_a_moving_camera_match_single_frame_cold_renders(blender, tmp_path,
                                                                                        moving_camera_scene):
    """Cycles' persistent data keeps the scene built between a job's frames, in a cold and in a warm Blender:
    each frame as a cold Blender rendering that frame alone renders it."""
    frames = (1, 2, 3)
    alone = [digest(render("cold", blender, tmp_path, f"frame-{f}", A, frames=(f,), scene=moving_camera_scene)[1])
             for f in frames]
    assert len(set(alone)) == 3, "the camera moves"
    _, whole = render("cold", blender, tmp_path, "animation", A, frames=frames, scene=moving_camera_scene)
    assert whole.ok, whole.reason
    assert [digest(whole, i) for i in range(3)] == alone
    warm = WarmBlender(tmp_path / "warm")
    try:
        for n in range(2):  # the second on the kept scene
            run, again = render("warm", blender, tmp_path, f"warm-animation-{n}", A, warm, keep=True,
                                frames=frames, scene=moving_camera_scene)
            assert again.ok and run.tracker.scene_reused == (n == 1)
            assert [digest(again, i) for i in range(3)] == alone, f"warm run {n}"
    finally:
        warm.close("the test is over")


def test_jobs_in_one_warm_process_match_cold_renders_pixel_for_pixel(any_blender, tmp_path):
    cold = {name: digest(render("cold", any_blender, tmp_path, f"cold-{name}", over)[1])
            for name, over in (("A", A), ("B", B))}
    assert cold["A"] != cold["B"]  # the overrides change the picture
    warm = WarmBlender(tmp_path / "warm")
    try:
        seen = []
        for name, over in (("A", A), ("B", B), ("A", A)):
            run, result = render("warm", any_blender, tmp_path, f"warm-{name}-{len(seen)}", over, warm)
            assert result.ok, result.reason
            seen.append((name, digest(result), run.proc.pid))
        assert [(n, d) for n, d, _ in seen] == [(n, cold[n]) for n, _, _ in seen]
        assert len({pid for _, _, pid in seen}) == 1, "all three in one process"
        assert warm.jobs_done == 3
    finally:
        warm.close("the test is over")


def test_a_failing_job_reports_its_reason_and_the_process_serves_the_next(blender, tmp_path):
    warm = WarmBlender(tmp_path / "warm")
    try:
        _, bad = render("warm", blender, tmp_path, "bad", {"objects": {"Ghost": {"visible": False}}}, warm)
        assert not bad.ok and bad.exit_code == K.SCRIPT_EXIT_CODE
        assert bad.reason.startswith("overrides.objects.Ghost: no object named 'Ghost'")
        pid = warm.proc.pid
        _, good = render("warm", blender, tmp_path, "good", A, warm)
        assert good.ok and warm.proc.pid == pid
    finally:
        warm.close("the test is over")


def test_the_process_is_recycled_after_n_jobs_and_above_the_memory_limit(blender, tmp_path):
    warm = WarmBlender(tmp_path / "warm", WarmLimits(max_jobs=2))
    try:
        pids = []
        for n in range(3):
            run, result = render("warm", blender, tmp_path, f"n{n}", A, warm)
            assert result.ok
            pids.append(run.proc.pid)
        assert pids[0] == pids[1] != pids[2]
        assert not psutil.pid_exists(pids[0])
    finally:
        warm.close("the test is over")
    small = WarmBlender(tmp_path / "warm-small", WarmLimits(max_rss=1))
    run, result = render("warm", blender, tmp_path, "rss", A, small)
    assert result.ok and not small.running, "above the memory limit, it ended after the job"


def test_an_idle_warm_process_ends(blender, tmp_path):
    warm = WarmBlender(tmp_path / "warm", WarmLimits(idle_s=1.0))
    run, result = render("warm", blender, tmp_path, "idle", A, warm)
    assert result.ok and warm.running
    deadline = time.monotonic() + 20
    while warm.proc is not None and time.monotonic() < deadline:  # closed: no process, no pid file
        time.sleep(0.1)
    assert warm.proc is None and run.proc.poll() is not None and not warm.pidfile.exists()


def test_a_stop_mid_render_ends_the_process_at_once(blender, tmp_path):
    """A pause for a game stops a warm job as it stops a cold one: the process goes, its memory with it."""
    warm = WarmBlender(tmp_path / "warm")
    job_dir, job = job_of(tmp_path, "long", A)
    job[K.RENDER] = {**RENDER, "samples": 4000, "resolution": [320, 180]}
    run = warm_run(warm, blender.path, sample_scene(), job, job_dir, total_timeout=300, silence_timeout=60,
                  user_dir=tmp_path / "user")
    got = {}
    thread = threading.Thread(target=lambda: got.update(result=run.run()))
    thread.start()
    deadline = time.monotonic() + 60
    while not (run.proc is not None and (run.tracker.sample or 0) >= 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = run.proc.pid
    stopped = time.monotonic()
    run.stop("the owner started a game")
    thread.join(30)
    assert time.monotonic() - stopped < 5
    assert got["result"].stopped == "the owner started a game" and not warm.running
    assert run.proc.poll() is not None and run.proc.pid == pid


def test_a_crash_is_retried_once_in_a_fresh_process(blender, tmp_path):
    warm = WarmBlender(tmp_path / "warm")
    try:
        run, first = render("warm", blender, tmp_path, "before", A, warm)
        pid = run.proc.pid
        job_dir, job = job_of(tmp_path, "crash", A)
        crashes = []
        real_send = warm.send

        def send_then_crash(job_file):
            real_send(job_file)
            if not crashes:  # the first try dies under the job, as a crash would
                crashes.append(warm.proc.pid)
                warm.proc.kill()

        warm.send = send_then_crash
        run = warm_run(warm, blender.path, sample_scene(), job, job_dir, total_timeout=120, silence_timeout=60,
                      user_dir=tmp_path / "user")
        result = run.run()
        assert result.ok, result.reason
        assert crashes == [pid] and run.proc.pid != pid
    finally:
        warm.close("the test is over")


def test_the_warm_process_outlives_the_thread_of_the_job_that_started_it(blender, tmp_path):
    """Each job runs on a thread of its own, and Linux kills a Blender when the thread that started it ends
    (so that none outlives a dead worker): the warm one is started from a thread that lives on."""
    warm = WarmBlender(tmp_path / "warm")
    try:
        pids = []
        for n in range(2):
            got = {}
            thread = threading.Thread(target=lambda: got.update(zip(("run", "result"),
                                                                    render("warm", blender, tmp_path, f"t{n}", A,
                                                                           warm))))
            thread.start()
            thread.join(120)
            assert got["result"].ok
            pids.append(got["run"].proc.pid)
            time.sleep(0.3)  # the kernel's signal would come at once
            assert warm.running
        assert pids[0] == pids[1]
    finally:
        warm.close("the test is over")


def test_template_jobs_through_a_server_render_on_the_kept_scene_and_say_so(served, blender, tmp_path):
    """The worker names the scene for the warm Blender to keep: the second job on the same .blend renders on it,
    its stats say so, and its picture is the one a job alone would make."""
    from support.running import Running

    running = Running(served, blender, tmp_path, max_jobs=3, warm=True)
    try:
        scene = served.upload_scene()
        paint = {"materials": {"HeroMat": {"base_color": [0.1, 0.3, 0.9]}}}
        jobs = [served.submit({**RENDER, "frames": "1"}, scene=scene, overrides=paint if n == 1 else {})
                for n in range(3)]
        for job in jobs:
            wait_for(lambda: served.app.job(job["id"])["state"] in ("done", "failed"), f"job {job['id']} to end")
        views = [served.app.job(job["id"]) for job in jobs]
        assert [v["state"] for v in views] == ["done"] * 3, [v.get("error") for v in views]
        assert [v["stats"].get("scene_reused") for v in views] == [None, 1, 1]
        first, third = (served.app.download_output(v["id"], v["outputs"][0]["name"], tmp_path / f"{v['id']}.png")
                        for v in (views[0], views[2]))
        assert read_png(first) == read_png(third), "the job after a change renders as the first one"
    finally:
        running.worker.stop()
        running.finish(60)


def test_the_worker_shows_blender_warm_and_a_pause_ends_the_idle_warm_blender(served, blender, tmp_path):
    from support.running import Running
    from worker_app.core import State
    from worker_app.core import events as E
    from worker_app.guard.causes import PauseDecision

    job = served.submit({**RENDER, "frames": "1"})
    running = Running(served, blender, tmp_path, max_jobs=2, warm=True)
    try:
        wait_for(lambda: served.app.job(job["id"])["state"] == "done", "the job done")
        running.wait_for_state(State.WAITING)
        wait_for(lambda: running.worker.snapshot.blender_warm, "the tray to show Blender warm")
        pids = running.worker.own_pids()
        assert pids, "the idle warm Blender is ours: no detector takes it for a game"
        started = time.monotonic()
        running.worker.post(E.PauseChanged(PauseDecision(True, "Paused: eldenring.exe is running")))
        wait_for(lambda: not running.worker.warm.running, "the warm Blender to end")
        assert time.monotonic() - started < 3
        wait_for(lambda: not running.worker.snapshot.blender_warm, "the tray to show it gone")
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in pids)
    finally:
        running.worker.stop()
        running.finish(60)


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
