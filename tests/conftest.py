import os
import uuid
import sys
from pathlib import Path

# Qt widgets are tested offscreen, except the one real-tray test, which starts its own X server.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from worker_app.render.discovery import BlenderNotFound, find_blender
from worker_app.server import JobServer

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # the support package, for every tier

from support.harness import Served  # noqa: E402 - after the path is set


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


@pytest.fixture(scope="session")
def bpy_blender(tmp_path_factory):
    """Blender 5.0 as homefarm installs it for a newer scene: PyPI's bpy in a virtual environment of its own
    (render/installs.py), made from pip's cache that `make bpy` filled."""
    from support.engines import need
    from support.harness import ROOT
    from worker_app.render.installs import install_module

    need(str(ROOT / ".venv-bpy") if (ROOT / ".venv-bpy" / ".installed").exists() else None, "PyPI's bpy", "make bpy")
    return install_module(tmp_path_factory.mktemp("data"), "5.0")


@pytest.fixture(scope="session")
def bpy45_blender(tmp_path_factory):
    """Blender 4.5 LTS as homefarm installs it, from pip's cache that `make bpy` filled."""
    from support.engines import need
    from support.harness import ROOT
    from worker_app.render.installs import install_module

    need(str(ROOT / ".venv-bpy") if (ROOT / ".venv-bpy" / ".installed").exists() else None, "PyPI's bpy", "make bpy")
    return install_module(tmp_path_factory.mktemp("data"), "4.5")


@pytest.fixture(params=["system", "bpy", "bpy45"])
def any_blender(request):
    """The system's Blender (Debian's 3.4, an executable), then Blender 5.0 and 4.5 installed as Python modules."""
    return request.getfixturevalue({"system": "blender", "bpy": "bpy_blender", "bpy45": "bpy45_blender"}[
        request.param])


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


# -- real database servers, one of each per session; each test gets an empty database ------------------

@pytest.fixture(scope="session")
def postgresql_engine():
    from support.engines import Engine
    engine = Engine.start("postgresql")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def mariadb_engine():
    from support.engines import Engine
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
    from support.engines import SeaweedS3
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
