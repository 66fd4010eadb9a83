"""A Blender script for tests: says one thing, then hangs without a word, as a stuck scene would."""
import time

print("@homefarm {\"event\": \"job_start\"}", flush=True)
time.sleep(120)
