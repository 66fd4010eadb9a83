"""A warm Blender: renders homefarm jobs one after another in one process, so a small job skips start-up and a
job on the scene the job before rendered skips loading it and, with Cycles' persistent data, rebuilding it.

Started by the worker as

    blender -b --factory-startup -Y --python warm.py

It says ``warm_ready``, then reads one job file's path per line on stdin and renders it with
``render_job.run``, the very code a cold Blender runs. A job's .blend is opened from scratch with its Python
disabled, which drops everything of the previous job (its data, images, caches and the handlers it did not mark
persistent; none of ours are) — unless the job renders the scene the previous job left loaded:

- the previous job ended well, and every value it changed was put back as the file was loaded (``Touched``:
  overrides, render settings, confined paths, the frame); a job that replaced an image cannot be put back;
- the same file by SHA-256 (the worker names it only for a .blend the owner lets it keep, ``K.SCENE_KEY``),
  the same scene, engine and devices;
- the file's own Python was not blocked when it was loaded (``bpy.app.autoexec_fail``): such a scene is
  always opened anew.

Anything else, and any failure, opens the file again. After each job it says ``job_end`` (ok or not) and waits
for the next. An empty line or the end of stdin ends the process.
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract as K  # noqa: E402
import render_job  # noqa: E402

import bpy  # noqa: E402


class Kept:
    """The scene this process holds for the next job, put back as it was loaded."""

    def __init__(self):
        self.key = None
        self.resync = False  # the job before changed (and put back) what Cycles' persistent data misses

    def reusable(self, key):
        return key is not None and key == self.key

    def keep(self, key, touched):
        """After a job that ended well: puts back what it changed, and keeps the scene if it may be reused."""
        self.key = None
        try:
            touched.restore()
        except Exception:  # the job rendered; the next one opens the file anew
            traceback.print_exc(file=sys.stdout)
            return
        if key is not None and touched.restorable and not bpy.app.autoexec_fail:
            self.key = key
            self.resync = touched.resync

    def drop(self):
        self.key = None
        self.resync = False


def render(job, kept):
    """Renders one job, on the scene ``kept`` holds where it may; returns whether it did. Raises as
    ``render_job.run`` does, and then nothing is kept."""
    key = render_job.scene_key(job)
    reuse, resync = kept.reusable(key), kept.resync
    kept.drop()  # until this job ends well
    touched = render_job.Touched()
    render_job.run(job, touched, reuse=reuse, resync=reuse and resync)
    kept.keep(key, touched)
    return reuse


def serve():
    K.emit(K.WARM_READY, blender=bpy.app.version_string, pid=os.getpid())
    kept = Kept()
    for line in sys.stdin:
        path = line.strip()
        if not path:
            break
        ok = False
        try:
            with open(path, encoding="utf-8") as handle:
                render(json.load(handle), kept)
            ok = True
        except render_job.JobError as error:
            traceback.print_exc(file=sys.stdout)  # in the job's log, as a cold Blender prints it
            K.emit(K.ERROR, message=str(error), kind="job")
        except Exception as error:  # reported; the process goes on to the next job
            traceback.print_exc(file=sys.stdout)
            K.emit(K.ERROR, message="%s: %s" % (type(error).__name__, error), kind="internal")
        K.emit(K.JOB_END, ok=ok)


if __name__ == "__main__":
    serve()
