"""Makes scenes that lack files they name, and a sequencer-only scene (no camera).

    blender -b --factory-startup --python make_lacking.py -- OUT_DIR FONT_FILE

Writes OUT_DIR/<case>.blend. Each lacking scene renders (a tiny Cycles still) but a file it needs is not
shipped: a linked library, an image texture, a font.
"""

import os
import shutil
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_scene import base_scene, texture_the_cube  # noqa: E402

out_dir, font_file = sys.argv[sys.argv.index("--") + 1:][:2]
work = os.path.join(out_dir, "work")
os.makedirs(work, exist_ok=True)


def save(name):
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out_dir, name + ".blend"), compress=False)


# A library with one object, linked into the main file, then not shipped.
base_scene()
bpy.ops.mesh.primitive_monkey_add()
bpy.context.active_object.name = "Prop"
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out_dir, "lib.blend"))
base_scene()
save("missing_library")  # saved first so that the library path is relative to it
with bpy.data.libraries.load(os.path.join(out_dir, "lib.blend"), link=True, relative=True) as (src, dst):
    dst.objects = ["Prop"]
for obj in dst.objects:
    bpy.context.scene.collection.objects.link(obj)
save("missing_library")
os.remove(os.path.join(out_dir, "lib.blend"))

# An image texture on the cube's material, from a file next to the .blend that is not shipped.
base_scene()
texture = os.path.join(out_dir, "tex", "wood.png")
texture_the_cube(texture, texture)
save("missing_image")
shutil.rmtree(os.path.dirname(texture))

# A text object in a font file that is not shipped.
base_scene()
font_copy = os.path.join(work, "Brand.ttf")
shutil.copy(font_file, font_copy)
bpy.ops.object.text_add(location=(0, 0, 1.5))
bpy.context.active_object.data.font = bpy.data.fonts.load(font_copy)
save("missing_font")
os.remove(font_copy)

# Caches a modifier reads, made and then not shipped: a Mesh Cache's .mdd, Multires detail saved outside the
# file (.btx), an Ocean's bake. A bake runs as a job that background Blender never runs: the Ocean is saved
# unbaked here, and the test marks it baked in the file itself (tests/e2e/test_scene_files.py), as a file
# baked on the founder's PC reads.
base_scene()
cube = bpy.data.objects["Cube"]
save("missing_mesh_cache")
mdd = cube.modifiers.new("Motion", "MESH_CACHE")
mdd.cache_format = "MDD"
mdd.filepath = "//cache/motion.mdd"
save("missing_mesh_cache")

base_scene()
cube = bpy.data.objects["Cube"]
bpy.context.view_layer.objects.active = cube
save("missing_multires")
multires = cube.modifiers.new("Detail", "MULTIRES")
bpy.ops.object.multires_subdivide(modifier="Detail", mode="CATMULL_CLARK")
bpy.ops.object.multires_external_save(filepath=os.path.join(out_dir, "detail.btx"), relative_path=True,
                                      modifier="Detail")
save("missing_multires")
os.remove(os.path.join(out_dir, "detail.btx"))

base_scene()
bpy.ops.mesh.primitive_plane_add(size=4, location=(0, 0, -1))
ocean = bpy.context.active_object.modifiers.new("Sea", "OCEAN")
ocean.resolution = 2
ocean.filepath = "//cache_ocean"
save("missing_ocean_bake")

# The sequencer only: a colour strip, no camera at all.
scene = base_scene()
for obj in list(bpy.data.objects):
    bpy.data.objects.remove(obj)
scene.sequence_editor_create()
strip = scene.sequence_editor.sequences.new_effect("Red", "COLOR", channel=1, frame_start=1, frame_end=10)
strip.color = (1.0, 0.0, 0.0)
scene.render.use_sequencer = True
save("sequencer_only")
print("made lacking scenes")
