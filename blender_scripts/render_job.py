"""Renders one homefarm job inside Blender.

Started by the worker as

    blender -b --factory-startup -Y --python-exit-code 3 --python render_job.py -- JOB.json

and opens the scene named in JOB.json itself, with its Python disabled (see ``open_scene``).

JOB.json holds the validated job: render settings and the output folder. Everything in it is data:
nothing from a job is ever evaluated or spliced into Python source.

Progress goes to stdout as one JSON event per line, each prefixed with ``@homefarm `` so the worker
can tell them from Blender's own lines. Any failure raises, which ``--python-exit-code`` turns into a
non-zero exit after an ``error`` event naming the cause.

This file runs in Blender's own Python (3.4 and newer), so it imports nothing from homefarm but the
contract beside it (``contract.py``: the job file's keys, the events, the output names).
"""

import json
import math
import os
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import confine  # noqa: E402
import missing  # noqa: E402
import contract as K  # noqa: E402

emit = K.emit
GPU_BACKENDS = K.GPU_BACKENDS
MATERIAL_INPUTS = K.MATERIAL_INPUTS


class JobError(Exception):
    """A job that cannot be rendered as asked; the message names the field."""


def _copied(value):
    """A value read from Blender, as it is now: arrays and vectors alias the data they came from."""
    if isinstance(value, bpy.types.ID) or value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "copy"):
        return value.copy()  # mathutils Vector, Euler, Color, Quaternion
    try:
        return tuple(value)  # bpy_prop_array (a socket's colour)
    except TypeError:
        return value


def _same(old, new):
    if isinstance(old, tuple) or (hasattr(old, "__len__") and not isinstance(old, str)):
        try:
            return len(old) == len(new) and all(a == b for a, b in zip(old, new))
        except TypeError:
            return False
    return old == new


class Touched:
    """Every value a job changes in the loaded file, in order, so that a warm Blender can put the file back as it
    was loaded and render the next job on the same scene without opening it again (``warm.py``). A change that
    cannot be put back (an image replaced by the job's) makes the file not ``restorable``: the next job opens it
    from scratch."""

    def __init__(self):
        self._undo = []
        self.restorable = True
        # A collection shown or hidden: Cycles' persistent data does not see it (Blender 3.4 to 5.0), so what it
        # kept is dropped before this job renders, and before the next one (which sees the change put back).
        self.resync = False

    def set(self, owner, attr, value):
        """Sets ``owner.attr``, noting its value before. A value that is already there is not set again: each
        set tells Blender's dependency graph that something changed, and Cycles would sync it anew."""
        old = _copied(getattr(owner, attr))
        if _same(old, value):
            return
        self._undo.append(lambda: setattr(owner, attr, old))
        setattr(owner, attr, value)

    def undo(self, action):
        """``action`` puts back something changed otherwise (a handler added, the frame set)."""
        self._undo.append(action)

    def restore(self):
        while self._undo:
            self._undo.pop()()


def _c_stdout_flusher():
    """Returns a function that flushes the C runtime's stdout buffer.

    Blender prints its progress lines with C stdio, which buffers them whole blocks at a time when
    stdout is a pipe, so the worker would see a render's progress only when it ends. Flushing from
    the render_stats handler, which Blender calls at each progress update, makes them arrive live.
    """
    import ctypes
    import ctypes.util

    try:
        if sys.platform == "win32":
            libc = ctypes.CDLL("ucrtbase")
        else:
            libc = ctypes.CDLL(None)
        fflush = libc.fflush
        fflush.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return lambda *args: None
    return lambda *args: fflush(None)


def read_job():
    argv = sys.argv
    if "--" not in argv or argv.index("--") + 1 >= len(argv):
        raise JobError("render_job.py needs the job file after '--'")
    with open(argv[argv.index("--") + 1], encoding="utf-8") as handle:
        return json.load(handle)


def pick_scene(render):
    name = render.get("scene")
    if not name:
        return bpy.context.scene
    scene = bpy.data.scenes.get(name)
    if scene is None:
        raise JobError("render.scene: no scene named %r in the file (it has %s)"
                       % (name, ", ".join(repr(s.name) for s in bpy.data.scenes)))
    return scene


def available_engines():
    # The engine enum is filled at run time from the registered engines, so bl_rna cannot list it.
    return sorted({"BLENDER_WORKBENCH"} | {cls.bl_idname for cls in bpy.types.RenderEngine.__subclasses__()})


def set_engine(scene, engine, touched):
    candidates = [engine]
    if engine == "BLENDER_EEVEE":
        candidates.append("BLENDER_EEVEE_NEXT")  # Blender 4.2-4.5 renamed EEVEE; 5.0 renamed it back.
    for candidate in candidates:
        try:
            touched.set(scene.render, "engine", candidate)
            return candidate
        except TypeError:
            continue
    raise JobError("render.engine: %s is not available in this Blender (it has %s)"
                   % (engine, ", ".join(available_engines())))


def enable_cycles_device(scene, preference, touched, device_type=None, gpu_indices=None):
    """Chooses the Cycles device: the configured or best GPU backend there is, else the CPU with a warning."""
    if preference == "CPU":
        touched.set(scene.cycles, "device", "CPU")
        return "CPU", []
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ([device_type] if device_type else GPU_BACKENDS):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue  # This build of Blender does not know the backend.
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpu_indices:
            gpus = [gpus[i] for i in gpu_indices if 0 <= i < len(gpus)]
        if not gpus:
            continue
        for device in prefs.devices:
            device.use = device in gpus
        touched.set(scene.cycles, "device", "GPU")
        return backend, [d.name for d in gpus]
    wanted = device_type or "GPU"
    if gpu_indices:
        wanted += " %s" % list(gpu_indices)
    emit(K.WARNING, message="render.device: Blender sees no %s device; rendering on the CPU" % wanted)
    touched.set(scene.cycles, "device", "CPU")
    return "CPU", []


def set_samples(scene, engine, samples, touched):
    if samples is None:
        return None
    if engine == "CYCLES":
        touched.set(scene.cycles, "samples", samples)
    elif engine.startswith("BLENDER_EEVEE"):
        touched.set(scene.eevee, "taa_render_samples", samples)
    return samples


def current_samples(scene, engine):
    if engine == "CYCLES":
        return scene.cycles.samples
    if engine.startswith("BLENDER_EEVEE"):
        return scene.eevee.taa_render_samples
    return 1


def denoiser_available(denoiser, device):
    """Whether this Blender can denoise with ``denoiser`` on ``device``."""
    if denoiser == "OPENIMAGEDENOISE":
        import _cycles
        return bool(getattr(_cycles, "with_openimagedenoise", False))
    if denoiser == "OPTIX":
        return device == "OPTIX"
    return False


def set_denoising(scene, wanted, device, touched):
    """Keeps the scene's denoising where this Blender can do it; ``render.denoise`` overrides the scene."""
    if not hasattr(scene, "cycles"):
        return
    cycles = scene.cycles
    if wanted is not None:
        touched.set(cycles, "use_denoising", bool(wanted))
    if not cycles.use_denoising:
        return
    if denoiser_available(cycles.denoiser, device):
        return
    fallback = next((d for d in ("OPENIMAGEDENOISE", "OPTIX") if denoiser_available(d, device)), None)
    if fallback is not None:
        touched.set(cycles, "denoiser", fallback)
        return
    # Builds without OpenImageDenoise (Debian's among them) fail a render that asks for it.
    touched.set(cycles, "use_denoising", False)
    for layer in scene.view_layers:
        if hasattr(layer, "cycles"):
            touched.set(layer.cycles, "use_denoising", False)
    emit(K.WARNING, message="render.denoise: this Blender cannot denoise (no OpenImageDenoise); "
                            "rendered without denoising")


def renders_through_a_camera(scene):
    """A scene whose sequencer has strips renders them, with no camera; everything else needs one."""
    editor = scene.sequence_editor
    return not (scene.render.use_sequencer and len(missing.all_strips(editor)) > 0)


def _keep_rotation(obj, touched):
    """Setting the rotation mode converts the rotation: the mode goes back first, then each form's values."""
    kept = (obj.rotation_mode, _copied(obj.rotation_euler), _copied(obj.rotation_quaternion),
            _copied(obj.rotation_axis_angle))

    def put_back():
        obj.rotation_mode = kept[0]
        obj.rotation_euler, obj.rotation_quaternion, obj.rotation_axis_angle = kept[1:]
    touched.undo(put_back)


def apply_overrides(scene, overrides, images, touched):
    """Applies the job's template parameters; a name missing from the .blend fails the job with its path.
    Each value changed is noted in ``touched``, to be put back on a kept scene."""
    for name, changes in overrides.get("objects", {}).items():
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise JobError("overrides.objects.%s: no object named %r" % (name, name))
        if "location" in changes:
            touched.set(obj, "location", changes["location"])
        if "rotation" in changes:
            _keep_rotation(obj, touched)
            obj.rotation_mode = "XYZ"
            obj.rotation_euler = [math.radians(v) for v in changes["rotation"]]
        if "scale" in changes:
            touched.set(obj, "scale", changes["scale"])
        if "visible" in changes:
            touched.set(obj, "hide_render", not changes["visible"])
    for name, inputs in overrides.get("materials", {}).items():
        mat = bpy.data.materials.get(name)
        if mat is None:
            raise JobError("overrides.materials.%s: no material named %r" % (name, name))
        bsdf = next((n for n in (mat.node_tree.nodes if mat.node_tree is not None else [])
                     if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is None:
            raise JobError("overrides.materials.%s: the material has no Principled BSDF node" % name)
        for key, value in inputs.items():
            socket = next((bsdf.inputs[n] for n in MATERIAL_INPUTS[key] if n in bsdf.inputs), None)
            if socket is None:
                raise JobError("overrides.materials.%s.%s: this Blender's Principled BSDF has no such input"
                               % (name, key))
            if isinstance(value, list) and len(value) == 3:
                value = value + [1.0]
            touched.set(socket, "default_value", value)
    for name, body in overrides.get("texts", {}).items():
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "FONT":
            raise JobError("overrides.texts.%s: no text object named %r" % (name, name))
        touched.set(obj.data, "body", body)
    for name, path in images.items():
        image = bpy.data.images.get(name)
        if image is None:
            raise JobError("overrides.images.%s: no image named %r" % (name, name))
        touched.restorable = False  # an unpacked, reloaded image cannot be put back: the next job reopens
        if image.packed_file is not None:
            image.unpack(method="REMOVE")
        image.source = "FILE"
        image.filepath = path
        image.reload()
    for name, changes in overrides.get("collections", {}).items():
        coll = bpy.data.collections.get(name)
        if coll is None:
            raise JobError("overrides.collections.%s: no collection named %r" % (name, name))
        if coll.hide_render != (not changes["visible"]):
            touched.resync = True
        touched.set(coll, "hide_render", not changes["visible"])


def open_scene(job, confinement):
    """Opens the job's .blend with its Python disabled, pointing the paths it writes to into the job's folder
    as it loads, before Blender evaluates anything in it (a simulation writes its cache then)."""
    failures = []

    @bpy.app.handlers.persistent
    def confine_on_load(*_args):
        try:
            confinement.redirect_all(job[K.RENDER].get("scene") or bpy.context.scene.name)
        except Exception as error:  # raised below: a handler's exception would only be printed
            failures.append(error)

    bpy.app.handlers.load_post.append(confine_on_load)
    try:
        bpy.ops.wm.open_mainfile(filepath=job[K.SCENE_FILE], load_ui=False, use_scripts=False)
    finally:
        bpy.app.handlers.load_post.remove(confine_on_load)
    if failures:
        raise failures[0]


def main():
    run(read_job(), Touched())


def scene_key(job):
    """What a kept scene must match for a job to render on it: the same file (by SHA-256), scene, engine and
    devices; None when the job's scene is not to be kept (``K.SCENE_KEY`` is None)."""
    if not job.get(K.SCENE_KEY):
        return None
    render = job[K.RENDER]
    return (job[K.SCENE_KEY], render.get("scene") or "", render.get("engine"), render.get("device"),
            job.get(K.DEVICE_TYPE), tuple(job.get(K.GPU_INDICES) or ()))


def run(job, touched, reuse=False, resync=False):
    """Renders one job in this Blender. It opens the job's .blend from scratch (Python off); with ``reuse``
    (``warm.py``: the file loaded is this job's scene, put back as it was loaded) it renders on it instead.
    Every value the job changes is noted in ``touched``; ``resync``: the job before changed what Cycles'
    persistent data does not follow. The cold mode runs it once per process; ``warm.py`` once per job in a
    process that stays open."""
    render = job[K.RENDER]
    out_dir = job[K.OUTPUT_DIR]
    confinement = confine.Confinement(job[K.JOB_DIR], out_dir, emit, touched)
    if reuse:
        confinement.redirect_all(render.get("scene") or bpy.context.scene.name)
    else:
        open_scene(job, confinement)
    flush = _c_stdout_flusher()
    bpy.app.handlers.render_stats.append(flush)
    touched.undo(lambda: bpy.app.handlers.render_stats.remove(flush))
    scene = pick_scene(render)
    # Cycles keeps what it built (the BVH, images) between frames and, in a warm Blender, between jobs on the
    # same scene; only what changed is synced again. Not put back after the job: turning it off frees what
    # Cycles kept.
    scene.render.use_persistent_data = True

    engine = set_engine(scene, render["engine"], touched)
    device, gpus = ("CPU", [])
    if engine == "CYCLES":
        device, gpus = enable_cycles_device(scene, render.get("device", "AUTO"), touched, job.get(K.DEVICE_TYPE),
                                            job.get(K.GPU_INDICES))
        set_denoising(scene, render.get("denoise"), device, touched)
    set_samples(scene, engine, render.get("samples"), touched)

    apply_overrides(scene, job.get(K.OVERRIDES, {}), job.get(K.IMAGES, {}), touched)
    lacking = missing.report(emit)
    if lacking and job.get(K.STRICT):
        listed = ", ".join("%s %r" % found for found in lacking[:5])
        raise JobError("strict: the scene lacks %d file(s): %s%s; nothing was rendered"
                       % (len(lacking), listed, " and more" if len(lacking) > 5 else ""))

    if render.get("camera"):
        camera = bpy.data.objects.get(render["camera"])
        if camera is None or camera.type != "CAMERA":
            raise JobError("render.camera: no camera object named %r" % render["camera"])
        touched.set(scene, "camera", camera)
    if scene.camera is None and renders_through_a_camera(scene):
        raise JobError("render.camera: the scene has no active camera and the job names none")

    if render.get("resolution"):
        touched.set(scene.render, "resolution_x", render["resolution"][0])
        touched.set(scene.render, "resolution_y", render["resolution"][1])
    touched.set(scene.render, "resolution_percentage", render.get("resolution_percentage", 100))

    fmt = render["format"]
    if fmt not in K.FILE_FORMATS:
        raise JobError("render.format: %r is not one of %s" % (fmt, ", ".join(K.FILE_FORMATS)))
    settings = scene.render.image_settings
    before = (settings.file_format, settings.color_mode, settings.color_depth)

    def put_back():  # the format first: setting one changes the colour mode and depth it allows (RGBA, JPEG)
        settings.file_format = before[0]
        settings.color_mode, settings.color_depth = before[1:]
    touched.undo(put_back)
    if hasattr(settings, "media_type"):  # Blender 5.0: a movie's format is under VIDEO
        touched.set(settings, "media_type", "VIDEO" if fmt == "FFMPEG" else "IMAGE")
    if settings.file_format != fmt:
        settings.file_format = fmt
    if fmt == "FFMPEG":
        touched.set(scene.render.ffmpeg, "format", "MPEG4")
        touched.set(scene.render.ffmpeg, "codec", "H264")

    if touched.resync or resync:  # drops what Cycles kept: it builds the scene anew for this job
        scene.render.use_persistent_data = False
        scene.render.use_persistent_data = True

    frames = job[K.FRAMES]
    samples = current_samples(scene, engine)
    emit(K.JOB_START, engine=engine, device=device, gpus=gpus, frames=frames, samples=samples,
         width=scene.render.resolution_x * scene.render.resolution_percentage // 100,
         height=scene.render.resolution_y * scene.render.resolution_percentage // 100,
         blender=bpy.app.version_string, reused=reuse)

    path, frame = scene.render.filepath, scene.frame_current  # each frame sets both: put back after the job
    touched.undo(lambda: setattr(scene.render, "filepath", path))
    touched.undo(lambda: scene.frame_set(frame))
    if fmt == "FFMPEG":
        render_movie(scene, frames, out_dir, touched)
    else:
        render_stills(scene, frames, out_dir)
    escaped = confinement.escaped()
    if escaped:
        raise JobError("scene: the render wrote outside the job's folder (%s); homefarm renders no scene that "
                       "does this" % ", ".join(escaped[:5]))
    emit(K.JOB_DONE, frames=len(frames))


def report_compositor_outputs(out_dir, frame, known):
    """The scene's File Output nodes wrote into the output folder too: those files are outputs as well."""
    for name in confine.new_outputs(out_dir, known):
        known.add(name)
        emit(K.FILE_SAVED, frame=frame, path=os.path.join(out_dir, name))


def render_stills(scene, frames, out_dir):
    known = set()
    for index, frame in enumerate(frames):
        started = time.monotonic()
        emit(K.FRAME_START, frame=frame, index=index, count=len(frames))
        scene.frame_set(frame)
        # write_still takes the path literally ('#' is not replaced), so each frame gets its own.
        scene.render.filepath = os.path.join(out_dir, K.FRAME_STEM % frame)
        path = scene.render.filepath + scene.render.file_extension
        bpy.ops.render.render(write_still=True, scene=scene.name)
        if not os.path.isfile(path):
            raise JobError("frame %d: Blender reported no error but wrote no file at %s" % (frame, path))
        emit(K.FILE_SAVED, frame=frame, path=path)
        report_compositor_outputs(out_dir, frame, known)
        emit(K.FRAME_DONE, frame=frame, index=index, count=len(frames),
             seconds=round(time.monotonic() - started, 3))


def render_movie(scene, frames, out_dir, touched):
    if frames != list(range(frames[0], frames[-1] + 1)):
        raise JobError("render.frames: FFMPEG output needs one contiguous range, not %s" % frames)
    start, end = scene.frame_start, scene.frame_end

    def put_back():  # each bound clamps the other: the start first, as start <= end held before
        scene.frame_start, scene.frame_end = start, end
    touched.undo(put_back)
    scene.frame_start, scene.frame_end = frames[0], frames[-1]
    scene.render.filepath = os.path.join(out_dir, K.MOVIE_STEM)
    done = []

    def frame_written(scene_, *args):
        # Called after each frame of the animation is written into the movie.
        emit(K.FRAME_DONE, frame=scene_.frame_current, index=len(done), count=len(frames))
        done.append(scene_.frame_current)

    bpy.app.handlers.render_write.append(frame_written)
    emit(K.FRAME_START, frame=frames[0], index=0, count=len(frames))
    bpy.ops.render.render(animation=True, scene=scene.name)
    bpy.app.handlers.render_write.remove(frame_written)
    path = scene.render.frame_path(frame=frames[0])
    if not os.path.isfile(path):
        raise JobError("render.format: FFMPEG wrote no movie at %s" % path)
    if len(done) != len(frames):
        raise JobError("render.format: the movie has %d of %d frames" % (len(done), len(frames)))
    emit(K.FILE_SAVED, frame=frames[0], path=path)
    report_compositor_outputs(out_dir, frames[0], set())


def _failed():
    """Blender's executable exits with --python-exit-code when the script raises; Blender as a Python module
    (no executable: ``bpy.app.binary_path`` is empty) exits with the same code here."""
    if bpy.app.binary_path:
        raise
    import traceback
    traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()
    os._exit(K.SCRIPT_EXIT_CODE)


if __name__ == "__main__":
    try:
        main()
    except JobError as error:
        emit(K.ERROR, message=str(error), kind="job")
        _failed()
    except Exception as error:  # Reported, then re-raised so --python-exit-code fails the run.
        emit(K.ERROR, message="%s: %s" % (type(error).__name__, error), kind="internal")
        _failed()
    if not bpy.app.binary_path:
        sys.stdout.flush()
        os._exit(0)  # a module's Blender ends at once: no teardown of what Cycles kept
