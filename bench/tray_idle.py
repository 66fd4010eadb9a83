"""What the tray costs while it waits: CPU and memory of `homefarm` (the tray, signed in, its worker waiting
in its long poll) on Xvfb with a tray host, beside the headless worker (`homefarm run`) waiting the same way.

Both run against a real `homefarm serve` on loopback with no jobs, each measured over the same span after a
settling time; CPU is the process tree's user+system time over the span, in % of one core; memory is the
tree's resident set at the end. The headless worker is the baseline: the tray's own share is the difference.

    python bench/tray_idle.py [--seconds 60] [--settle 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from support.server_process import start_server  # noqa: E402
from tray_start import start_display  # noqa: E402


def tree_figures(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, resident bytes) of a process and its children."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    cpu = rss = 0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return cpu, rss


def measure(command: list[str], env: dict, settle: float, seconds: float) -> tuple[float, float]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise SystemExit(f"{command[-1]} exited early ({proc.returncode})")
        cpu_before, _ = tree_figures(proc.pid)
        started = time.monotonic()
        time.sleep(seconds)
        cpu_after, rss = tree_figures(proc.pid)
        return (cpu_after - cpu_before) / (time.monotonic() - started) * 100, rss / 2**20
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def signed_in_env(home: Path, display: str, server) -> dict:
    """The environment of a `homefarm` on ``display`` with its own home, signed in to ``server`` (its token in
    the tests' file keyring)."""
    env = {**os.environ, "HOMEFARM_HOME": str(home), "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
           "PYTHON_KEYRING_BACKEND": "support.keyring_file_backend.FileKeyring",
           "HOMEFARM_TEST_KEYRING": str(home / "keyring.json"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "worker_app", "login", "--server", server.url, "--token-stdin"],
                   input=server.worker_token + "\n", env=env, check=True, capture_output=True, text=True)
    return env


@contextlib.contextmanager
def server_and_display():
    """A scratch folder, `homefarm serve` on loopback and an X display with a tray host, for a bench's trays."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = start_server(tmp / "server", quiet=True)
        display, helpers = start_display()
        try:
            yield tmp, server, display
        finally:
            server.stop()
            for helper in helpers:
                helper.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=10, help="seconds after start before measuring")
    args = parser.parse_args()
    with server_and_display() as (tmp, server, display):
        results = {}
        for name, command in (("headless worker", [sys.executable, "-m", "worker_app", "run"]),
                              ("tray", [sys.executable, "-m", "worker_app"])):
            env = signed_in_env(tmp / name.replace(" ", "-"), display, server)
            results[name] = measure(command, env, args.settle, args.seconds)
    for name, (cpu, rss) in results.items():
        print(f"{name:<16} CPU {cpu:.2f} % of one core over {args.seconds:g} s, resident {rss:.0f} MiB")
    (tray_cpu, tray_rss), (base_cpu, base_rss) = results["tray"], results["headless worker"]
    print(f"the tray's own share: CPU {tray_cpu - base_cpu:+.2f} points, memory {tray_rss - base_rss:+.0f} MiB "
          f"(ratio {tray_rss / base_rss:.2f}x memory)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
