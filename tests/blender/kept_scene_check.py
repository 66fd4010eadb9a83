"""Renders a template job sequence with ``render_job.run`` in a Python with PyPI's ``bpy`` (a newer Blender as a
module), each job twice: on a file opened for it, and on the scene ``warm.Kept`` keeps from the job before.
Then a movie of two frames. Prints one JSON line: for each job, the frames written each way and whether the kept
scene was used; the movie files.

    python kept_scene_check.py SCENE.blend WORK_DIR LABEL.png
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "blender_scripts"))
import bpy  # noqa: E402

import contract as K  # noqa: E402
import warm  # noqa: E402

RENDER = {"engine": "CYCLES", "samples": 4, "resolution": [64, 36], "format": "PNG", "device": "CPU",
          "denoise": False}


def main(scene, work, label):
    changes = [
        ("A", {}, {}, {}),
        ("object", {"objects": {"Hero": {"location": [0.6, 0.2, 1.3], "rotation": [0, 40, 10]}}}, {}, {}),
        ("A", {}, {}, {}),
        ("material", {"materials": {"HeroMat": {"base_color": [0, 1, 0], "roughness": 0.9}}}, {}, {}),
        ("text", {"texts": {"Title": "warm"}}, {}, {}),
        ("collection", {"collections": {"Props": {"visible": False}}}, {}, {}),
        ("camera", {"objects": {"Camera": {"location": [1.5, -7.5, 3.0]}}}, {}, {}),
        ("render", {}, {"samples": 8, "resolution": [48, 27]}, {}),
        ("A", {}, {}, {}),
        ("image", {}, {}, {"Label": label}),
        ("A", {}, {}, {}),
    ]
    kept = warm.Kept()
    found = [{"name": name} for name, _, _, _ in changes]
    for way in ("opened", "kept"):  # every job on a file opened for it; then the same jobs on the kept scene
        for n, (name, overrides, render, images) in enumerate(changes):
            job_dir = os.path.join(work, "%02d-%s-%s" % (n, name, way))
            out = os.path.join(job_dir, "out")
            os.makedirs(out)
            job = {K.RENDER: dict(RENDER, **render), K.FRAMES: [1], K.OUTPUT_DIR: out, K.OVERRIDES: overrides,
                   K.IMAGES: images, K.JOB_DIR: job_dir, K.SCENE_FILE: scene, K.DEVICE_TYPE: None,
                   K.GPU_INDICES: [], K.SCENE_KEY: "template" if way == "kept" else None}
            reuse = warm.render(job, kept)
            if way == "kept":
                found[n]["reused"] = reuse
            found[n][way] = os.path.join(out, "frame_0001.png")
    # A movie of two frames, on a file opened for it (Blender 5.0 moved the movie formats).
    job_dir = os.path.join(work, "movie")
    os.makedirs(os.path.join(job_dir, "out"))
    warm.render({K.RENDER: dict(RENDER, format="FFMPEG"), K.FRAMES: [1, 2], K.OUTPUT_DIR: os.path.join(job_dir, "out"),
                 K.OVERRIDES: {}, K.IMAGES: {}, K.JOB_DIR: job_dir, K.SCENE_FILE: scene, K.DEVICE_TYPE: None,
                 K.GPU_INDICES: [], K.SCENE_KEY: None}, warm.Kept())
    movies = [os.path.join(job_dir, "out", name) for name in os.listdir(os.path.join(job_dir, "out"))]
    print("@result " + json.dumps({"blender": bpy.app.version_string, "jobs": found, "movies": movies}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
