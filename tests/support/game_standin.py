"""A stand-in for a game: this Python interpreter, copied under the game's executable name, sleeping.

A copy of the interpreter runs on every OS the suite runs on (a copy of ``sleep`` would not on Windows); the
guard sees a process with the game's name, below the folder it was put in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def start_game(folder: Path, name: str, seconds: int = 120) -> subprocess.Popen:
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    shutil.copy(base, exe)
    if sys.platform == "win32":
        for dll in base.parent.glob("*.dll"):  # python3XX.dll and the C runtime beside python.exe
            shutil.copy(dll, folder)
    env = {**os.environ, "PYTHONHOME": sys.base_prefix}
    return subprocess.Popen([str(exe), "-c", f"import time; time.sleep({seconds})"], env=env,
                            stdin=subprocess.DEVNULL)
