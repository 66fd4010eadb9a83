"""The same scene again: what a web app's template jobs cost when the warm Blender keeps the scene loaded.

A heavy template scene is made by script (tests/support/make_template_scene.py: by default a million-face
mesh, four packed 2048 px textures, a paint material, a title text, a camera that moves over 10 frames), and
each case runs, interleaved, in four ways, each timed from the web app's submission until the server has the
job done (a reference server in this process on loopback, a worker on a thread):

- bare `blender -b scene.blend -f 1` with the scene's own settings (the baseline; it cannot apply a job's
  changes, which only make a render dearer);
- a homefarm worker with a cold Blender (a process per job);
- a warm Blender that opens the file for each job (`blender.reuse_scene = false`, the warm Blender before the
  kept scene);
- the warm Blender keeping the scene (the default).

Cases: the same job again; the camera moved; the paint's colour; the title's text; all three at once; the 10
frames of the animation (its baselines: ten bare single-frame renders, and one bare `blender -b -a`). Each
job's changes differ from the job before (two values in turn), as a web app's users' choices do.

    python bench/template.py [--runs 5] [--grid 1000] [--texture 2048] [--frames 10] [--device CPU|GPU]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import Farm  # noqa: E402

from worker_app.render.discovery import find_blender  # noqa: E402
from worker_app.render.warm import tree_rss  # noqa: E402

MAKE_SCENE = Path(__file__).resolve().parent.parent / "tests" / "support" / "make_template_scene.py"
CASES = {
    "the same job again": lambda n: {},
    "camera moved": lambda n: {"objects": {"Camera": {"location": [0.5 - n % 2, -9, 4]}}},
    "paint colour": lambda n: {"materials": {"Paint": {"base_color": [0.1, 0.2 + 0.5 * (n % 2), 0.8]}}},
    "title text": lambda n: {"texts": {"Title": ["Blue edition", "Red edition"][n % 2]}},
    "all three": lambda n: {**CASES["camera moved"](n), **CASES["paint colour"](n), **CASES["title text"](n)},
}
WAYS = (("cold", "cold Blender"), ("opened", "warm, file opened each job"), ("kept", "warm, scene kept"))


def bare(blender: str, scene: Path, out: Path, frames: str | None = None) -> float:
    """Bare `blender -b` on the scene with its own settings: frame 1, or ``frames`` ("1-10") as one `-a`."""
    args = ["-s", frames.split("-")[0], "-e", frames.split("-")[1], "-a"] if frames else ["-f", "1"]
    started = time.perf_counter()
    subprocess.run([blender, "-b", "--factory-startup", str(scene), "-o", str(out / "frame_####"), "-F", "PNG",
                    *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grid", type=int, default=1000, help="mesh subdivisions per side (1000: 1 M faces)")
    parser.add_argument("--texture", type=int, default=2048, help="the side of each of four packed textures")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--device", choices=("CPU", "GPU"), default="CPU")
    args = parser.parse_args()
    blender = find_blender("")
    with tempfile.TemporaryDirectory(prefix="homefarm-bench-") as tmp:
        root = Path(tmp)
        scene = root / "template.blend"
        subprocess.run([blender.path, "-b", "--factory-startup", "--python", str(MAKE_SCENE), "--", str(scene),
                        str(args.grid), str(args.texture), str(args.frames)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"Blender {blender.version}, device {args.device}, {args.runs} runs interleaved; scene "
              f"{args.grid * args.grid:,} faces, 4 textures of {args.texture} px, {scene.stat().st_size / 2**20:.0f} MB")
        farms = {"cold": Farm(root / "cold", blender, warm=False, device=args.device, scene=scene),
                 "opened": Farm(root / "opened", blender, warm=True, device=args.device, scene=scene,
                                reuse_scene=False),
                 "kept": Farm(root / "kept", blender, warm=True, device=args.device, scene=scene)}
        render = {"engine": "CYCLES", "frames": "1", "format": "PNG", "device": args.device, "denoise": False,
                  "samples": 4, "resolution": [256, 256]}
        animation = {**render, "frames": f"1-{args.frames}"}
        times: dict[tuple[str, str], list[float]] = {}
        memory: dict[str, int] = {}
        try:
            for farm in farms.values():
                farm.job(render)  # a warm Blender starts with its first job: not measured
            for run in range(args.runs):
                for case, overrides in CASES.items():
                    times.setdefault((case, "bare"), []).append(bare(blender.path, scene, root / "bare"))
                    for way, farm in farms.items():
                        times.setdefault((case, way), []).append(farm.job(render, overrides(run)))
                case = f"{args.frames}-frame animation"
                times.setdefault((case, "bare"), []).append(
                    sum(bare(blender.path, scene, root / "bare") for _ in range(args.frames)))
                times.setdefault((case, "bare -a"), []).append(
                    bare(blender.path, scene, root / "bare", f"1-{args.frames}"))
                for way, farm in farms.items():
                    times.setdefault((case, way), []).append(farm.job(animation, CASES["camera moved"](run)))
            memory = {way: tree_rss(farms[way].worker.warm.proc.pid) for way in ("opened", "kept")
                      if farms[way].worker.warm.running}
        finally:
            for farm in farms.values():
                farm.close()
    for case in [*CASES, f"{args.frames}-frame animation"]:
        base = statistics.median(times[(case, "bare")])
        print(f"{case}:")
        rows = [("bare", "bare blender -b" + (f" -f, {args.frames} times" if "animation" in case else " -f 1"))]
        if "animation" in case:
            rows.append(("bare -a", f"bare blender -b -a, {args.frames} frames"))
        for kind, label in [*rows, *WAYS]:
            values = times[(case, kind)]
            median = statistics.median(values)
            extra = ""
            if kind in ("kept", "opened", "cold") and (case, "bare -a") in times:
                extra = f"  ratio to -a {median / statistics.median(times[(case, 'bare -a')]):5.2f}"
            print(f"  {label:34s} median {median:6.3f} s  min {min(values):6.3f}  max {max(values):6.3f} s  "
                  f"ratio {median / base:5.2f}{extra}")
    for way, label in WAYS[1:]:
        if way in memory:
            print(f"memory of the idle warm Blender after the runs, {label}: {memory[way] / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
