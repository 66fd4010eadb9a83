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
