"""Makes a small project as founders keep one: a shot that links a prop from a library and uses a texture.

    blender -b --factory-startup --python make_project.py -- PROJECT_DIR

PROJECT_DIR/shot.blend links "Prop" from //lib/props.blend and textures its cube with //tex/green.png, all by
relative paths.
"""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_scene import base_scene  # noqa: E402

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
texture = os.path.join(project, "tex", "green.png")
image = bpy.data.images.new("green", 4, 4)
image.pixels = [0.0, 1.0, 0.0, 1.0] * 16
image.filepath_raw = texture
image.file_format = "PNG"
image.save()
material = bpy.data.materials.new("Green")
material.use_nodes = True
node = material.node_tree.nodes.new("ShaderNodeTexImage")
node.image = bpy.data.images.load("//tex/green.png")
material.node_tree.links.new(node.outputs["Color"], material.node_tree.nodes["Principled BSDF"].inputs[0])
bpy.data.objects["Cube"].data.materials.append(material)
with bpy.data.libraries.load("//lib/props.blend", link=True, relative=True) as (src, dst):
    dst.objects = ["Prop"]
for obj in dst.objects:
    bpy.context.scene.collection.objects.link(obj)
bpy.ops.wm.save_as_mainfile(filepath=shot)
print("made project")
