import pytest

from support.server_process import start_server


@pytest.fixture
def serve(tmp_path):
    """`homefarm serve` in a process of its own, on loopback, with its own data dir."""
    server = start_server(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()
