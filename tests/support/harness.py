"""What the suites share that is no fixture: where the tests live, a fast render, a served job server, waiting
for a condition, a headless box's environment, and a marker for what only POSIX has."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker_app.app_client import AppClient
from worker_app.client import WorkerClient
from worker_app.demo import sample_scene
from worker_app.server import JobServer

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent


# What only a POSIX system has (signals, sessions, pass_fds, X11); each use says why in its reason.
def posix_only(reason: str):
    return pytest.mark.skipif(sys.platform == "win32", reason=f"POSIX only: {reason}")


# A fast render of the sample scene: tiny, few samples. Blender's start-up dominates.
FAST_RENDER = {"engine": "CYCLES", "samples": 2, "resolution": [64, 36], "frames": "1", "format": "PNG",
               "device": "CPU"}


class Served:
    def __init__(self, server: JobServer):
        self.server = server
        self.url = server.url
        self.app_token = server.store.create_token("app", "test")
        self.worker_token = server.store.create_token("worker", "test")
        self.app = AppClient(self.url, self.app_token)

    def worker_client(self) -> WorkerClient:
        return WorkerClient(self.url, self.worker_token)

    def upload_scene(self, path: Path | None = None) -> dict:
        asset = self.app.upload_asset(path or sample_scene())
        return {"url": asset["url"], "sha256": asset["sha256"], "size": asset["size"]}

    def submit(self, render=None, **extra) -> dict:
        spec = {"scene": extra.pop("scene", None) or self.upload_scene(), "render": render or FAST_RENDER}
        spec.update(extra)
        return self.app.submit(spec)


class Remote:
    """A server in its own process (``support.server_process``), seen as ``Served`` sees one in this process."""

    def __init__(self, url: str, app_token: str, worker_token: str):
        self.url, self.app_token, self.worker_token = url, app_token, worker_token
        self.app = AppClient(url, app_token)

    def worker_client(self) -> WorkerClient:
        return WorkerClient(self.url, self.worker_token)

    upload_scene = Served.upload_scene
    submit = Served.submit


def wait_until(condition, timeout: float = 30.0, step: float = 0.05, what: str = "condition") -> float:
    """Polls ``condition`` until it holds and returns when it did; AssertionError at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")



# -- a headless render box: `homefarm` as a process of its own, with no keyring -----------------------------

def box_env(tmp_path, **extra) -> dict:
    """A headless box's environment: its own home, and no keyring backend at all."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HOMEFARM_TOKEN_FILE", "CREDENTIALS_DIRECTORY", "DISPLAY")}
    env.update(HOMEFARM_HOME=str(tmp_path / "box"), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
               PYTHONUNBUFFERED="1", **extra)
    return env


def homefarm(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "worker_app", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def cli_env(tmp_path) -> dict:
    """`homefarm` as a process of its own, its token in the tests' file keyring (no OS keyring on CI)."""
    env = dict(os.environ)
    env["HOMEFARM_HOME"] = str(tmp_path / "home")
    env["PYTHON_KEYRING_BACKEND"] = "support.keyring_file_backend.FileKeyring"
    env["HOMEFARM_TEST_KEYRING"] = str(tmp_path / "test-keyring.json")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(tmp_path, *args, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "worker_app", *args], env=cli_env(tmp_path),
                          input=input, capture_output=True, text=True, timeout=timeout)
