"""Lists the render devices this Blender sees, as one JSON event per backend.

    blender -b --factory-startup -Y --python probe_devices.py

Prints ``@homefarm {"event": "devices", "backend": "CUDA", "devices": [{"name": ..., "type": ...}]}`` for
each Cycles backend this build knows, then ``@homefarm {"event": "probe_done"}``.
"""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract import DEVICES, GPU_BACKENDS, PROBE_DONE, emit  # noqa: E402


def main():
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue  # not in this build
        prefs.get_devices()
        emit(DEVICES, backend=backend, devices=[{"name": d.name, "id": d.id} for d in prefs.devices
                                                  if d.type == backend])
    prefs.compute_device_type = "NONE"
    prefs.get_devices()
    emit(DEVICES, backend="CPU", devices=[{"name": d.name, "id": d.id} for d in prefs.devices
                                            if d.type == "CPU"])
    emit(PROBE_DONE, blender=bpy.app.version_string)


main()
