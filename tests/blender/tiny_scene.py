"""Shared by the scene makers in this folder (run inside Blender): a fresh, tiny, fast Cycles scene."""

import bpy


def base_scene(relative_paths=True):
    """The factory scene (cube, camera, light), 1 sample, 32x18, no denoising. ``relative_paths=False`` keeps
    absolute paths absolute, as a stranger's file may have them."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    bpy.context.preferences.filepaths.use_relative_paths = relative_paths
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 32, 18
    scene.render.resolution_percentage = 100
    return scene


def texture_the_cube(path, load_as, pixels=None):
    """Writes a 4x4 PNG at ``path`` and textures the cube's material with it, loaded as ``load_as`` (the path
    the scene names: absolute, or ``//`` relative)."""
    import os
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new(os.path.splitext(os.path.basename(path))[0], 4, 4)
    if pixels is not None:
        image.pixels = pixels
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    material = bpy.data.materials.new("Texture")
    material.use_nodes = True
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load(load_as)
    material.node_tree.links.new(node.outputs["Color"], material.node_tree.nodes["Principled BSDF"].inputs[0])
    bpy.data.objects["Cube"].data.materials.append(material)
