"""Makes a template scene as web apps send them, heavy where it costs Blender time: a dense mesh, packed
textures, a paint material, a title text and a camera that moves (runs inside Blender):

    blender -b --factory-startup --python make_template_scene.py -- OUT.blend GRID TEXTURE FRAMES

GRID: the mesh's subdivisions per side (1000: a million faces); TEXTURE: the side of each of four packed
textures in pixels; FRAMES: the camera moves from frame 1 to this one. Deterministic: the same arguments make
the same picture.
"""

import array
import math
import random
import sys

import bpy


def texture(name, size, seed):
    """A packed image of coloured tiles (a 2048 px side is 16 million values: built a band of rows at a time)."""
    rng = random.Random(seed)
    cell = max(size // 16, 1)
    palette = [(rng.random(), rng.random(), rng.random(), 1.0) for _ in range(256)]
    pixels = array.array("f")
    for band in range(0, size, cell):
        row = array.array("f")
        for x in range(size):
            row.extend(palette[((x // cell) * 7 + (band // cell) * 13) % 256])
        for _ in range(min(cell, size - band)):
            pixels.extend(row)
    image = bpy.data.images.new(name, width=size, height=size)
    image.pixels.foreach_set(pixels)
    image.pack()
    return image


def textured(name, image, base=None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    if base is not None:
        bsdf.inputs["Base Color"].default_value = base
        bsdf.inputs["Roughness"].default_value = 0.35
        return mat
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def main(out_path, grid, size, frames):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Template"

    bpy.ops.mesh.primitive_grid_add(x_subdivisions=grid, y_subdivisions=grid, size=12)
    terrain = bpy.context.object
    terrain.name = "Terrain"
    coords = array.array("f", bytes(4 * 3 * len(terrain.data.vertices)))
    terrain.data.vertices.foreach_get("co", coords)
    for i in range(0, len(coords), 3):
        coords[i + 2] = 0.25 * math.sin(coords[i] * 2.1) * math.cos(coords[i + 1] * 1.7)
    terrain.data.vertices.foreach_set("co", coords)
    terrain.data.update()

    images = [texture("Tex%d" % n, size, n) for n in range(4)]
    terrain.data.materials.append(textured("TerrainMat", images[0]))
    for n, image in enumerate(images[1:], 1):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(-3 + 3 * (n - 1), 1.5, 0.8))
        bpy.context.object.name = "Crate%d" % n
        bpy.context.object.data.materials.append(textured("CrateMat%d" % n, image))

    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0, -1.0, 1.2), segments=48, ring_count=24)
    product = bpy.context.object
    product.name = "Product"
    bpy.ops.object.shade_smooth()
    product.data.materials.append(textured("Paint", None, base=(0.8, 0.1, 0.1, 1.0)))

    bpy.ops.object.text_add(location=(-2.0, 3.0, 1.2), rotation=(math.radians(90), 0, 0))
    title = bpy.context.object
    title.name = "Title"
    title.data.body = "Your product"
    title.data.size = 0.7
    title.data.materials.append(textured("TitleMat", None, base=(0.9, 0.9, 0.9, 1.0)))

    bpy.ops.object.light_add(type="SUN", location=(0, 0, 10), rotation=(math.radians(40), 0, math.radians(30)))
    bpy.context.object.data.energy = 4.0
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.4
    scene.world = world

    bpy.ops.object.camera_add(location=(0, -9, 4), rotation=(math.radians(68), 0, 0))
    camera = bpy.context.object
    camera.name = "Camera"
    scene.camera = camera
    scene.frame_start, scene.frame_end = 1, frames
    for frame in (1, frames):
        camera.location.x = -2.0 + 4.0 * (frame - 1) / max(frames - 1, 1)
        camera.keyframe_insert("location", frame=frame)

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    for layer in scene.view_layers:
        layer.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = 256
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.wm.save_as_mainfile(filepath=out_path)


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:]
    main(args[0], int(args[1]), int(args[2]), int(args[3]))
