"""Finds what a scene needs and cannot find, inside Blender: linked libraries and their data-blocks, images,
fonts, caches, movie clips and sounds, each told with the path as the scene names it."""

import os

import bpy

import contract as K


def _missing_file(filepath, packed=False):
    """True when ``filepath`` (as the scene names it) is neither packed nor on disk."""
    if packed or not filepath or filepath.startswith("<"):  # "<builtin>" fonts
        return False
    path = bpy.path.abspath(filepath)
    if "<UDIM>" in path or "<UVTILE>" in path:
        folder = os.path.dirname(path)
        return not os.path.isdir(folder)
    return not os.path.exists(path)


def report(emit):
    """Reports every file the scene needs that is not there, with the path as the scene names it: linked
    libraries and the data-blocks they should bring, images, fonts, caches (point caches, volumes, fluids,
    Alembic, an Ocean's bake, a Mesh Cache's file, Multires detail saved outside), movie clips and sounds.
    Returns them, each as (kind, path)."""
    seen = set()
    found = []

    def missing(kind, path, name=None):
        if (kind, path, name) in seen:
            return
        seen.add((kind, path, name))
        found.append((kind, path))
        fields = {"kind": kind, "path": path}
        if name:
            fields["name"] = name
        emit(K.MISSING, **fields)

    for lib in bpy.data.libraries:
        if _missing_file(lib.filepath, lib.packed_file is not None):
            missing("library", lib.filepath)
    for collection in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.node_groups,
                       bpy.data.collections, bpy.data.images, bpy.data.worlds):
        for block in collection:
            if getattr(block, "is_missing", False):
                missing("linked", block.library.filepath if block.library else "", block.name)
    for image in bpy.data.images:
        if image.source in ("FILE", "SEQUENCE", "TILED") and image.users and not getattr(image, "is_missing", False):
            if _missing_file(image.filepath, image.packed_file is not None):
                missing("image", image.filepath, image.name)
    for font in bpy.data.fonts:
        if font.users and _missing_file(font.filepath, font.packed_file is not None):
            missing("font", font.filepath, font.name)
    for cache in bpy.data.cache_files:
        if cache.users and _missing_file(cache.filepath):
            missing("cache", cache.filepath, cache.name)
    for volume in getattr(bpy.data, "volumes", []):
        if volume.users and _missing_file(volume.filepath, volume.packed_file is not None):
            missing("cache", volume.filepath, volume.name)
    for clip in bpy.data.movieclips:
        if clip.users and _missing_file(clip.filepath):
            missing("clip", clip.filepath, clip.name)
    for sound in bpy.data.sounds:
        if sound.users and _missing_file(sound.filepath, sound.packed_file is not None):
            missing("sound", sound.filepath, sound.name)
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        for strip in all_strips(editor):
            if strip.type == "MOVIE" and _missing_file(strip.filepath):
                missing("clip", strip.filepath, strip.name)
            elif strip.type == "IMAGE" and strip.elements and \
                    _missing_file(os.path.join(strip.directory, strip.elements[0].filename)):
                missing("image", os.path.join(strip.directory, strip.elements[0].filename), strip.name)
    for obj in bpy.data.objects:
        for mod in obj.modifiers:
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN" and mod.domain_settings.cache_type != "REPLAY" \
                    and _missing_file(mod.domain_settings.cache_directory):
                missing("cache", mod.domain_settings.cache_directory, obj.name)
            elif mod.type == "OCEAN" and getattr(mod, "is_cached", False) and _missing_file(mod.filepath):
                missing("cache", mod.filepath, obj.name)  # marked baked, its folder gone: Blender renders flat
            elif mod.type == "MESH_CACHE" and _missing_file(mod.filepath):
                missing("cache", mod.filepath, obj.name)  # an .mdd or .pc2 the mesh's motion comes from
            elif mod.type == "MULTIRES" and getattr(mod, "is_external", False) and _missing_file(mod.filepath):
                missing("cache", mod.filepath, obj.name)  # the sculpted detail, saved beside as a .btx
        for psys in obj.particle_systems:
            cache = psys.point_cache
            if cache.use_external and _missing_file(cache.filepath):
                missing("cache", cache.filepath, obj.name)

    return found

def all_strips(editor):
    """Every strip of a scene's sequencer (``strips_all`` from Blender 4.4, the only name in 5.0; before,
    ``sequences_all``); none without a sequencer."""
    if editor is None:
        return []
    strips = getattr(editor, "strips_all", None)
    return strips if strips is not None else editor.sequences_all
