"""Scenes as founders send them, with the real Blender: missing files told (or failing a strict job), files
from a newer Blender or no Blender at all failed at once, sequencer-only scenes rendered, denoising."""

import subprocess
from pathlib import Path

import pytest

from support.harness import FAST_RENDER, TESTS
from support.pngio import mean_rgb, read_png
from support.running import Running
from worker_app.demo import sample_scene

pytestmark = pytest.mark.blender

MAKER = TESTS / "blender" / "make_lacking.py"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")  # Debian's Blender depends on fonts-dejavu


@pytest.fixture(scope="session")
def lacking(blender, tmp_path_factory):
    out = tmp_path_factory.mktemp("lacking")
    subprocess.run([blender.path, "-b", "--factory-startup", "--python", str(MAKER), "--", str(out), str(FONT)],
                   check=True, capture_output=True, timeout=300)
    mark_ocean_baked(out / "missing_ocean_bake.blend")
    return out


def mark_ocean_baked(path: Path) -> None:
    """Sets the Ocean modifier's "baked" flag in the file, as a bake on the founder's PC leaves it (with
    blender-asset-tracer, which reads and writes a .blend's blocks by their DNA), its cache folder not shipped."""
    from blender_asset_tracer import blendfile
    marked = 0
    with blendfile.BlendFile(path, mode="rb+") as blend:
        for block in blend.blocks:
            if block.dna_type_name == "OceanModifierData":
                block.set(b"cached", 1)
                marked += 1
    assert marked == 1, "the scene's Ocean modifier was not found"


def render(served, blender, tmp_path, scene: Path, **extra) -> dict:
    job = served.submit(extra.pop("render", FAST_RENDER), scene=served.upload_scene(scene), **extra)
    Running(served, blender, tmp_path).finish(180)
    return served.app.job(job["id"])


@pytest.mark.parametrize("case, kind, path", [
    ("missing_library", "library", "//lib.blend"),
    ("missing_image", "image", "//tex/wood.png"),
    ("missing_font", "font", "//work/Brand.ttf"),
    ("missing_mesh_cache", "cache", "//cache/motion.mdd"),
    ("missing_multires", "cache", "//detail.btx"),
    ("missing_ocean_bake", "cache", "//cache_ocean"),
])
def test_a_missing_file_is_a_warning_on_a_done_job_and_fails_a_strict_one(lacking, served, blender, tmp_path,
                                                                          case, kind, path):
    view = render(served, blender, tmp_path / "a", lacking / f"{case}.blend")
    assert view["state"] == "done", view["error"]
    assert {"kind": kind, "path": path} in [{k: w[k] for k in ("kind", "path")} for w in view["warnings"]], \
        view["warnings"]
    strict = render(served, blender, tmp_path / "b", lacking / f"{case}.blend", strict=True)
    assert strict["state"] == "failed" and strict["attempts"] == 1
    assert strict["error"].startswith("strict: the scene lacks") and f"{kind} '{path}'" in strict["error"]
    assert strict["error"].endswith("nothing was rendered") and strict["outputs"] == [], "failed before any frame"


def test_a_sequencer_only_scene_renders_without_a_camera(lacking, served, blender, tmp_path):
    view = render(served, blender, tmp_path, lacking / "sequencer_only.blend")
    assert view["state"] == "done", view["error"]
    frame = served.app.download_output(view["id"], "frame_0001.png", tmp_path / "frame.png")
    _width, _height, rows = read_png(frame)
    red, green, blue = mean_rgb(rows, 8, 8)
    assert red > 200 and green < 40 and blue < 40, (red, green, blue)


def test_a_file_saved_by_a_newer_blender_fails_at_once(served, blender, tmp_path):
    """The sample scene is Zstandard-compressed, as Blender 3.0 and later save: its header says 4.5 here."""
    import zstandard
    newer = tmp_path / "newer.blend"
    data = zstandard.ZstdDecompressor().stream_reader(sample_scene().open("rb")).read()
    assert data.startswith(b"BLENDER-v")
    newer.write_bytes(zstandard.ZstdCompressor().compress(b"BLENDER-v405" + data[12:]))
    view = render(served, blender, tmp_path, newer)
    assert view["state"] == "failed" and view["attempts"] == 1
    assert view["error"] == f"scene: saved by Blender 4.5; this PC has {blender.version}"


def test_a_file_that_is_no_blend_fails_at_once(served, blender, tmp_path):
    junk = tmp_path / "junk.blend"
    junk.write_bytes(b"<!doctype html><p>404 not found</p>")
    view = render(served, blender, tmp_path, junk)
    assert view["state"] == "failed" and view["attempts"] == 1
    assert view["error"] == "scene: the file is not a Blender file; send a .blend saved by Blender"


def test_denoising_the_build_cannot_do_is_told(served, blender, tmp_path):
    view = render(served, blender, tmp_path, sample_scene(), render={**FAST_RENDER, "denoise": True})
    assert view["state"] == "done", view["error"]
    notes = [w["message"] for w in view["warnings"] if w["kind"] == "render"]
    probe = subprocess.run([blender.path, "-b", "--factory-startup", "--python-expr",
                            "import _cycles; print('OIDN', bool(_cycles.with_openimagedenoise))"],
                           capture_output=True, text=True, timeout=120).stdout
    if "OIDN True" in probe:
        assert not any("denois" in n for n in notes), notes
    else:  # Debian's build: rendered without, and said so
        assert any(n.startswith("render.denoise: this Blender cannot denoise") for n in notes), notes
