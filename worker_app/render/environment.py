"""How Blender is started: the bundled scripts and the environment it gets."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any


# In the virtual environment of a Blender homefarm installed as a Python module (render/installs.py)
MODULE_MARK = "homefarm-blender.json"


def script_path(name: str) -> Path:
    return Path(str(resources.files("worker_app.blender_scripts").joinpath(name)))


def is_module(blender: str) -> bool:
    """Whether ``blender`` is the Python of a Blender installed as a module (PyPI's bpy), not an executable."""
    return (Path(blender).parent.parent / MODULE_MARK).is_file()


def blender_command(blender: str, script: Path, *args: str, exit_code: int | None = None) -> list[str]:
    """Blender running one of our scripts in the background with factory settings and the scene's Python off;
    for a module install, its Python running the script (``-I``: none of the environment's Python settings).
    ``exit_code``: what a script that raises exits with."""
    if is_module(blender):  # -B: no bytecode written beside the scripts (-I ignores PYTHONDONTWRITEBYTECODE)
        return [blender, "-I", "-B", str(script), "--", *args]
    flags = ["--python-exit-code", str(exit_code)] if exit_code is not None else []
    return [blender, "--background", "--factory-startup", "--disable-autoexec", *flags, "--python", str(script),
            "--", *args]


def without_bundle(path: str, bundle: str, sep: str = os.pathsep) -> str:
    """PATH less the frozen bundle's folders (``_internal`` and below): Windows finds DLLs on PATH, and
    Blender or a driver it loads must not pick up the bundle's Qt, OpenSSL or Python DLLs."""
    if not bundle:
        return path
    root = os.path.normcase(os.path.normpath(bundle))
    kept = []
    for entry in path.split(sep):
        folder = os.path.normcase(os.path.normpath(entry)) if entry else ""
        if folder and (folder == root or folder.startswith(root + os.sep)):
            continue
        kept.append(entry)
    return sep.join(kept)


def blender_env(user_dir: Path | None = None, tmp_dir: Path | None = None) -> dict[str, Any]:
    """The environment Blender starts with: ours, less what would confuse its Python or its Qt-free UI.

    ``user_dir`` becomes Blender's user config and scripts folder, so the owner's own preferences and
    add-ons are neither used nor touched by a render; ``tmp_dir`` its temporary folder.
    """
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"):
        env.pop(key, None)
    for key in [k for k in env if k.startswith("QT_") or k.startswith("QML")]:
        env.pop(key)
    if user_dir is not None:
        for key, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                         ("BLENDER_USER_DATAFILES", "datafiles")):
            (user_dir / sub).mkdir(parents=True, exist_ok=True)
            env[key] = str(user_dir / sub)
        # GPU kernel and shader caches too: kept between jobs, and inside what Blender may write to.
        cache = user_dir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        for key in ("XDG_CACHE_HOME", "CUDA_CACHE_PATH", "OPTIX_CACHE_PATH", "MESA_SHADER_CACHE_DIR",
                    "__GL_SHADER_DISK_CACHE_PATH"):
            env[key] = str(cache)
    if getattr(sys, "frozen", False):
        # A frozen homefarm's bundled libraries must not leak into Blender's process.
        for key in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH"):
            orig = env.pop(key + "_ORIG", None)
            env.pop(key, None)
            if orig:
                env[key] = orig
        env["PATH"] = without_bundle(env.get("PATH", ""), getattr(sys, "_MEIPASS", ""))
    if tmp_dir is not None:
        # Blender's temporary files and its crash report go into the job's folder, not the owner's temp.
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for key in ("TMPDIR", "TEMP", "TMP"):
            env[key] = str(tmp_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


