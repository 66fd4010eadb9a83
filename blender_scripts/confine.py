"""Keeps a render's writes inside the job's folder, whatever paths the scene names (runs inside Blender).

A .blend can name places Blender writes to while it renders: compositor File Output nodes, simulation
caches (fluid, point caches, geometry-node bakes, ocean, dynamic paint), other scenes' output paths. A scene
from a stranger could point them at the owner's Startup folder or over a document. Before rendering, every
such path is pointed into the job's folder: File Output images into the output folder under names that
cannot collide with frames (they are uploaded like frames), caches into ``caches/``. Each change is
reported as a ``redirected`` event. After the render, the original folders are listed again: a file that
appeared there anyway fails the job.
"""

import os
import re

import bpy

import contract as K

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_LISTED = 10000  # entries per folder listed for the check after the render


def safe_name(text, limit=24):
    return (_UNSAFE.sub("-", text).strip("-") or "x")[:limit]


class Confinement:
    def __init__(self, job_dir, out_dir, emit, touched=None):
        self.job_dir = os.path.abspath(job_dir)
        self.out_dir = os.path.abspath(out_dir)
        self.cache_dir = os.path.join(self.job_dir, "caches")
        self.emit = emit
        self.touched = touched  # render_job.Touched: the paths pointed in are put back after a kept scene's job
        self.records = []
        self._before = {}  # folder outside the job -> its entries before the render

    # -- before the render ------------------------------------------------------------------------

    def redirect_all(self, rendered_scene):
        """``rendered_scene``: the name of the scene the job renders (its own output path is the job's)."""
        for scene in bpy.data.scenes:
            if scene.name != rendered_scene and scene.render.filepath:
                # Rendered as a compositor input, another scene writes nothing; pointed in all the same.
                self._move(scene.render, "filepath", "output path of scene %r" % scene.name,
                           os.path.join(self.cache_dir, "scene-" + safe_name(scene.name), ""), watch="")
            # Blender 5.0 moved the compositor into a node group (scene.compositing_node_group), which the
            # node groups below include; before, it is the scene's own node_tree.
            tree = getattr(scene, "node_tree", None)
            if tree is not None:
                self._file_outputs(tree, scene.name)
        for group in bpy.data.node_groups:
            if group.bl_idname == "CompositorNodeTree":
                self._file_outputs(group, "node group " + group.name)
        for obj in bpy.data.objects:
            self._object(obj)
        prefs = bpy.context.preferences.filepaths
        tmp = os.path.join(self.job_dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        if prefs.temporary_directory and os.path.abspath(prefs.temporary_directory) != tmp:
            prefs.temporary_directory = tmp
        return self.records

    def _file_outputs(self, tree, owner):
        for node in tree.nodes:
            if node.bl_idname == "CompositorNodeGroup" and node.node_tree is not None:
                continue  # reached through bpy.data.node_groups
            if node.bl_idname != "CompositorNodeOutputFile":
                continue
            label = "File Output node %r in %s" % (node.name, owner)
            prefix = "%s%s_" % (K.COMPOSITOR_PREFIX, safe_name(node.name))
            if hasattr(node, "base_path"):  # Blender 2.8x-4.x
                base = bpy.path.abspath(node.base_path)
                multilayer = node.format.file_format == "OPEN_EXR_MULTILAYER"
                target = os.path.join(self.out_dir, prefix) if multilayer else self.out_dir + os.sep
                self._move(node, "base_path", label, target, output=True)
                if not multilayer:  # each input's file name gets the node's prefix: told once, with the folder
                    for index, slot in enumerate(node.file_slots):
                        self._move(slot, "path", "%s, input %d" % (label, index + 1),
                                   "%s%s_" % (prefix, safe_name(slot.path or str(index + 1), 16)),
                                   watch=os.path.join(base, slot.path), output=True, told=False)
            if hasattr(node, "directory"):  # Blender 5.x
                base = bpy.path.abspath(node.directory)
                self._move(node, "directory", label, self.out_dir + os.sep, output=True)
                if hasattr(node, "file_name"):
                    self._move(node, "file_name", label, prefix, watch=os.path.join(base, node.file_name),
                               output=True, told=False)

    def _object(self, obj):
        for mod in obj.modifiers:
            owner = "%s modifier %r of %r" % (mod.type.lower(), mod.name, obj.name)
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                self._move(mod.domain_settings, "cache_directory", "fluid cache, " + owner,
                           self._cache_path(obj, mod))
            elif mod.type == "DYNAMIC_PAINT" and mod.canvas_settings is not None:
                for surface in mod.canvas_settings.canvas_surfaces:
                    self._move(surface, "image_output_path", "image output of " + owner,
                               self._cache_path(obj, mod, surface.name))
            elif mod.type == "OCEAN":
                self._move(mod, "filepath", "ocean cache, " + owner, self._cache_path(obj, mod))
            elif mod.type == "NODES" and hasattr(mod, "bake_directory"):
                self._move(mod, "bake_directory", "bake folder, " + owner, self._cache_path(obj, mod))
                for index, bake in enumerate(getattr(mod, "bakes", [])):
                    if getattr(bake, "directory", ""):
                        self._move(bake, "directory", "bake %d, %s" % (index, owner),
                                   self._cache_path(obj, mod, str(index)))
        # Point caches (particles, cloth, soft bodies, rigid bodies) on disk are written beside the .blend,
        # inside the job's folder; external ones are only read.

    def _cache_path(self, obj, mod, extra=""):
        parts = [safe_name(obj.name), safe_name(mod.name)] + ([safe_name(extra)] if extra else [])
        return os.path.join(self.cache_dir, "-".join(parts), "")

    def _inside(self, path):
        path = os.path.abspath(path)
        return path == self.job_dir or path.startswith(self.job_dir + os.sep)

    def _move(self, owner, attr, label, target, watch=None, output=False, told=True):
        """Points ``owner.attr`` at ``target``; records the change (``told``) and watches the folder it named.

        A cache inside the job's folder (shipped in the zip) stays where it is; an output always moves into
        the output folder, so that it is uploaded."""
        original = getattr(owner, attr, "")
        if original == target:
            return
        resolved = bpy.path.abspath(original) if watch is None else watch
        if not output and (not original or (resolved and self._inside(resolved))):
            return
        if resolved:
            self._watch(resolved)
        if self.touched is not None:
            self.touched.set(owner, attr, target)
        else:
            setattr(owner, attr, target)
        record = {"what": label, "from": original, "to": os.path.relpath(target, self.job_dir)
                  if os.path.isabs(target) else target}
        if told:
            self.records.append(record)
            self.emit(K.REDIRECTED, **record)
        if os.path.isabs(target):
            os.makedirs(os.path.dirname(target) if not target.endswith(os.sep) else target, exist_ok=True)

    def _watch(self, path):
        """Remembers what stands where ``path`` would write: its deepest existing folder, and the name prefix
        that a file written there would have (the part of ``path`` below that folder)."""
        trailing = path.endswith(os.sep) or bool(os.altsep and path.endswith(os.altsep))
        path = os.path.abspath(path) + (os.sep if trailing else "")
        folder, prefix = os.path.split(path)
        while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder, prefix = os.path.dirname(folder), os.path.basename(folder)
        if self._inside(folder) or (folder, prefix) in self._before:
            return
        self._before[(folder, prefix)] = self._listing(folder, prefix)

    @staticmethod
    def _listing(folder, prefix):
        try:
            with os.scandir(folder) as entries:
                return {entry.name for _, entry in zip(range(MAX_LISTED), entries) if entry.name.startswith(prefix)}
        except OSError:
            return set()

    # -- after the render ---------------------------------------------------------------------------

    def escaped(self):
        """Files that appeared after the render in a folder outside the job that the scene had named."""
        found = []
        for (folder, prefix), before in self._before.items():
            for name in sorted(self._listing(folder, prefix) - before):
                found.append(os.path.join(folder, name))
        return found


def new_outputs(out_dir, known):
    """Files the compositor wrote into the output folder that were not reported yet."""
    names = []
    for name in sorted(os.listdir(out_dir)):
        if name.startswith(K.COMPOSITOR_PREFIX) and name not in known and os.path.isfile(os.path.join(out_dir, name)):
            names.append(name)
    return names
