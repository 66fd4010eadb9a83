"""The worker core alone, in seconds: the real loop, job run, heartbeat, pause policies and outbox, driven
through fakes of the job server's client and of a Blender run (tests/core_fakes.py)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from support.harness import ROOT
from support.core_fakes import BLEND, BLENDER, FakeClient, FakeGuard, FakeRun, Unreachable503, lease
from worker_app import protocol as P
from worker_app.client import LeaseLost, Unreachable
from worker_app.core import Folders, LinkProblem, Outcome, Settings, State, Worker
from worker_app.render.blender import RenderResult

class Core:
    """A Worker on its thread, with every snapshot and report it produced, and waits on them."""

    def __init__(self, tmp_path: Path, client: FakeClient, guard=None, policy="requeue", max_jobs=None,
                 share_program_names=False, auto_install="no"):
        self.client = client
        self.snapshots, self.reports = [], []
        self.changed = threading.Condition()
        self.worker = Worker(client, BLENDER, Folders(tmp_path / "data" / "jobs", tmp_path / "cache"),
                             Settings(claim_wait=5, pause_policy=policy, max_jobs=max_jobs,
                                      share_program_names=share_program_names, auto_install=auto_install),
                             guard=guard,
                             on_snapshot=self._snap, on_job_end=self._report, make_run=FakeRun)
        self.thread = self.worker.start_thread()

    def _snap(self, snapshot):
        with self.changed:
            self.snapshots.append(snapshot)
            self.changed.notify_all()

    def _report(self, report):
        with self.changed:
            self.reports.append(report)
            self.changed.notify_all()

    def wait(self, condition, timeout: float = 10.0, what: str = "the worker"):
        with self.changed:
            assert self.changed.wait_for(condition, timeout), f"timed out waiting for {what}; " \
                f"last snapshot: {self.snapshots[-1] if self.snapshots else None}"

    def report(self, timeout: float = 10.0):
        self.wait(lambda: self.reports, timeout, "a job to end")
        return self.reports[0]

    def stop(self):
        self.worker.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker loop did not end"
        assert self.worker.refused == [], "every state was entered by a move the table allows"


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(FakeRun, "runs", [])
    monkeypatch.setattr(FakeRun, "frame_s", 0.05)
    monkeypatch.setattr(FakeRun, "result", None)
    monkeypatch.setattr("worker_app.core.loop.backoff_delay", lambda attempt, **kw: 0.05)
    monkeypatch.setattr("worker_app.core.outbox.backoff_delay", lambda attempt, **kw: 0.05)


@pytest.fixture
def client():
    return FakeClient()


@pytest.fixture
def core(tmp_path, client):
    running = []

    def start(**kwargs):
        running.append(Core(tmp_path, client, **kwargs))
        return running[-1]
    yield start
    for c in running:
        c.stop()


def test_a_job_is_rendered_uploaded_and_completed(core, client):
    client.leases.put(lease("1"))
    c = core(max_jobs=1)
    report = c.report()
    assert report.outcome == Outcome.DONE and [p.name for p in report.outputs] == \
        ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    complete = client.reports("complete")[0]
    assert complete.outputs == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    states = [s.state for s in c.snapshots]
    for state in (State.CONNECTING, State.WAITING, State.DOWNLOADING, State.RENDERING, State.UPLOADING):
        assert state in states
    c.thread.join(10)
    assert c.snapshots[-1].state == State.STOPPED and c.snapshots[-1].jobs_done == 1


def test_the_state_has_one_writer(core, client):
    """Snapshots are made on the loop's thread only, whatever thread the news came from."""
    threads = set()
    client.leases.put(lease("1"))
    c = core(max_jobs=1)
    c.worker.on_snapshot = lambda s, seen=c._snap: (threads.add(threading.current_thread().name), seen(s))
    c.report()
    assert threads == {"homefarm-worker"}


def test_a_cancel_seen_by_an_upload_stops_blender_at_once_and_logs_once(core, client, caplog, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.3)
    client.upload_error = lambda name: LeaseLost("PUT: 409 job 1 was canceled", 409, {"error": "canceled"})
    client.leases.put(lease("1", frames="1-20"))
    with caplog.at_level(logging.WARNING):
        c = core(max_jobs=1)
        report = c.report()
    assert report.outcome == Outcome.CANCELED
    run = FakeRun.runs[0]
    assert len(run.saved) <= 2, f"Blender went on rendering {len(run.saved)} frames after the cancel"
    assert not client.reports("complete") and not client.reports("fail") and not client.reports("release")
    about_job = [r.getMessage() for r in caplog.records if "job 1" in r.getMessage()]
    assert len(about_job) <= 2, about_job
    assert not any("handed out again" in m for m in about_job), about_job


def test_a_cancel_seen_by_the_heartbeat_stops_blender(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.3)
    client.leases.put(lease("1", frames="1-20"))
    c = core(max_jobs=1)
    c.wait(lambda: FakeRun.runs and FakeRun.runs[0].started.is_set(), what="Blender to start")
    client.heartbeat_reply = P.HeartbeatReply(cancel=True)
    report = c.report()
    assert report.outcome == Outcome.CANCELED and FakeRun.runs[0].stop_reasons
    assert len(FakeRun.runs[0].saved) < 20


def test_a_lease_lost_to_another_worker_is_dropped_without_a_release(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.3)
    client.upload_error = lambda name: LeaseLost("PUT: 409 lease l1 is not the current lease", 409,
                                                 {"error": "lease_lost"})
    client.leases.put(lease("1", frames="1-20"))
    report = core(max_jobs=1).report()
    assert report.outcome == Outcome.LOST
    assert not client.reports("release") and not client.reports("complete")


def test_the_server_coming_back_during_a_render_leaves_no_stale_backing_off(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.2)
    failures = iter(range(3))
    client.upload_error = lambda name: Unreachable("PUT: connection refused") if next(failures, None) is not None \
        else None
    client.leases.put(lease("1", frames="1-6"))
    c = core(max_jobs=1)
    report = c.report()
    assert report.outcome == Outcome.DONE
    during = [s for s in c.snapshots if s.job is not None]
    assert any(not s.link.online for s in during), "the outbox never told the loop it was offline"
    assert all(s.state != State.BACKING_OFF for s in during), "a job's state was hidden behind backing off"
    assert c.snapshots[-1].link.online


def test_an_outage_keeps_its_start_through_every_retry(core, client):
    client.claim_error = Unreachable503
    c = core()
    c.wait(lambda: len([call for call in client.calls if call[0] == "claim"]) >= 4, what="four claims")
    down = [s.link for s in c.snapshots if not s.link.online]
    assert {link.problem for link in down} == {LinkProblem.UNREACHABLE}
    assert len({link.since for link in down}) == 1, "each retry restarted the outage"
    assert State.WAITING in [s.state for s in c.snapshots[c.snapshots.index(next(
        s for s in c.snapshots if not s.link.online)):]], "the test needs waiting states between the retries"
    client.claim_error = None
    c.wait(lambda: c.snapshots[-1].link.online and c.snapshots[-1].state == State.WAITING, what="online again")


def test_a_zip_sent_as_a_blend_fails_at_once_and_is_not_retried(core, client):
    zipped = b"PK\x03\x04" + b"\0" * 100
    client.scene = zipped
    client.leases.put(lease("1", scene_bytes=zipped))
    report = core(max_jobs=1).report()
    fail = client.reports("fail")[0]
    assert report.outcome == Outcome.FAILED and fail.retryable is False
    assert fail.reason == "scene: the file is a zip archive; send a .blend saved by Blender"
    assert not FakeRun.runs, "Blender was started for a file that is no .blend"


def test_a_file_blender_cannot_read_is_not_retried_and_names_no_folder_of_this_pc(core, client, tmp_path,
                                                                                monkeypatch):
    job_dir = tmp_path / "data" / "jobs" / "1"
    home = Path.home()
    monkeypatch.setattr(FakeRun, "result", RenderResult(
        False, 1, reason=f"Blender exited with code 1 reading {job_dir}/scene.blend",
        log_tail=f"Read blend: {job_dir}/scene.blend\nError: File format is not supported in file "
                 f"'{job_dir}/scene.blend'\nsaved crash report in {home}/blender.crash.txt\n"
                 "C:\\Users\\Kim\\AppData\\Local\\Temp\\blender.crash.txt"))
    client.leases.put(lease("1"))
    report = core(max_jobs=1).report()
    fail = client.reports("fail")[0]
    assert report.outcome == Outcome.FAILED and fail.retryable is False
    assert fail.reason == "scene: Blender could not read the file (File format is not supported)"
    for text in (fail.reason, fail.log_tail, report.reason):
        assert str(tmp_path) not in text and "Kim" not in text and str(home) + "/" not in text, text
    assert "Read blend: scene\n" in fail.log_tail and "in file 'scene'" in fail.log_tail
    assert "~/blender.crash.txt" in fail.log_tail
    assert "~\\AppData\\Local\\Temp" in fail.log_tail


def test_a_damaged_file_says_so_in_the_reason_not_only_in_the_log(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "result", RenderResult(
        False, 11, reason="Blender crashed (exit code 11)",
        log_tail="Read blend: scene.blend\nMissing DNA block\nError: Not freed memory blocks: 3"))
    client.leases.put(lease("1"))
    core(max_jobs=1).report()
    fail = client.reports("fail")[0]
    assert fail.reason == "scene: Blender could not read the file (Missing DNA block)" and fail.retryable is False


def test_a_file_saved_by_a_newer_blender_fails_at_once_for_a_worker_that_has_it(core, client):
    newer = b"BLENDER-v405" + b"\0" * 500
    client.scene = newer
    client.leases.put(lease("1", scene_bytes=newer))
    assert core(max_jobs=1).report().outcome == Outcome.FAILED
    fail = client.reports("fail")[0]
    assert fail.reason == "scene: saved by Blender 4.5; this PC has 3.4.1"
    assert fail.retryable is False and fail.needs_blender == "4.5" and not FakeRun.runs


def test_asked_the_job_waits_on_the_server_the_owner_is_asked_once_and_a_blender_added_is_told_the_server(
        core, client):
    """``blender.auto_install = "ask"`` (the tray): the job goes back to the server, which keeps it for this
    worker (``installing_blender``); the tray's snapshot asks for the series, once; a Blender added on the owner's
    word ends the question and the worker says hello again with the id it has."""
    from worker_app.core.events import BlenderAdded
    from worker_app.render.discovery import BlenderInstall
    newer = b"BLENDER-v405" + b"\0" * 500
    client.scene = newer
    client.leases.put(lease("1", scene_bytes=newer))
    client.leases.put(lease("2", scene_bytes=newer))
    c = core(max_jobs=2, auto_install="ask")
    c.wait(lambda: len(c.reports) == 2, what="two jobs")
    fails = client.reports("fail")
    assert [f.installing_blender for f in fails] == [True, True] and fails[0].needs_blender == "4.5"
    assert fails[0].reason == "scene: saved by Blender 4.5; this PC has 3.4.1; its owner is asked to install it"
    assert c.snapshots[-1].blenders_wanted == ("4.5",), "asked once for the series"
    assert not FakeRun.runs
    hellos = [call for call in client.calls if call[0] == "hello"]
    c2 = core(auto_install="ask")
    c2.wait(lambda: any(s.state == State.WAITING for s in c2.snapshots), what="a claim")
    c2.worker.post(BlenderAdded(BlenderInstall("/opt/blender-4.5/blender", "4.5.3")))
    deadline = time.monotonic() + 10
    while len([call for call in client.calls if call[0] == "hello"]) < len(hellos) + 2:  # c2's hello, then its hello again
        assert time.monotonic() < deadline, "no hello again after a Blender was added"
        time.sleep(0.02)
    again = [call for call in client.calls if call[0] == "hello"][-1][1]
    assert again.worker_id == "worker-1" and {"version": "4.5.3", "path": "/opt/blender-4.5/blender"} in again.blender


def test_strict_fails_a_job_whose_scene_lacks_files_and_warnings_otherwise(core, client, monkeypatch):
    original = FakeRun.run

    def lacking(self):
        self.tracker.missing.append({"kind": "image", "path": "//tex/wood.png", "name": "wood"})
        self.tracker.redirected.append({"what": "File Output node 'Out'", "from": "/abs/out/", "to": "out/"})
        return original(self)
    monkeypatch.setattr(FakeRun, "run", lacking)
    client.leases.put(lease("1", frames="1"))
    client.leases.put(lease("2", frames="1", strict=True))
    c = core(max_jobs=2)
    c.wait(lambda: len(c.reports) == 2, what="two jobs")
    done = client.reports("complete")[0]
    assert done.warnings[0] == {"kind": "image", "path": "//tex/wood.png", "name": "wood"}
    assert done.warnings[1]["kind"] == "redirected" and done.warnings[1]["path"] == "/abs/out/"
    fail = client.reports("fail")[0]
    assert fail.reason == "strict: the scene lacks 1 file(s): image '//tex/wood.png'" and not fail.retryable


def test_a_crash_on_a_readable_file_stays_retryable(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "result", RenderResult(False, -11, reason="Blender crashed (signal 11, SIGSEGV)",
                                                        log_tail="Writing: /tmp/blender.crash.txt"))
    client.leases.put(lease("1"))
    core(max_jobs=1).report()
    assert client.reports("fail")[0].retryable is True


def test_requeue_gives_the_job_back_and_claims_nothing_while_paused(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.3)
    guard = FakeGuard()
    client.leases.put(lease("1", frames="1-20"))
    c = core(guard=guard, policy="requeue")
    c.wait(lambda: FakeRun.runs and FakeRun.runs[0].started.is_set(), what="Blender to start")
    guard.set("game")
    c.wait(lambda: c.reports, what="the job to be given back")
    assert c.reports[0].outcome == Outcome.RELEASED
    assert client.reports("release")[0].reason == "Paused: game reason"
    c.wait(lambda: c.snapshots[-1].state == State.PAUSED and c.snapshots[-1].pause.kind == "game", what="paused")
    claims = len([call for call in client.calls if call[0] == "claim"])
    client.leases.put(lease("2"))
    assert not client.calls.wait_for(lambda calls: len([x for x in calls if x[0] == "claim"]) > claims, 0.5), \
        "claimed while paused"
    guard.set(None)
    c.wait(lambda: len(c.reports) == 2, what="job 2 after the pause")
    assert c.reports[1].outcome == Outcome.DONE


@pytest.mark.parametrize("share", [False, True])
def test_the_server_hears_the_kind_of_pause_and_the_programs_name_only_if_shared(core, client, share):
    guard = FakeGuard()
    c = core(guard=guard, share_program_names=share)
    c.wait(lambda: ("claim",) in client.calls, what="the first claim")
    guard.set("game", program="eldenring.exe")
    assert client.calls.wait_for(lambda calls: any(call[0] == "state" and call[2].paused for call in calls), 5), \
        "the pause was told to the server"
    told = next(call[2] for call in client.calls if call[0] == "state" and call[2].paused)
    assert told.pause_kind == "game"
    assert told.program == ("eldenring.exe" if share else None)
    assert ("program" in told.to_json()) is share


def test_suspend_freezes_blender_and_thaws_it(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.1)
    guard = FakeGuard()
    client.leases.put(lease("1", frames="1-6"))
    c = core(guard=guard, policy="suspend", max_jobs=1)
    c.wait(lambda: FakeRun.runs and FakeRun.runs[0].saved, what="a first frame")
    guard.set("game")
    c.wait(lambda: c.snapshots[-1].job and c.snapshots[-1].job.suspended, what="Blender suspended")
    assert FakeRun.runs[0].suspended
    guard.set(None)
    report = c.report()
    assert report.outcome == Outcome.DONE and not FakeRun.runs[0].stop_reasons


def test_finish_lets_the_running_job_end_then_waits(core, client, monkeypatch):
    monkeypatch.setattr(FakeRun, "frame_s", 0.1)
    guard = FakeGuard()
    client.leases.put(lease("1", frames="1-4"))
    c = core(guard=guard, policy="finish")
    c.wait(lambda: FakeRun.runs and FakeRun.runs[0].started.is_set(), what="Blender to start")
    guard.set("game")
    c.wait(lambda: c.reports, what="the job to finish")
    assert c.reports[0].outcome == Outcome.DONE
    c.wait(lambda: c.snapshots[-1].state == State.PAUSED, what="paused")


def test_stopping_while_waiting_ends_the_long_poll(core, client):
    c = core()
    c.wait(lambda: c.snapshots and c.snapshots[-1].state == State.WAITING and ("claim",) in client.calls)
    c.worker.stop()
    c.thread.join(3)
    assert not c.thread.is_alive() and ("cancel_claim",) in client.calls


def test_a_job_canceled_during_upload_of_kept_results_is_not_released(core, client):
    """The outbox refuses new rows for a lease the server said is over."""
    client.leases.put(lease("1", frames="1"))
    c = core(max_jobs=1)
    c.report()
    outbox = c.worker.outbox
    outbox.forget("1", "lease-1")
    outbox.add_report("1", "lease-1", P.ReleaseReport("late"))
    assert outbox.pending("1") == 0


def test_paths_in_reasons_name_the_founders_files_as_sent(tmp_path):
    from worker_app.core.redact import Redactor
    job = tmp_path / "data" / "jobs" / "23"
    redact = Redactor(job, tmp_path / "data", home=tmp_path)
    assert redact(f"cannot read {job}/scene.blend") == "cannot read scene"
    assert redact(f"missing {job}/scene/textures/wood.png") == "missing textures/wood.png"
    assert redact(f"wrote {job}/out/x.png; cache in {tmp_path}/data/cache") == "wrote <job>/out/x.png; cache in " \
        "<homefarm>/cache"
    assert redact("C:\\Users\\Kim\\AppData\\Local\\Temp\\x and /home/kim/x") == "~\\AppData\\Local\\Temp\\x and ~/x"


def test_blend_headers_are_read_before_blender_starts(tmp_path):
    import gzip
    from worker_app.render.blendfile import NotABlendFile, read_header
    plain = tmp_path / "a.blend"
    plain.write_bytes(BLEND)
    assert read_header(plain).version == (3, 4)
    packed = tmp_path / "b.blend"
    packed.write_bytes(gzip.compress(b"BLENDER-v279" + b"\0" * 64))
    assert read_header(packed).version == (2, 79) and read_header(packed).compression == "gzip"
    new = tmp_path / "c.blend"
    new.write_bytes(b"BLENDER17-01v0502" + b"\0" * 64)
    assert read_header(new).version == (5, 2)
    import zstandard
    zstd = tmp_path / "d.blend"
    zstd.write_bytes(zstandard.ZstdCompressor().compress(b"BLENDER-v405" + b"\0" * 64))
    assert read_header(zstd).compression == "zstd" and read_header(zstd).version == (4, 5)
    broken = tmp_path / "f.blend"
    broken.write_bytes(b"\x28\xb5\x2f\xfd" + b"\xff" * 64)
    with pytest.raises(NotABlendFile, match="damaged Zstandard"):
        read_header(broken)
    junk = tmp_path / "e.blend"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(NotABlendFile, match="not a Blender file"):
        read_header(junk)


def test_a_file_held_open_fails_the_job_retryable_and_the_worker_goes_on(core, client, monkeypatch):
    """Windows keeps a file another program holds open: the OSError fails that attempt, not the worker."""
    original = FakeRun.run

    def locked(self):
        if len(FakeRun.runs) == 1:
            raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process")
        return original(self)
    monkeypatch.setattr(FakeRun, "run", locked)
    client.leases.put(lease("1", frames="1"))
    client.leases.put(lease("2", frames="1"))
    c = core(max_jobs=2)
    c.wait(lambda: len(c.reports) == 2, what="two jobs")
    fail = client.reports("fail")[0]
    assert fail.retryable is True and fail.reason.startswith("this PC could not read or write the job's files")
    assert [r.outcome for r in c.reports] == [Outcome.FAILED, Outcome.DONE]


def test_an_unexpected_error_backs_off_instead_of_ending_the_loop(core, client):
    errors = iter([RuntimeError("a bug")])
    client.claim_error = lambda: next(errors, None)
    client.leases.put(lease("1", frames="1"))
    c = core(max_jobs=1)
    assert c.report().outcome == Outcome.DONE
    assert State.BACKING_OFF in [s.state for s in c.snapshots]


def test_new_settings_reach_the_loop_as_an_event_and_apply_from_the_next_job(core, client):
    from dataclasses import replace
    client.leases.put(lease("1", frames="1", render={"engine": "CYCLES", "samples": 2, "resolution": [8, 8],
                                                      "frames": "1", "format": "PNG", "device": "AUTO"}))
    c = core(max_jobs=2)
    c.wait(lambda: c.reports, what="job 1")
    c.worker.reconfigure(replace(c.worker.settings, device="GPU", claim_wait=60))  # from this thread
    client.leases.put(lease("2", frames="1", render={"engine": "CYCLES", "samples": 2, "resolution": [8, 8],
                                                      "frames": "1", "format": "PNG", "device": "AUTO"}))
    c.wait(lambda: len(c.reports) == 2, what="job 2")
    assert [run.job["render"]["device"] for run in FakeRun.runs] == ["AUTO", "GPU"]
    assert c.worker.settings.claim_wait == 30, "the server's longest claim still bounds it"


def test_a_proxy_cutting_the_long_poll_shortens_the_wait_instead_of_backing_off(core, client):
    from worker_app.client import GatewayCut
    cuts = iter([GatewayCut("POST /jobs/claim: 504 Gateway Time-out", 504, 20.0)])
    client.claim_error = lambda: next(cuts, None)
    client.leases.put(lease("1", frames="1"))
    c = core(max_jobs=1)
    assert c.report().outcome == Outcome.DONE
    assert State.BACKING_OFF not in [s.state for s in c.snapshots]
    assert all(s.link.online for s in c.snapshots), "a proxy's timeout is not an outage"
    assert c.worker.settings.claim_wait == 5, "already shorter than 75 % of the cut: kept"


def test_an_idle_warm_blender_holding_too_much_gpu_memory_ends(tmp_path):
    from worker_app.core import events as E
    from worker_app.system.gpu import GpuProcess, GpuSample, GpuSnapshot

    class Warm:
        running = True
        closed: list = []
        pidfile = tmp_path / "warm.pid"

        def pids(self):
            return {4242} if self.running else set()

        def close(self, reason):
            self.closed.append(reason)
            self.running = False

    core = Core(tmp_path, FakeClient())
    try:
        warm = core.worker.warm = Warm()
        gib = 1024**3

        def sample(held):
            return GpuSnapshot(time=1.0, gpus=(GpuSample(0, "RTX 4070", vram_used=held, vram_total=12 * gib,
                                                         processes=(GpuProcess(4242, "blender", "compute", held),
                                                                    GpuProcess(7, "game.exe", "graphics", 11 * gib))),))

        core.worker.post(E.GpuSampled(sample(2 * gib)))  # a game's memory is not the warm Blender's
        time.sleep(0.3)
        assert warm.closed == []
        core.worker.post(E.GpuSampled(sample(7 * gib)))
        deadline = time.monotonic() + 5
        while not warm.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert warm.closed == ["it holds 7168 MiB of RTX 4070's memory"]
    finally:
        core.worker.stop()
        core.thread.join(10)


def test_a_result_added_just_after_the_sender_found_the_outbox_empty_goes_out_at_once(tmp_path, monkeypatch):
    # The race, made to happen every time: right after the sender's look finds no row, another thread adds one.
    # A look and a wait under two separate locks let that row sit out the sender's 5 s wait.
    from worker_app.core.outbox import Outbox, OutboxSender
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    real_first, raced = Outbox._first, []

    def first_then_race(self):
        row = real_first(self)
        if row is None and not raced:
            adder = threading.Thread(target=outbox.add_report,
                                     args=("7", "lease-7", P.ReleaseReport(reason="paused")))
            raced.append(adder)
            adder.start()
            time.sleep(0.2)  # the adder has run, or waits for the lock, before the sender may wait
        return row

    monkeypatch.setattr(Outbox, "_first", first_then_race)
    sent = []

    class Client:
        def report(self, job_id, lease_id, report):
            sent.append(time.monotonic())

    sender = OutboxSender(outbox, Client())
    started = time.monotonic()
    sender.start()
    try:
        deadline = time.monotonic() + 8
        while not sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert raced and sent, "the row was never sent"
        assert sent[0] - started < 1.0, f"the result waited {sent[0] - started:.1f} s in the outbox"
    finally:
        sender.stop()
        outbox.close()


def test_a_move_the_table_does_not_allow_is_refused_and_the_rest_still_shows(caplog):
    from worker_app.core.state import TRANSITIONS, allowed
    worker = Worker(FakeClient(), BLENDER, Folders(Path("/nonexistent/jobs"), Path("/nonexistent/cache")))
    assert worker.enter(State.WAITING, message="waiting")
    assert worker.enter(State.STOPPING, message="stopping")
    assert not worker.enter(State.WAITING, message="claimed anyway", job=None)
    assert worker.snapshot.state == State.STOPPING and worker.snapshot.message == "claimed anyway"
    assert worker.refused == [(State.STOPPING, State.WAITING)]
    assert "refused a move of the worker from stopping to waiting" in caplog.text
    assert set(TRANSITIONS) == set(State), "every state has its row"
    assert not allowed(State.WAITING, State.RENDERING), "a job is downloaded before it renders"
    with pytest.raises(AssertionError, match="enter"):
        worker.show(state=State.WAITING)


def test_the_architecture_doc_draws_the_transition_table():
    from worker_app.core.state import diagram
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{diagram()}\n```" in doc, "regenerate with: python -c 'from worker_app.core.state " \
                                                  "import diagram; print(diagram())'"


def test_a_job_run_sees_its_context_and_never_the_worker():
    # The job's module names no Worker and reaches for none of its attributes: what it uses is in JobContext.
    import ast
    import dataclasses
    from worker_app.core import job as job_module
    source = Path(job_module.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "Worker" not in names and "worker" not in names
    assert "worker_app.core.loop" not in source
    fields = {f.name for f in dataclasses.fields(job_module.JobContext)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "ctx"}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
             and isinstance(node.value, ast.Attribute) and node.value.attr == "ctx"}
    assert used <= fields and used, sorted(used - fields)


def test_a_sender_stopped_just_before_it_waits_ends_at_once(tmp_path, monkeypatch):
    # The stop, made to land every time between the sender's look at its flag and its wait for a new row.
    from worker_app.core.outbox import Outbox, OutboxSender
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    sender = OutboxSender(outbox, FakeClient())
    real_first, stopper = Outbox._first, []

    def first_then_stop(self):
        row = real_first(self)
        if not stopper:
            stopper.append(threading.Thread(target=sender.stop))
            stopper[0].start()
            time.sleep(0.2)  # the stop has run, or waits for the lock, before the sender may wait
        return row

    monkeypatch.setattr(Outbox, "_first", first_then_stop)
    started = time.monotonic()
    sender.start()
    sender._thread.join(8)
    took = time.monotonic() - started
    stopper[0].join(5)
    outbox.close()
    assert took < 1.0, f"the sender took {took:.1f} s to stop"


def test_a_server_that_forgot_the_worker_is_signed_on_to_again(core, client):
    # A new database behind the same address: the claim is refused naming the field worker_id (422), and the
    # worker signs on again instead of backing off for good. The field comes from the error's body, not its words.
    from worker_app.client import Rejected
    forgot = [Rejected("POST /api/worker/v1/claim: 422 unknown worker; POST /hello first", 422,
                       {"error": "invalid", "message": "unknown worker; POST /hello first", "field": "worker_id"})]
    client.claim_error = lambda: forgot.pop() if forgot else None
    client.leases.put(lease("1", frames="1"))
    c = core(max_jobs=1)
    assert c.report().outcome == Outcome.DONE
    assert [call[0] for call in client.calls].count("hello") == 2
