"""A Blender script for tests: opens the job's scene, then a memory access fault, as a GPU driver's fault would."""
import ctypes
import json
import sys

import bpy

job = json.loads(open(sys.argv[sys.argv.index("--") + 1], encoding="utf-8").read())
bpy.ops.wm.open_mainfile(filepath=job["scene_file"], load_ui=False, use_scripts=False)
print(f"opened {bpy.data.filepath}", flush=True)
ctypes.string_at(0)  # reads address 0: SIGSEGV, and Blender's crash handler writes its log
