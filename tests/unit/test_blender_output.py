"""The output parser on real lines from several Blender versions."""


import pytest

from support.harness import TESTS
from worker_app.render.output import ProgressTracker, parse_duration, parse_line

FIXTURES = TESTS / "fixtures"

# Blender 3.4.1 (Debian), captured from the bundled script: tests/fixtures/blender-3.4.1-cycles.log.
CYCLES_34 = ("Fra:1 Mem:12.69M (Peak 12.69M) | Time:00:00.09 | Remaining:00:00.63 | Mem:3.29M, "
             "Peak:3.29M | Showcase, ViewLayer | Sample 1/8")
# The pre-5.0 format as quoted in a public Blender bug report (macOS build).
CYCLES_4X = ("Fra:1 Mem:118.99M (Peak 118.99M) | Time:00:00.17 | Remaining:00:04.48 | Mem:108.22M, "
             "Peak:108.22M | Scene, ViewLayer | Sample 1/32")
# Blender 5.x CLOG lines, in the shape public 5.0.1 logs show them.
CYCLES_50 = "00:01.140  render           | Fra: 1 | Mem: 360M | Sample 1/16"
SAVED_50 = r"00:20.234  render           | Saved: 'C:\out\0000.jpg'"
TIME_50 = "00:20.234  render           | Time: 00:19.28 (Saving: 00:00.14)"
ERROR_50 = "00:00.512  reports          | ERROR Cannot render, no camera"
EEVEE_3X = "Fra:1 Mem:110.33M (Peak 112.04M) | Time:00:00.71 | Rendering 12 / 64 samples"
SYNC_34 = ("Fra:1 Mem:9.83M (Peak 9.85M) | Time:00:00.01 | Mem:0.00M, Peak:0.00M | Sample, ViewLayer "
           "| Synchronizing object | Floor")


@pytest.mark.parametrize("text, frame, sample, samples", [
    (CYCLES_34, 1, 1, 8), (CYCLES_4X, 1, 1, 32), (CYCLES_50, 1, 1, 16), (EEVEE_3X, 1, 12, 64),
])
def test_progress_lines(text, frame, sample, samples):
    line = parse_line(text)
    assert (line.frame, line.sample, line.samples) == (frame, sample, samples)


def test_a_scene_named_sample_is_not_a_sample_count():
    line = parse_line(SYNC_34)
    assert line.frame == 1 and line.sample is None


def test_saved_time_and_errors():
    assert parse_line("Saved: '/tmp/rj/out/frame_0001.png'").saved == "/tmp/rj/out/frame_0001.png"
    assert parse_line(" Time: 00:00.88 (Saving: 00:00.30)").seconds == pytest.approx(0.88)
    assert parse_line(" Time: 01:02:03.50 (Saving: 00:00.30)").seconds == pytest.approx(3723.5)
    assert parse_line("Error: Cannot read file '/x.blend': No such file or directory").error.startswith(
        "Cannot read file")
    assert parse_duration("02:03.45") == pytest.approx(123.45)


def test_blender_5_clog_lines():
    assert parse_line(SAVED_50).saved == "C:\\out\\0000.jpg"
    assert parse_line(TIME_50).seconds == pytest.approx(19.28)
    assert parse_line(ERROR_50).error == "Cannot render, no camera"
    assert parse_line(CYCLES_50).error is None


def test_events_are_json_and_broken_events_are_plain_lines():
    line = parse_line('@homefarm {"event": "frame_done", "frame": 2, "seconds": 0.7}\n')
    assert line.event == {"event": "frame_done", "frame": 2, "seconds": 0.7}
    assert parse_line("@homefarm {not json").event is None
    assert parse_line('@homefarm ["event"]').event is None


def test_tracker_over_a_whole_real_log():
    """Blender 3.4.1 rendering two frames of 8 samples, as captured from the bundled script."""
    ticks = iter(range(1000))
    tracker = ProgressTracker(frame_count=2, clock=lambda: next(ticks))
    percents = []
    for text in (FIXTURES / "blender-3.4.1-cycles.log").read_text().splitlines():
        tracker.feed(parse_line(text))
        percents.append(tracker.percent)
    assert tracker.frames_done == 2
    assert tracker.samples == 8
    assert [p.rsplit("/", 1)[-1] for p in tracker.saved] == ["frame_0001.png", "frame_0002.png"]
    assert percents[-1] == 100.0
    assert 40 <= max(p for p in percents if p < 100) < 100
    assert percents == sorted(percents[:percents.index(50.0)]) + percents[percents.index(50.0):]


@pytest.mark.parametrize("log, frames, engine", [
    ("blender-3.4.1-cycles.log", 2, "CYCLES"),
    ("blender-4.2.0-cycles.log", 2, "CYCLES"),
    ("blender-5.0.1-cycles.log", 2, "CYCLES"),
    ("blender-4.2.0-eevee.log", 1, "BLENDER_EEVEE_NEXT"),
    ("blender-5.0.1-eevee.log", 1, "BLENDER_EEVEE"),
])
def test_real_logs_of_three_major_versions(log, frames, engine):
    tracker = ProgressTracker(frame_count=frames)
    lines = [parse_line(text) for text in (FIXTURES / log).read_text().splitlines()]
    percents = []
    for line in lines:
        tracker.feed(line)
        percents.append(tracker.percent)
    assert percents == sorted(percents), "progress never goes back"
    assert tracker.percent == 100.0 and tracker.frames_done == frames
    assert len(tracker.saved) == frames
    assert [line.saved for line in lines if line.saved] == tracker.saved
    assert not any(line.fatal for line in lines), "an EGL warning is not fatal: these renders succeeded"
    assert not tracker.errors and not tracker.script_errors
    start = next(line.event for line in lines if line.event and line.event["event"] == "job_start")
    assert start["engine"] == engine


def test_fatal_and_out_of_memory_lines():
    assert parse_line("Unable to open a display").fatal
    assert parse_line("Error! Unsupported graphics card or driver.").fatal
    line = parse_line("Fra:1 Mem:10M | Sample 3/64 | CUDA error: Out of memory in cuMemAlloc_v2(...)")
    assert line.out_of_memory and not line.fatal
    assert parse_line("System is out of GPU memory").out_of_memory


def test_tracker_eta():
    now = [0.0]
    tracker = ProgressTracker(frame_count=4, samples=10, clock=lambda: now[0])
    assert tracker.eta_s is None
    now[0] = 10.0
    tracker.feed(parse_line('@homefarm {"event": "frame_done", "frame": 1}'))
    assert tracker.percent == 25.0
    assert tracker.eta_s == pytest.approx(30.0)


# Blender's Windows crash log, as its crash handler writes it (blender/source/creator/creator_signals.cc).
WINDOWS_CRASH_LOG = """# Blender 4.2.3, Commit date: 2024-10-14 14:15, Hash 2b1a7ea53a9c
Exception Record:

ExceptionCode         : EXCEPTION_ACCESS_VIOLATION
Exception Address     : 0x00007FF6A1B2C3D4
Exception Module      : nvoglv64.dll
"""


@pytest.mark.parametrize("exit_code, crashed, platform, reason", [
    # Blender's Windows crash handler ends with TerminateProcess(..., SIGSEGV): exit code 11.
    (11, True, "win32", "Blender crashed (access violation; its crash log is in the job's log tail)"),
    (11, False, "win32", "Blender crashed (a memory access fault; its crash log is in the job's log tail)"),
    # A warm Blender that died reads -9 on Windows too, where the signal module has no SIGKILL.
    (-9, False, "win32", "Blender crashed (signal 9, SIGKILL): it was killed; the system may have run out of memory"),
    (-11, True, "linux", "Blender crashed (signal 11, SIGSEGV): a memory access fault"),
    (-6, True, "darwin", "Blender crashed (signal 6, SIGABRT): it aborted"),
    (0xC0000005, False, "win32", "Blender crashed (access violation, 0xC0000005)"),
    (1, True, "linux", "Blender crashed (exit code 1; its crash log is in the job's log tail)"),
    (11, False, "linux", "Blender exited with code 11"),  # elsewhere a plain exit code stays one
])
def test_a_crash_is_named_a_crash_on_every_os(exit_code, crashed, platform, reason):
    from worker_app.render.blender import explain_failure
    from worker_app.render.output import ProgressTracker
    text = WINDOWS_CRASH_LOG if crashed else ""
    assert explain_failure(exit_code, ProgressTracker(1, 4), crashed=crashed, crash_text=text,
                           platform=platform) == reason
