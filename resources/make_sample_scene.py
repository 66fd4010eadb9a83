"""Builds resources/sample_scene.blend, the scene `homefarm demo` renders.

Run inside Blender:  blender -b --factory-startup -Y --python resources/make_sample_scene.py -- OUT.blend
The scene is small (a few hundred KB), renders in seconds on a CPU with Cycles and never needs
the denoiser, which Debian's Blender build does not include.
"""

import math
import sys

import bpy


def material(name, color, metallic=0.0, roughness=0.5, emission=None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    if emission is not None:
        bsdf.inputs["Emission"].default_value = (*emission, 1.0)
        bsdf.inputs["Emission Strength"].default_value = 4.0
    return mat


def labelled_material(name):
    """A material whose colour comes from the packed image "Label": a template's replaceable picture."""
    mat = material(name, (1, 1, 1), roughness=0.5)
    image = bpy.data.images.new("Label", width=16, height=16)
    pixels = []
    for y in range(16):
        for x in range(16):
            stripe = (x // 4 + y // 4) % 2
            pixels += [0.15, 0.35, 0.85, 1.0] if stripe else [0.1, 0.2, 0.6, 1.0]
    image.pixels = pixels
    image.pack()
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def main(out_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Showcase"

    bpy.ops.mesh.primitive_plane_add(size=20)
    floor = bpy.context.object
    floor.name = "Floor"
    floor.data.materials.append(material("FloorMat", (0.8, 0.8, 0.78), roughness=0.35))

    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0, 0, 1.0), segments=48, ring_count=24)
    sphere = bpy.context.object
    sphere.name = "Hero"
    bpy.ops.object.shade_smooth()
    sphere.data.materials.append(material("HeroMat", (0.9, 0.25, 0.1), metallic=0.6, roughness=0.25))

    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(-2.2, 0.8, 0.6), rotation=(0, 0, math.radians(25)))
    cube = bpy.context.object
    cube.name = "Block"
    cube.data.materials.append(labelled_material("BlockMat"))

    bpy.ops.mesh.primitive_torus_add(location=(2.1, -0.4, 0.35), major_radius=0.7, minor_radius=0.25)
    torus = bpy.context.object
    torus.name = "Ring"
    torus.data.materials.append(material("RingMat", (0.1, 0.8, 0.4), emission=(0.1, 0.9, 0.4)))

    bpy.ops.object.text_add(location=(1.05, 3.5, 0.95), rotation=(math.radians(90), 0, 0))
    title = bpy.context.object
    title.name = "Title"
    title.data.body = "homefarm"
    title.data.size = 0.68
    title.data.materials.append(material("TitleMat", (0.9, 0.9, 0.9), emission=(0.9, 0.8, 0.5)))

    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    for obj in (cube, torus):
        for coll in list(obj.users_collection):
            coll.objects.unlink(obj)
        props.objects.link(obj)

    bpy.ops.object.light_add(type="AREA", location=(3, -3, 5))
    key = bpy.context.object
    key.name = "Key"
    key.data.energy = 600
    key.data.size = 3
    key.rotation_euler = (math.radians(35), 0, math.radians(45))

    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.06, 0.09, 1)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world

    bpy.ops.object.camera_add(location=(0, -8.5, 3.4), rotation=(math.radians(72), 0, 0))
    scene.camera = bpy.context.object
    scene.camera.name = "Camera"

    scene.render.engine = "CYCLES"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.render.resolution_x = 640
    scene.render.resolution_y = 360
    scene.render.resolution_percentage = 100
    scene.frame_start = 1
    scene.frame_end = 3
    scene.render.image_settings.file_format = "PNG"
    for layer in scene.view_layers:
        layer.cycles.use_denoising = False

    bpy.ops.wm.save_as_mainfile(filepath=out_path, compress=True)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1])
