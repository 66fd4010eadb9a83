"""Lists the render devices this Blender sees, as one JSON event per backend.

    blender -b --factory-startup -Y --python probe_devices.py

Prints ``@homefarm {"event": "devices", "backend": "CUDA", "devices": [{"name": ..., "type": ...}]}`` for
each Cycles backend this build knows, then ``@homefarm {"event": "probe_done"}``.
"""

import json
import sys

import bpy

EVENT_PREFIX = "@homefarm "
BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue  # not in this build
        prefs.get_devices()
        emit("devices", backend=backend, devices=[{"name": d.name, "id": d.id} for d in prefs.devices
                                                  if d.type == backend])
    prefs.compute_device_type = "NONE"
    prefs.get_devices()
    emit("devices", backend="CPU", devices=[{"name": d.name, "id": d.id} for d in prefs.devices
                                            if d.type == "CPU"])
    emit("probe_done", blender=bpy.app.version_string)


main()
