"""An installed homefarm, end to end, as its owner would meet it: serve, sign in, render, pause, resume.

    python installer/smoke.py PATH_TO_HOMEFARM_CLI --blend resources/sample_scene.blend

PATH_TO_HOMEFARM_CLI is the installed console program (``homefarm-cli.exe`` on Windows) or, from a checkout,
``.venv/bin/homefarm``. The script starts ``serve`` on a loopback port, signs in with the worker token
(``login --token-stdin``, into the OS keyring), starts ``run``, submits a long render, pauses the worker while
Blender renders (the stop path a game takes), checks that Blender is gone and the job back in the queue,
resumes, and waits for the job to be done. It uses only the standard library and the program under test;
CI runs it on Windows against the installed setup (.github/workflows/ci.yml).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

RENDER = {"engine": "CYCLES", "samples": 4000, "resolution": [160, 90], "frames": "1", "format": "PNG",
          "device": "CPU"}


def api(url: str, token: str, method: str = "GET", body=None, raw: bytes | None = None) -> dict:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}"})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if raw is not None:
        request.add_header("X-Content-SHA256", hashlib.sha256(raw).hexdigest())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def wait(what: str, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            print(f"ok: {what}", flush=True)
            return
        time.sleep(0.2)
    raise SystemExit(f"FAILED: {what} (after {timeout:g} s)")


def blenders(home: Path) -> list[int]:
    """Blender processes rendering under this run's folder (any OS, without psutil)."""
    if sys.platform == "win32":
        out = subprocess.run(["powershell", "-NoProfile", "-Command",
                              "Get-CimInstance Win32_Process -Filter \"Name like 'blender%'\" | "
                              "ForEach-Object { \"$($_.ProcessId) $($_.CommandLine)\" }"],
                             capture_output=True, text=True).stdout
    else:
        out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if str(home) in line and "blender" in line.lower()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("--blend", required=True, help="the scene to render, e.g. resources/sample_scene.blend")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="homefarm-smoke-"))
    env = {**os.environ, "HOMEFARM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    try:
        server = subprocess.Popen([args.cli, "serve", "--port", "0", "--data-dir", str(home / "server")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        procs.append(server)
        text = ""
        for line in server.stdout:
            text += line
            if line.startswith("homefarm job server on "):
                break
        url = re.search(r"on (http://\S+)", text).group(1)
        tokens = dict(re.findall(r"(web app|worker)\s+token.*?:\s+(\S+)", text))
        threading.Thread(target=server.stdout.read, daemon=True).start()
        print(f"ok: serve on {url}", flush=True)

        login = subprocess.run([args.cli, "login", "--server", url, "--token-stdin"], input=tokens["worker"] + "\n",
                               capture_output=True, text=True, env=env, timeout=60)
        if login.returncode != 0:
            raise SystemExit(f"FAILED: login: {login.stderr}")
        print("ok: signed in; the token is in the OS keyring", flush=True)

        data = Path(args.blend).read_bytes()
        asset = api(f"{url}/api/v1/assets", tokens["web app"], "PUT", raw=data)
        job = api(f"{url}/api/v1/jobs", tokens["web app"], "POST",
                  {"scene": {"url": asset["url"], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
                   "render": RENDER})
        worker = subprocess.Popen([args.cli, "run", "--max-jobs", "1"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env)
        procs.append(worker)
        threading.Thread(target=worker.stdout.read, daemon=True).start()
        view = lambda: api(f"{url}/api/v1/jobs/{job['id']}", tokens["web app"])  # noqa: E731
        wait("the worker renders the job", lambda: view()["state"] == "leased" and blenders(home), 180)

        subprocess.run([args.cli, "pause", "1h"], env=env, check=True, timeout=60)
        wait("pausing ends Blender and gives the job back", lambda: not blenders(home)
             and view()["state"] == "queued", 30)
        if worker.poll() is not None:
            raise SystemExit("FAILED: the worker ended on the pause")
        print("ok: the worker lives on", flush=True)

        api(f"{url}/api/v1/jobs/{job['id']}/cancel", tokens["web app"], "POST", {})  # the long one is proven
        small = api(f"{url}/api/v1/jobs", tokens["web app"], "POST",
                    {"scene": {"url": asset["url"], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
                     "render": {**RENDER, "samples": 4, "resolution": [64, 36]}})
        subprocess.run([args.cli, "resume"], env=env, check=True, timeout=60)
        wait("after resuming, a job is rendered and done",
             lambda: api(f"{url}/api/v1/jobs/{small['id']}", tokens["web app"])["state"] == "done", 300)
        worker.wait(60)
        print("smoke test passed", flush=True)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    sys.exit(main())
