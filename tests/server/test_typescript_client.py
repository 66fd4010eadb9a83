"""The web developer's contract: docs/worker-api.yaml lint-clean under Spectral and Redocly, the TypeScript
client in clients/typescript generated from it and compiled in strict mode, and that client used end to end
against a real server, with a real worker and Blender, on a folder and on S3 storage.

Node and npm are Debian packages (.ci/run installs them); `make test` installs the client's packages."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.harness import ROOT, Served
from support.running import Running
from worker_app.server import JobServer

CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"
QUIET = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_COLOR": "1"}

def _node_major() -> int:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


# The linters and the compiler need Node.js 20 or newer (Redocly's CLI says so).
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not BIN.is_dir() or _node_major() < 20,
    reason="needs Node.js 20 or newer and the client's packages: install nodejs and npm, then make test (npm ci)")


def run(command: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env={**QUIET, **kwargs.pop("env", {})}, capture_output=True,
                          text=True, timeout=kwargs.pop("timeout", 180), **kwargs)


def test_the_document_is_clean_under_spectral_and_redocly():
    spectral = run([BIN / "spectral", "lint", "--fail-severity=hint", "worker-api.yaml"], ROOT / "docs")
    assert spectral.returncode == 0, spectral.stdout + spectral.stderr
    assert "No results with a severity of 'hint' or higher found" in spectral.stdout
    redocly = run([BIN / "redocly", "lint", "worker-api.yaml", "--format=json"], ROOT / "docs")
    assert redocly.returncode == 0, redocly.stdout + redocly.stderr
    report = json.loads(redocly.stdout)
    assert report["problems"] == [] and report["totals"]["errors"] == report["totals"]["warnings"] == 0
    assert report["totals"]["ignored"] == 2, "only what docs/.redocly.lint-ignore.yaml lists, with its reason"


def test_the_committed_types_are_generated_from_the_document(tmp_path):
    fresh = tmp_path / "schema.d.ts"
    made = run(["node", "scripts/generate.mjs", str(fresh)], CLIENT)
    assert made.returncode == 0, made.stderr
    assert fresh.read_text() == (CLIENT / "src" / "schema.d.ts").read_text(), \
        "src/schema.d.ts is stale: run `npm run generate` in clients/typescript"


@pytest.fixture(scope="module")
def built():
    """The client and its end-to-end script compiled with tsc --strict (tsconfig.json)."""
    made = run([BIN / "tsc", "-p", "."], CLIENT)
    assert made.returncode == 0, made.stdout + made.stderr
    return CLIENT / "dist" / "test" / "e2e.js"


def test_the_client_submits_waits_and_downloads_against_a_real_server(built, blender, tmp_path, storage_url):
    server = JobServer(tmp_path / "server", storage_url=storage_url).start()
    served = Served(server)
    running = Running(served, blender, tmp_path, max_jobs=1)
    try:
        e2e = run(["node", str(built)], CLIENT, timeout=240, env={
            "HOMEFARM_URL": served.url, "HOMEFARM_APP_TOKEN": served.app_token,
            "HOMEFARM_SCENE": str(ROOT / "resources" / "sample_scene.blend")})
        assert e2e.returncode == 0, e2e.stdout + e2e.stderr
        result = json.loads(e2e.stdout.strip().splitlines()[-1])
        running.finish()
    finally:
        server.stop()
    assert result["state"] == "done" and result["output"] == "frame_0001.png" and result["size"] > 100
    assert result["refused"] == "422 invalid render.samples", "a bad spec is refused with the field named"
    assert result["render_s"] > 0
    assert server.store.counts() == {"done": 1}, "the retried submission made no second job"
