import pytest

from worker_app import constants as C
from worker_app import protocol as P

SCENE = {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 100}


def spec(**render):
    return {"scene": dict(SCENE), "render": render}


def field_of(data) -> str:
    with pytest.raises(P.ValidationError) as caught:
        P.JobSpec.parse(data)
    return caught.value.field


def test_minimal_job_gets_defaults():
    job = P.JobSpec.parse({"scene": SCENE})
    assert job.render.engine == "CYCLES"
    assert job.render.frame_list() == [1]
    assert job.timeouts.total_s == C.JOB_TIMEOUT_DEFAULT
    assert P.JobSpec.parse(job.to_json()) == job


@pytest.mark.parametrize("text, frames", [
    ("1", [1]), ("1-3", [1, 2, 3]), ("1-10,15", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15]),
    ("5,1,5,2-3", [1, 2, 3, 5]), (" 1 - 2 ", [1, 2]),
])
def test_frames(text, frames):
    assert P.parse_frames(text) == frames


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-999999999", "1,,2", "1-2-3", "-5", "1.5"])
def test_bad_frames_name_the_field(text):
    assert field_of(spec(frames=text)) == "render.frames"


@pytest.mark.parametrize("render, field", [
    ({"engine": "LUXCORE"}, "render.engine"),
    ({"device": "TPU"}, "render.device"),
    ({"samples": 0}, "render.samples"),
    ({"samples": "16"}, "render.samples"),
    ({"samples": True}, "render.samples"),
    ({"resolution": [1920]}, "render.resolution"),
    ({"resolution": [-1, 1080]}, "render.resolution[0]"),
    ({"resolution": [1920, 99999]}, "render.resolution[1]"),
    ({"resolution_percentage": 0}, "render.resolution_percentage"),
    ({"format": "GIF"}, "render.format"),
    ({"camera": 7}, "render.camera"),
    ({"colour": "red"}, "render.colour"),
    ({"format": "FFMPEG", "frames": "1-3,9"}, "render.frames"),
])
def test_bad_render_fields_are_named(render, field):
    assert field_of(spec(**render)) == field


@pytest.mark.parametrize("scene, field", [
    ({**SCENE, "sha256": "xyz"}, "scene.sha256"),
    ({**SCENE, "sha256": "A" * 64}, "scene.sha256"),
    ({**SCENE, "size": 0}, "scene.size"),
    ({**SCENE, "url": "file:///etc/passwd"}, "scene.url"),
    ({**SCENE, "type": "zip"}, "scene.blend"),
    ({**SCENE, "type": "zip", "blend": "x.txt"}, "scene.blend"),
    ({**SCENE, "blend": "x.blend"}, "scene.blend"),
    ({k: v for k, v in SCENE.items() if k != "size"}, "scene.size"),
])
def test_bad_scene_fields_are_named(scene, field):
    assert field_of({"scene": scene}) == field


def test_unknown_and_missing_top_level_fields():
    assert field_of({"render": {}}) == "scene"
    assert field_of({"scene": SCENE, "script": "import os"}) == "script"
    assert field_of({"scene": SCENE, "timeouts": {"total_s": 0}}) == "timeouts.total_s"
    assert field_of({"scene": SCENE, "priority": 10**6}) == "priority"
    assert field_of([1, 2]) == "body"


@pytest.mark.parametrize("name", ["frame_0001.png", "movie_0001-0010.mp4", "a", "X.exr"])
def test_good_output_names(name):
    assert P.check_output_name(name) == name


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "C:x.png", "a/b.png", ".hidden", "CON.png",
                                  "nul", "com1.txt", "x.", "", "a" * 129, "é.png", "a b.png", "x\\y"])
def test_bad_output_names(name):
    with pytest.raises(P.ValidationError):
        P.check_output_name(name)


def test_progress_and_lease_call_messages():
    progress = P.parse_heartbeat({"lease_id": "l1", "progress": {"stage": "rendering", "percent": 42.5,
                                                                 "frame": 3, "eta_s": 10}})
    assert progress.percent == 42.5 and progress.stage == "rendering"
    with pytest.raises(P.ValidationError) as caught:
        P.parse_heartbeat({"lease_id": "l1", "progress": {"percent": 101}})
    assert caught.value.field == "progress.percent"
    with pytest.raises(P.ValidationError) as caught:
        P.FailReport.parse({"lease_id": "l1", "reason": "x", "retryable": "yes"})
    assert caught.value.field == "retryable"
    with pytest.raises(P.ValidationError) as caught:
        P.CompleteReport.parse({"lease_id": "l1", "outputs": ["../../x"]})
    assert caught.value.field == "outputs[0]"


@pytest.mark.parametrize("answer, field", [
    ({"direct": True, "parts": [{"number": "1", "url": "https://s3/x"}]}, "parts[0].number"),
    ({"direct": True, "parts": [{"number": 1}]}, "parts[0].url"),
    ({"direct": True, "parts": [{"number": 1, "url": "https://s3/x", "headers": ["x"]}]}, "parts[0].headers"),
    ({"direct": "yes"}, "direct"),
    ({"direct": True, "part_size": -1}, "part_size"),
    ([], "body"),
])
def test_a_malformed_upload_plan_is_refused_with_the_field(answer, field):
    with pytest.raises(P.ValidationError) as caught:
        P.UploadPlan.parse(answer)
    assert caught.value.field == field


def test_an_upload_plan_round_trips():
    plan = P.UploadPlan(direct=True, upload_id="u", part_size=5 * 1024**2,
                        parts=(P.UploadPart(1, "https://s3.example.com/a?X-Amz-Signature=1",
                                            {"x-amz-checksum-sha256": "q"}),),
                        expires_at=1.0)
    assert P.UploadPlan.parse(plan.to_json()) == plan


def test_a_workers_state_names_its_program_only_when_given_and_checks_it():
    plain = P.WorkerState.parse({"worker_id": "w_1", "paused": True, "pause_kind": "game"})
    assert plain.program is None and "program" not in plain.to_json()
    shared = P.WorkerState.parse({"worker_id": "w_1", "paused": True, "pause_kind": "game", "program": "cs2.exe"})
    assert shared.to_json()["program"] == "cs2.exe"
    for bad in ("", "x" * 256, 7):
        with pytest.raises(P.ValidationError) as refused:
            P.WorkerState.parse({"worker_id": "w_1", "program": bad})
        assert refused.value.field == "program"
