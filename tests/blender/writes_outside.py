"""A Blender script for tests: tries to write the files the job file names, and says what happened."""
import json
import sys

job = json.load(open(sys.argv[sys.argv.index("--") + 1]))
for path in job["try_writing"]:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        print("@homefarm " + json.dumps({"event": "wrote", "path": path}), flush=True)
    except OSError as error:
        print("@homefarm " + json.dumps({"event": "refused", "path": path, "errno": error.errno}), flush=True)
