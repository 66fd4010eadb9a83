import os
import uuid
import sys
import time
from pathlib import Path

# Qt widgets are tested offscreen, except the one real-tray test, which starts its own X server.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from worker_app.app_client import AppClient  # noqa: E402
from worker_app.render.discovery import BlenderNotFound, find_blender
from worker_app.client import WorkerClient
from worker_app.demo import sample_scene
from worker_app.server import JobServer

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

# What only a POSIX system has (signals, sessions, pass_fds, X11); each use says why in its reason.
def posix_only(reason: str):
    return pytest.mark.skipif(sys.platform == "win32", reason=f"POSIX only: {reason}")


# A fast render of the sample scene: tiny, few samples. Blender's start-up dominates.
FAST_RENDER = {"engine": "CYCLES", "samples": 2, "resolution": [64, 36], "frames": "1", "format": "PNG",
               "device": "CPU"}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own homefarm folders, never the real user's."""
    monkeypatch.setenv("HOMEFARM_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def blender():
    try:
        return find_blender(os.environ.get("HOMEFARM_TEST_BLENDER", ""))
    except BlenderNotFound as error:
        pytest.fail(f"these tests render with a real Blender: {error}")


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


def _serving(tmp_path, lease_ttl: float):
    server = JobServer(tmp_path / "server", lease_ttl=lease_ttl).start()
    try:
        yield Served(server)
    finally:
        server.stop()


@pytest.fixture
def served(tmp_path):
    yield from _serving(tmp_path, lease_ttl=30)


@pytest.fixture
def quick_served(tmp_path):
    """A server with a short lease, so heartbeats come every second."""
    yield from _serving(tmp_path, lease_ttl=4)


def wait_until(condition, timeout: float = 30.0, step: float = 0.05, what: str = "condition") -> float:
    """Polls ``condition`` until it holds and returns when it did; AssertionError at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


# -- real database servers, one of each per session; each test gets an empty database ------------------

@pytest.fixture(scope="session")
def postgresql_engine():
    from engines import Engine
    engine = Engine.start("postgresql")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def mariadb_engine():
    from engines import Engine
    engine = Engine.start("mariadb")
    yield engine
    engine.stop()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request, tmp_path):
    """An empty database on each engine the job server supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue(f"{request.param}_engine").new_database()


@pytest.fixture(scope="session")
def seaweed():
    """SeaweedFS's S3 gateway on loopback, one per session; each test takes its own key prefix."""
    from engines import SeaweedS3
    store = SeaweedS3.start()
    yield store
    store.stop()


@pytest.fixture(params=["folder", "s3"])
def storage_url(request, tmp_path, monkeypatch):
    """Where a test server keeps scenes and outputs: its data dir, or a fresh prefix in SeaweedFS's bucket
    (the AWS variables set for the server, as a deployment sets them)."""
    if request.param == "folder":
        return None
    store = request.getfixturevalue("seaweed")
    for key, value in store.env().items():
        monkeypatch.setenv(key, value)
    return store.url(f"t-{uuid.uuid4().hex[:12]}")
