"""A warm Blender: renders homefarm jobs one after another in one process, so a small job skips start-up.

Started by the worker as

    blender -b --factory-startup -Y --python warm.py

It says ``warm_ready``, then reads one job file's path per line on stdin and renders it with
``render_job.run``, the very code a cold Blender runs: the job's .blend is opened from scratch with its
Python disabled, which drops everything of the previous job (its data, images, caches and the handlers it
did not mark persistent; none of ours are). After each job it says ``job_end`` (ok or not) and waits for the
next. An empty line or the end of stdin ends the process.
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract as K  # noqa: E402
import render_job  # noqa: E402

import bpy  # noqa: E402


def serve():
    K.emit(K.WARM_READY, blender=bpy.app.version_string, pid=os.getpid())
    for line in sys.stdin:
        path = line.strip()
        if not path:
            break
        ok = False
        try:
            with open(path, encoding="utf-8") as handle:
                render_job.run(json.load(handle))
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
