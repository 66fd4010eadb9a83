"""Makes a small project as founders keep one: a shot that links a prop from a library and uses a texture.

    blender -b --factory-startup --python make_project.py -- PROJECT_DIR

PROJECT_DIR/shot.blend links "Prop" from //lib/props.blend and textures its cube with //tex/green.png, all by
relative paths.
"""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_scene import base_scene, texture_the_cube  # noqa: E402

project = sys.argv[sys.argv.index("--") + 1]
os.makedirs(os.path.join(project, "lib"), exist_ok=True)
os.makedirs(os.path.join(project, "tex"), exist_ok=True)


base_scene()
bpy.ops.mesh.primitive_monkey_add(location=(0, 0, 2))
bpy.context.active_object.name = "Prop"
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(project, "lib", "props.blend"))

base_scene()
shot = os.path.join(project, "shot.blend")
bpy.ops.wm.save_as_mainfile(filepath=shot)
texture_the_cube(os.path.join(project, "tex", "green.png"), "//tex/green.png", [0.0, 1.0, 0.0, 1.0] * 16)
with bpy.data.libraries.load("//lib/props.blend", link=True, relative=True) as (src, dst):
    dst.objects = ["Prop"]
for obj in dst.objects:
    bpy.context.scene.collection.objects.link(obj)
bpy.ops.wm.save_as_mainfile(filepath=shot)
print("made project")
