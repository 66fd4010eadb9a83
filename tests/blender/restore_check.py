"""After jobs of every kind on a kept scene, the scene is as it was loaded: a snapshot of what jobs touch (the
render, Cycles and image settings, objects' transforms and visibility, materials' inputs, texts, collections,
camera, frames) taken after loading, compared with one taken after each job was put back. Runs inside Blender
(the executable, or a Python with PyPI's bpy):

    blender -b --factory-startup --python restore_check.py -- SCENE.blend WORK_DIR
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "blender_scripts"))
import bpy  # noqa: E402

import contract as K  # noqa: E402
import warm  # noqa: E402

SIMPLE = {"BOOLEAN", "INT", "FLOAT", "STRING", "ENUM"}


def plain(struct):
    found = {}
    for prop in struct.bl_rna.properties:
        if prop.type in SIMPLE and not prop.is_readonly:
            value = getattr(struct, prop.identifier)
            found[prop.identifier] = list(value) if hasattr(value, "__len__") and not isinstance(value, str) \
                else (sorted(value) if isinstance(value, set) else value)
    return found


def snapshot():
    scene = bpy.context.scene
    return {
        "render": plain(scene.render), "cycles": plain(scene.cycles), "image": plain(scene.render.image_settings),
        "camera": scene.camera.name if scene.camera else None,
        "frames": [scene.frame_current, scene.frame_start, scene.frame_end],
        "objects": {o.name: [list(o.location), list(o.rotation_euler), o.rotation_mode, list(o.scale), o.hide_render]
                    for o in bpy.data.objects},
        "materials": {m.name: [[list(i.default_value) if hasattr(i.default_value, "__len__") else i.default_value
                                for i in n.inputs if hasattr(i, "default_value")]
                               for n in m.node_tree.nodes] for m in bpy.data.materials if m.node_tree},
        "texts": {o.name: o.data.body for o in bpy.data.objects if o.type == "FONT"},
        "collections": {c.name: c.hide_render for c in bpy.data.collections},
        "handlers": len(bpy.app.handlers.render_stats),
    }


def main(scene_file, work):
    changes = [
        {},
        {"objects": {"Hero": {"location": [0.6, 0.2, 1.3], "rotation": [0, 40, 10], "scale": [2, 2, 2],
                              "visible": False}}},
        {"materials": {"HeroMat": {"base_color": [0, 1, 0], "roughness": 0.9, "metallic": 0.1}}},
        {"texts": {"Title": "warm"}},
        {"collections": {"Props": {"visible": False}}},
        {"objects": {"Camera": {"location": [1.5, -7.5, 3.0], "rotation": [65, 0, 12]}}},
    ]
    renders = [{}, {}, {"samples": 2, "resolution": [40, 20], "resolution_percentage": 50}, {}, {"format": "JPEG"},
               {"camera": "Camera"}]
    kept = warm.Kept()
    pristine = None
    differences = []
    for n, (overrides, render) in enumerate(zip(changes, renders)):
        job_dir = os.path.join(work, str(n))
        os.makedirs(os.path.join(job_dir, "out"))
        job = {K.RENDER: dict({"engine": "CYCLES", "samples": 1, "resolution": [32, 18], "format": "PNG",
                               "device": "CPU"}, **render),
               K.FRAMES: [1, 2] if n == 3 else [1], K.OUTPUT_DIR: os.path.join(job_dir, "out"),
               K.OVERRIDES: overrides, K.IMAGES: {}, K.JOB_DIR: job_dir, K.SCENE_FILE: scene_file,
               K.DEVICE_TYPE: None, K.GPU_INDICES: [], K.SCENE_KEY: "scene"}
        reused = warm.render(job, kept)
        if pristine is None:
            # The first job opened the file; what it changed is put back: the file as loaded, with what every
            # job sets (persistent data on) and the confined paths the next job points in again.
            pristine = snapshot()
            continue
        assert reused, n
        now = snapshot()
        for key in pristine:
            if now[key] != pristine[key]:
                differences.append({"job": n, "what": key, "before": str(pristine[key])[:300],
                                    "after": str(now[key])[:300]})
    print("@result " + json.dumps({"blender": bpy.app.version_string, "differences": differences}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[sys.argv.index("--") + 1:][:2])
