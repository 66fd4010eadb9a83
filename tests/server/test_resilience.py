"""What a small cloud does to the server, done to it here: the database drops every connection (its proxy
restarted, an idle timeout), the platform stops the server while a receiver and an uploader take their time,
a TLS database answers with a certificate for another name, and an idle server counts its statements."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa

from support.engines import Engine
from support.harness import Served, posix_only, wait_until
from support.server_process import start_server
from worker_app import protocol as P
from worker_app.client import WorkerClient
from worker_app.server import JobServer
from worker_app.server.store import Store
from worker_app.server.store.base import mysql_tls

SCENE = {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 1}


def kill_connections(engine: Engine, db_url: str) -> int:
    """The engine ends every connection to the database of ``db_url`` (as a proxy's restart or an idle cut
    would); returns how many it ended."""
    name = sa.engine.make_url(db_url).database
    admin = sa.create_engine(engine.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        if engine.kind == "postgresql":
            ended = conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            count = int(ended.scalar())
        else:
            ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM information_schema.processlist "
                                                          "WHERE db = :name"), {"name": name})]
            for connection_id in ids:
                try:
                    conn.exec_driver_sql(f"KILL {int(connection_id)}")
                except sa.exc.DBAPIError:
                    pass  # it ended meanwhile
            count = len(ids)
    admin.dispose()
    return count


@pytest.mark.parametrize("engine_kind", ["postgresql", "mariadb"])
def test_connections_the_database_drops_are_replaced_before_anyone_sees_them(request, tmp_path, engine_kind):
    engine = request.getfixturevalue(f"{engine_kind}_engine")
    db_url = engine.new_database()
    server = JobServer(tmp_path / "server", db_url=db_url).start()
    try:
        served = Served(server)
        client = served.worker_client()
        worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
        job = served.app.submit({"scene": SCENE})
        lease = client.claim(worker_id, 0)
        assert kill_connections(engine, db_url) >= 1
        # Between requests: every call answers as if nothing happened (a 503 would raise here).
        assert client.heartbeat(lease.job_id, lease.lease_id, P.Progress(stage="rendering")).cancel is False
        assert served.app.job(job["id"])["state"] == "leased"
        assert client.report(lease.job_id, lease.lease_id, P.FailReport("broken", retryable=False)).state == "failed"
        # Mid-wait: a claim waits while every connection (PostgreSQL's LISTEN one too) is ended; a job submitted
        # after still reaches it.
        got = {}
        waiting = threading.Thread(target=lambda: got.update(lease=client.claim(worker_id, 15)))
        waiting.start()
        time.sleep(1.0)
        assert kill_connections(engine, db_url) >= 1
        time.sleep(1.0)  # PostgreSQL's listener reconnects
        second = served.app.submit({"scene": SCENE})
        waiting.join(20)
        assert got["lease"] is not None and got["lease"].job_id == second["id"]
        kill_connections(engine, db_url)
        assert served.app.jobs()[0]["id"] == second["id"]
    finally:
        server.stop()


class SlowReceiver:
    """A webhook receiver that accepts and then says nothing for a minute."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)  # held open, never answered

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


@posix_only("SIGTERM")
def test_a_stop_ends_within_the_grace_even_with_a_slow_receiver_and_a_trickling_upload(tmp_path):
    """ECS stops a task 30 s after SIGTERM: with a webhook receiver that takes 60 s and an upload arriving at
    1 KiB/s, the server is gone within its --shutdown-grace, and the undelivered webhook stays due."""
    receiver = SlowReceiver()
    grace = 8
    env = {**os.environ, "HOMEFARM_HOME": str(tmp_path / "server"), "HOMEFARM_WEBHOOK_SECRET": "w" * 32}
    server = start_server(tmp_path / "server", env=env,
                          extra_args=["--shutdown-grace", str(grace), "--webhook-url", receiver.url])
    trickle = None
    try:
        served_app_token, worker_token = server.app_token, server.worker_token
        from worker_app.app_client import AppClient
        app = AppClient(server.url, served_app_token)
        client = WorkerClient(server.url, worker_token)
        worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
        failed = app.submit({"scene": SCENE})
        lease = client.claim(worker_id, 0)
        client.report(lease.job_id, lease.lease_id, P.FailReport("broken", retryable=False))
        wait_until(lambda: receiver.connections, 15, what="the webhook's delivery to begin")
        app.submit({"scene": SCENE})
        uploading = client.claim(worker_id, 0)
        trickle = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        trickle.sendall((f"PUT {P.WORKER_PREFIX}/jobs/{uploading.job_id}/outputs/frame_0001.png HTTP/1.1\r\n"
                         f"Host: 127.0.0.1\r\nAuthorization: Bearer {worker_token}\r\nX-Lease-Id: "
                         f"{uploading.lease_id}\r\nX-Content-SHA256: {'b' * 64}\r\nContent-Length: 500000\r\n"
                         "\r\n").encode())
        stop_trickle = threading.Event()

        def send_slowly():
            while not stop_trickle.wait(1.0):
                try:
                    trickle.sendall(b"x" * 1024)
                except OSError:
                    return
        threading.Thread(target=send_slowly, daemon=True).start()
        time.sleep(2)
        asked = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(grace + 10)
        took = time.monotonic() - asked
        stop_trickle.set()
        assert server.proc.returncode == 0
        assert took <= grace + 1.0, f"the server took {took:.1f} s to stop, past its {grace} s grace"
        store = Store(f"sqlite:///{tmp_path / 'server' / 'homefarm-server.sqlite3'}")
        [delivery] = store.webhook_deliveries(int(failed["id"]))
        store.close()
        assert delivery["delivered"] is None and delivery["next_attempt"] is not None, "still due"
    finally:
        if trickle is not None:
            trickle.close()
        if server.proc.poll() is None:
            server.proc.kill()
        receiver.close()


def _certificates(folder, names: str) -> tuple[str, str, str]:
    """A test CA and a server certificate it signed for ``names`` (subjectAltName); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*argv):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=folder)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=homefarm test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=database")
    (folder / "ext.cnf").write_text(f"subjectAltName={names}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key")


def test_tls_to_mysql_checks_the_certificates_name_not_only_its_chain(tmp_path):
    """A MariaDB whose certificate (from a CA the URL names) is for "localhost": reached as 127.0.0.1 it is
    refused, as localhost accepted."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="homefarm-tls-"))  # readable by the engine's own user, unlike tmp_path
    os.chmod(folder, 0o755)
    ca, cert, key = _certificates(folder, "DNS:localhost")
    for path in (ca, cert, key):
        os.chmod(path, 0o644)
    engine = Engine.start("mariadb", extra=(f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"))
    try:
        url = engine.new_database()
        name = sa.engine.make_url(url).database
        port = engine.port
        wrong = f"mysql://homefarm:homefarm@127.0.0.1:{port}/{name}?ssl_ca={ca}"
        with pytest.raises(sa.exc.OperationalError, match="(?i)certificate|hostname"):
            Store(wrong)
        right = Store(f"mysql://homefarm:homefarm@localhost:{port}/{name}?ssl_ca={ca}")
        with right._read() as conn:
            cipher = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1]
        right.close()
        assert cipher, "the connection is encrypted"
        insecure = Store(f"mysql://homefarm:homefarm@127.0.0.1:{port}/{name}?tls=insecure")
        insecure.close()
    finally:
        engine.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_remote_mysql_is_verified_by_default_and_the_url_cannot_weaken_it():
    url, context = mysql_tls("mysql+pymysql://u:p@gateway01.example.tidbcloud.com:4000/db?"
                             "ssl_verify_cert=true&ssl_verify_identity=false&charset=utf8mb4")
    import ssl

    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert "ssl_verify" not in url and "charset=utf8mb4" in url
    assert mysql_tls("mysql+pymysql://u:p@127.0.0.1:3306/db")[1] is None, "loopback: no TLS unless asked"
    with pytest.raises(ValueError, match="tls='maybe' is not one of verify, insecure, off"):
        mysql_tls("mysql+pymysql://u:p@db.example.com/db?tls=maybe")


@pytest.mark.parametrize("engine_kind", ["postgresql", "mariadb"])
def test_an_idle_server_with_a_waiting_worker_sends_the_database_next_to_nothing(request, tmp_path, engine_kind):
    """Each long poll, one after another, with no job: no statement (bench/idle_cost.py gives the hourly
    figures). MariaDB counts server-wide, so it gets a server of its own."""
    engine = request.getfixturevalue("postgresql_engine") if engine_kind == "postgresql" else Engine.start("mariadb")
    try:
        db_url = engine.new_database()
        count = engine.statement_counter(db_url)
        server = JobServer(tmp_path / "server", db_url=db_url).start()
        try:
            served = Served(server)
            client = served.worker_client()
            worker_id = client.hello(P.Hello(name="pc", os="linux", app_version="0")).worker_id
            assert client.claim(worker_id, 1) is None  # the first claim asks the database
            time.sleep(2)
            before = count()
            started = time.monotonic()
            polls = 0
            while time.monotonic() - started < 12:
                assert client.claim(worker_id, 2) is None
                polls += 1
            spent = count() - before
            assert polls >= 5 and spent <= 2, f"{spent} statements for {polls} idle long polls"
            job = served.app.submit({"scene": SCENE})
            assert client.claim(worker_id, 2).job_id == job["id"], "a job still reaches the worker at once"
        finally:
            server.stop()
    finally:
        if engine_kind == "mariadb":
            engine.stop()
