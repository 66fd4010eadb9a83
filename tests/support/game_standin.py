"""A stand-in for a game: this Python interpreter, copied under the game's executable name, sleeping.

A copy of the interpreter runs on every OS the suite runs on (a copy of ``sleep`` would not on Windows); the
guard sees a process with the game's name, below the folder it was put in."""

import errno
import os
import shutil
import subprocess
import sys
import time
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
    # A child that another thread forked while the copy was open for writing holds that descriptor until it
    # execs, and Linux refuses to run a file open for writing (ETXTBSY): such a child execs within
    # milliseconds, so try again briefly, as Go's os/exec does.
    for attempt in range(50):
        try:
            return subprocess.Popen([str(exe), "-c", f"import time; time.sleep({seconds})"], env=env,
                                    stdin=subprocess.DEVNULL)
        except OSError as error:
            if error.errno != errno.ETXTBSY or attempt == 49:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")
