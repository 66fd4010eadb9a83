"""The contract between homefarm's worker and its scripts inside Blender, in one place.

Both sides import this file: the scripts in this folder (from Blender's own Python, so it imports nothing but
the standard library) and the worker (as ``worker_app.blender_scripts.contract``). A key, an event name or
an output name changes here or nowhere.
"""

import json
import sys
import time

# Every line the scripts print for the worker starts with this, followed by one JSON object.
EVENT_PREFIX = "@homefarm "
# What --python-exit-code makes Blender return when a script raises.
SCRIPT_EXIT_CODE = 3



def emit(event, **fields):
    """Prints one event for the worker (from inside Blender)."""
    fields["event"] = event
    fields["t"] = round(time.time(), 3)
    sys.stdout.write(EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


# -- the job file (JSON) the worker writes and render_job.py reads ------------------------------
SCENE_FILE = "scene_file"  # the .blend to open (render_job.py opens it, with its Python disabled)
RENDER = "render"  # the job's render settings, as validated by the protocol
FRAMES = "frames"  # the frame numbers to render, in order
OUTPUT_DIR = "output_dir"  # the only folder the render writes into
OVERRIDES = "overrides"  # template parameters: objects, materials, texts, collections
IMAGES = "images"  # image name -> a local file the worker downloaded
DEVICE_TYPE = "device_type"  # a Cycles backend the owner chose, or None
GPU_INDICES = "gpu_indices"  # the GPUs the owner chose, or []
JOB_DIR = "job_dir"  # the job's own folder: nothing is written outside it
# The scene's SHA-256 where a warm Blender may keep it loaded for the next job on the same scene (a .blend, the
# owner allows it); None: opened from scratch for each job, as always
SCENE_KEY = "scene_key"
STRICT = "strict"  # a job that fails, before any frame renders, when its scene lacks a file it names

# -- events (the "event" field of each line) ----------------------------------------------------
JOB_START = "job_start"
FRAME_START = "frame_start"
FRAME_DONE = "frame_done"
FILE_SAVED = "file_saved"  # path: a finished output, ready to upload
JOB_DONE = "job_done"
WARNING = "warning"  # message: something the web app should know (a missing texture)
ERROR = "error"  # message, kind ("job": the job's fault; "internal": ours)
REDIRECTED = "redirected"  # what, from, to: a path the scene named, pointed into the job's folder
MISSING = "missing"  # kind, path: a file the scene needs that is not there (library, image, font, cache, clip)
WARM_READY = "warm_ready"  # warm.py is up and waits for a job file's path on stdin
JOB_END = "job_end"  # ok: warm.py finished a job (done or failed) and waits for the next
DEVICES = "devices"  # backend, devices: what probe_devices.py found
PROBE_DONE = "probe_done"

# -- outputs ------------------------------------------------------------------------------------
FILE_FORMATS = ("PNG", "JPEG", "OPEN_EXR", "FFMPEG")
OUTPUT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "OPEN_EXR": ".exr"}
FRAME_STEM = "frame_%04d"  # a still frame's file, before Blender adds the extension
COMPOSITOR_PREFIX = "compositor_"  # files of the scene's File Output nodes, redirected into the output folder
MOVIE_STEM = "movie_"  # a movie's file; Blender appends the frame range and extension


def frame_output_name(frame, fmt):
    """The file name of a still frame; None for movies."""
    ext = OUTPUT_EXTENSIONS.get(fmt)
    return (FRAME_STEM % frame) + ext if ext else None


def is_movie(name):
    return name.startswith(MOVIE_STEM)


# -- devices and materials ----------------------------------------------------------------------
# Best first: the order in which Cycles' GPU backends are tried when the job asks for "GPU" or "AUTO".
GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
# Principled BSDF sockets by the job's key; the first name that exists wins ("Emission" before 4.0).
MATERIAL_INPUTS = {
    "base_color": ("Base Color",),
    "metallic": ("Metallic",),
    "roughness": ("Roughness",),
    "emission": ("Emission Color", "Emission"),
    "emission_strength": ("Emission Strength",),
}
