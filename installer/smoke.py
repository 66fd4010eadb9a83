"""An installed homefarm, end to end, as its owner would meet it: serve, sign in, render, pause, resume.

    python installer/smoke.py PATH_TO_HOMEFARM_CLI --server-python PYTHON --blend resources/sample_scene.blend

PATH_TO_HOMEFARM_CLI is the installed console program (``homefarm-cli.exe`` on Windows) or, from a checkout,
``.venv/bin/homefarm``. The PC's bundle has no job server in it (that is ``homefarm[server]``, another install),
so the server runs from PYTHON, a Python with ``homefarm[server]`` installed (CI: the build's virtual
environment); only the worker is the program under test. The script starts ``serve`` on a loopback port,
signs in with the worker token (``login --token-stdin``, into the OS keyring), starts ``run``, submits a long
render, pauses the worker while Blender renders (the stop path a game takes), checks that Blender is gone and
the job back in the queue, resumes, and waits for the job to be done. It uses only the standard library and
the program under test; CI runs it on Windows against the installed setup (.github/workflows/ci.yml).
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


def blenders(home: Path) -> list[int]:
    """Blender processes rendering under this run's folder (any OS, without psutil)."""
    if sys.platform == "win32":
        out = subprocess.run(["powershell", "-NoProfile", "-Command",
                              "Get-CimInstance Win32_Process -Filter \"Name like 'blender%'\" | "
                              "ForEach-Object { \"$($_.ProcessId) $($_.CommandLine)\" }"],
                             capture_output=True, text=True).stdout
    else:
        out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    folder = os.path.normcase(str(home))  # Windows compares paths without case
    return [int(line.split()[0]) for line in out.splitlines()
            if folder in os.path.normcase(line) and "blender" in line.lower()]


class Seen:
    """What each program printed, kept so that a failure shows it (a smoke run far away is read from its log)."""

    def __init__(self):
        self.lines: dict[str, list[str]] = {}

    def follow(self, name: str, stream) -> None:
        lines = self.lines.setdefault(name, [])
        threading.Thread(target=lambda: lines.extend(stream), name=f"read-{name}", daemon=True).start()

    def dump(self) -> None:
        for name, lines in self.lines.items():
            print(f"--- what {name} printed (last 60 lines) ---", flush=True)
            print("".join(lines[-60:]).rstrip() or "(nothing)", flush=True)


def fail(what: str, seen: Seen, detail: str = "") -> SystemExit:
    print(f"FAILED: {what}" + (f"\n{detail}" if detail else ""), flush=True)
    seen.dump()
    return SystemExit(f"FAILED: {what}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cli", help="the installed homefarm-cli (the worker under test)")
    parser.add_argument("--server-python", required=True,
                        help="a Python with homefarm[server] installed, which runs the job server")
    parser.add_argument("--blend", required=True, help="the scene to render, e.g. resources/sample_scene.blend")
    args = parser.parse_args()
    # The worker resolves HOMEFARM_HOME; so does this script, or the folder names never match: on Windows the
    # temp folder can come as a short 8.3 name, C:\Users\RUNNER~1\... (actions/runner-images#712).
    home = Path(os.path.realpath(tempfile.mkdtemp(prefix="homefarm-smoke-")))
    env = {**os.environ, "HOMEFARM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    seen = Seen()
    url, tokens = "", {}

    def wait(what: str, condition, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                print(f"ok: {what}", flush=True)
                return
            time.sleep(0.2)
        detail = f"Blender processes under {home}: {blenders(home) or 'none'}"
        if job_id:
            detail += f"\nthe job: {api(f'{url}/api/v1/jobs/{job_id}', tokens['web app'])}"
        raise fail(f"{what} (after {timeout:g} s)", seen, detail)

    job_id = None
    try:
        # --print-tokens: a first start writes its tokens to a private file unless asked to print them.
        server = subprocess.Popen([args.server_python, "-m", "worker_app", "serve", "--port", "0",
                                   "--data-dir", str(home / "server"), "--print-tokens"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        procs.append(server)
        text = ""
        for line in server.stdout:
            text += line
            if line.startswith("homefarm job server on "):
                break
        found = re.search(r"on (http://\S+)", text)
        tokens = dict(re.findall(r"(web app|worker)\s+token.*?:\s+(\S+)", text))
        if found is None or set(tokens) != {"web app", "worker"}:
            try:
                code = server.wait(10)  # its output ended: it has exited, or is about to
            except subprocess.TimeoutExpired:
                code = "none yet"
            raise fail(f"the job server did not start (exit {code})", seen, text.rstrip())
        url = found.group(1)
        seen.follow("the job server", server.stdout)
        print(f"ok: serve on {url}", flush=True)

        login = subprocess.run([args.cli, "login", "--server", url, "--token-stdin"], input=tokens["worker"] + "\n",
                               capture_output=True, text=True, env=env, timeout=60)
        if login.returncode != 0:
            raise fail(f"login exited with {login.returncode}", seen, login.stdout + login.stderr)
        print("ok: signed in; the token is in the OS keyring", flush=True)

        data = Path(args.blend).read_bytes()
        asset = api(f"{url}/api/v1/assets", tokens["web app"], "PUT", raw=data)
        scene = {"url": asset["url"], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        job_id = api(f"{url}/api/v1/jobs", tokens["web app"], "POST", {"scene": scene, "render": RENDER})["id"]
        worker = subprocess.Popen([args.cli, "run", "--max-jobs", "1"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env)
        procs.append(worker)
        seen.follow("the worker", worker.stdout)
        view = lambda: api(f"{url}/api/v1/jobs/{job_id}", tokens["web app"])  # noqa: E731
        wait("the worker renders the job", lambda: view()["state"] == "leased" and blenders(home), 180)

        subprocess.run([args.cli, "pause", "1h"], env=env, check=True, timeout=60)
        wait("pausing ends Blender and gives the job back", lambda: not blenders(home)
             and view()["state"] == "queued", 30)
        if worker.poll() is not None:
            raise fail(f"the worker ended on the pause (exit {worker.returncode})", seen)
        print("ok: the worker lives on", flush=True)

        api(f"{url}/api/v1/jobs/{job_id}/cancel", tokens["web app"], "POST", {})  # the long one is proven
        job_id = api(f"{url}/api/v1/jobs", tokens["web app"], "POST",
                     {"scene": scene, "render": {**RENDER, "samples": 4, "resolution": [64, 36]}})["id"]
        subprocess.run([args.cli, "resume"], env=env, check=True, timeout=60)
        wait("after resuming, a job is rendered and done", lambda: view()["state"] == "done", 300)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            raise fail("the worker did not end after its one job (--max-jobs 1)", seen) from None
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
