"""Makes one .blend per way a scene can name a place to write on render, each aimed at ``OUTSIDE``.

    blender -b --factory-startup --python make_hostile.py -- OUT_DIR OUTSIDE

Writes OUT_DIR/<case>.blend for each case below; a tiny Cycles scene (1 sample, 32x18) whose compositor or
simulation writes where the case says, as a stranger's file could.
"""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_scene import base_scene  # noqa: E402

out_dir, outside = sys.argv[sys.argv.index("--") + 1:][:2]


def file_output(scene, base_path, slot_path=None, fmt="PNG"):
    scene.use_nodes = True
    tree = scene.node_tree
    layers = next(n for n in tree.nodes if n.type == "R_LAYERS")
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.name = "Leak"
    node.base_path = base_path
    node.format.file_format = fmt
    if slot_path is not None:
        node.file_slots[0].path = slot_path
    tree.links.new(layers.outputs["Image"], node.inputs[0])
    return node


def save(name):
    # Absolute paths stay absolute, as a stranger's file may have them.
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out_dir, name + ".blend"), compress=False,
                                relative_remap=False)


CASES = {
    # An absolute folder: the classic (a Startup folder, a Documents folder).
    "absolute": lambda s: file_output(s, os.path.join(outside, "")),
    # Relative to the .blend but climbing out of the job's folder.
    "parent": lambda s: file_output(s, "//../../../escaped_"),
    # A Windows share and a drive letter (on Linux these are odd relative names, in the job's folder).
    "unc": lambda s: file_output(s, "\\\\server\\share\\renders\\"),
    "drive": lambda s: file_output(s, "C:\\Users\\Public\\Startup\\"),
    # A harmless base with an absolute input path.
    "slot": lambda s: file_output(s, "//", slot_path=os.path.join(outside, "slot_")),
    # One multilayer EXR per frame, at an absolute prefix.
    "multilayer": lambda s: file_output(s, os.path.join(outside, "layers_"), fmt="OPEN_EXR_MULTILAYER"),
}


def fluid(scene):
    """A tiny smoke domain simulated as it renders (replay), caching to an absolute folder."""
    bpy.ops.mesh.primitive_cube_add(size=2)
    domain = bpy.context.active_object
    mod = domain.modifiers.new("Fluid", "FLUID")
    mod.fluid_type = "DOMAIN"
    mod.domain_settings.domain_type = "GAS"
    mod.domain_settings.resolution_max = 8
    mod.domain_settings.cache_type = "REPLAY"
    mod.domain_settings.cache_directory = os.path.join(outside, "fluid_cache")
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.3)
    flow = bpy.context.active_object
    flow_mod = flow.modifiers.new("Fluid", "FLUID")
    flow_mod.fluid_type = "FLOW"
    flow_mod.flow_settings.flow_type = "SMOKE"


CASES["fluid"] = fluid


for case, make in CASES.items():
    make(base_scene(relative_paths=False))
    save(case)
print("made", ", ".join(CASES))
