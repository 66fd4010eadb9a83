"""The dashboard's event stream without a browser: a change in another server process reaches it on PostgreSQL
(NOTIFY), a browser that reconnects with the last change's id hears nothing it has seen, one that missed a
change hears of it at once."""

import queue
import socket
import threading
import time

import requests

from worker_app.server import JobServer

SCENE = {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 1}
SPEC = {"scene": SCENE, "render": {"frames": [1]}}


class Events:
    """An open event stream, its lines read on a thread of its own."""

    def __init__(self, session: requests.Session, url: str, last_id: str | None = None):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        self.response = session.get(url, stream=True, timeout=60, headers=headers)
        assert self.response.status_code == 200, self.response.text[:200]
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                self.lines.put(line)
        except Exception:  # closed by the test
            pass

    def change(self, within: float) -> str | None:
        """The id of the next change event within ``within`` seconds, or None."""
        deadline = time.monotonic() + within
        last_id = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith("id: "):
                last_id = line[4:]
            elif line == "event: change":
                return last_id
        return None

    def close(self) -> None:
        """Ends the connection now, as a closed tab does (closing the response alone waits for its next line)."""
        connection = self.response.raw.connection
        if connection is not None and connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


def _signed_in(server: JobServer) -> requests.Session:
    session = requests.Session()
    token = server.store.create_token("dashboard", "test")
    answer = session.post(server.url + "/dashboard/sign-in", data={"token": token}, allow_redirects=False)
    assert answer.status_code == 303
    return session


def test_a_change_in_another_server_process_reaches_the_stream_on_postgresql(tmp_path, postgresql_engine):
    url = postgresql_engine.new_database()
    watched = JobServer(tmp_path / "a", db_url=url).start()
    other = JobServer(tmp_path / "b", db_url=url).start()
    try:
        events = Events(_signed_in(watched), watched.url + "/dashboard/events")
        time.sleep(0.5)
        started = time.monotonic()
        other.store.submit(SPEC, 0, 3, "made elsewhere")
        assert events.change(within=5) is not None, "the other process's job reached this stream"
        took = time.monotonic() - started
        worker = other.store.register_worker("pc", {})
        assert events.change(within=5) is not None, "and the worker that signed on there"
        lease = other.store.claim(worker)
        for frame in range(3):  # a burst of heartbeats: told at most once a second, the last one always
            other.store.heartbeat(lease.job_id, lease.lease_id, {"frames_done": frame})
        assert events.change(within=5) is not None
        events.close()
        assert took < 3, f"a change elsewhere took {took:.1f} s to reach the stream"
    finally:
        other.stop()
        watched.stop()


def test_a_reconnecting_browser_hears_only_what_it_missed(tmp_path):
    server = JobServer(tmp_path / "server").start()
    try:
        session = _signed_in(server)
        events = Events(session, server.url + "/dashboard/events")
        time.sleep(0.3)
        server.store.submit(SPEC, 0, 3, None)
        seen = events.change(within=5)
        assert seen, "a change in this process reaches the stream"
        events.close()
        again = Events(session, server.url + "/dashboard/events", last_id=seen)
        assert again.change(within=1.5) is None, "nothing changed since the id it sent"
        again.close()
        server.store.submit(SPEC, 0, 3, None)  # while it was away
        time.sleep(0.3)
        missed = Events(session, server.url + "/dashboard/events", last_id=seen)
        assert missed.change(within=2) not in (None, seen), "it missed a change: told at once, with a new id"
        missed.close()
        restarted = Events(session, server.url + "/dashboard/events", last_id="an-earlier-server-7")
        assert restarted.change(within=2) is not None, "an id from another server: anything may have changed"
        restarted.close()
    finally:
        server.stop()
