"""Transport: TLS is verified, plain http is for loopback only, the token stays on the job server's origin."""

import http.server
import shutil
import ssl
import subprocess
import sys
import threading

import pytest

from worker_app.client import Unreachable, WorkerClient
from worker_app.config import ConfigError


def _openssl(*args) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def self_signed_https(tmp_path):
    """An HTTPS server on loopback with a certificate no authority signed."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    yield from _https(cert, key)


@pytest.fixture
def rescanned_https(tmp_path):
    """An HTTPS server whose certificate a private root signed, as an antivirus that scans HTTPS re-signs every
    site with a root it puts in the OS's store only; yields the URL and that root's file."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    ca_key, ca, key, csr, cert = (tmp_path / name for name in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
             "-subj", "/CN=Antivirus Web Shield Root")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
             str(cert), "-days", "1", "-extfile", str(ext))
    for url, seen in _https(cert, key):
        yield url, ca


def _https(cert, key):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"ok": true, "protocol": 1}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_an_unverifiable_certificate_is_refused_and_no_token_is_sent(self_signed_https):
    url, seen = self_signed_https
    with pytest.raises(Unreachable, match="the TLS certificate of 127.0.0.1 is not valid"):
        WorkerClient(url, "hfw_secret").ping()
    assert seen == [], "the request never reached the server: the handshake failed first"


def test_plain_http_only_to_loopback():
    WorkerClient("http://127.0.0.1:8750", "t")
    WorkerClient("http://localhost:8750", "t")
    with pytest.raises(ConfigError):
        WorkerClient("http://192.0.2.7:8750", "t")
    WorkerClient("http://192.0.2.7:8750", "t", allow_insecure_http=True)


def test_the_token_goes_only_to_the_job_server(served, tmp_path):
    """A scene on another origin is fetched without the worker token."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"scene")

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        client = served.worker_client()
        out = (tmp_path / "scene").open("wb")
        client.download(f"http://127.0.0.2:{other.server_address[1]}/scene.blend", out, 100)
        out.close()
        assert seen == [None]
        asset = served.app.upload_asset(tmp_path / "scene")
        with (tmp_path / "again").open("wb") as out:
            client.download(asset["url"], out, 100)
        assert (tmp_path / "again").read_bytes() == b"scene"  # the job server's own asset needs the token
    finally:
        other.shutdown()


def test_a_gateway_timeout_on_a_claim_is_told_apart_from_a_failing_server(monkeypatch):
    """A proxy (a CDN, nginx) answering 504 after holding the claim for a while: GatewayCut with the time."""
    import http.server
    import threading
    import time as time_mod

    from worker_app import constants as C
    from worker_app.client import GatewayCut, Unreachable, WorkerClient

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time_mod.sleep(0.5 if "claim" in self.path else 0)
            self.send_response(504)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    monkeypatch.setattr(C, "GATEWAY_CUT_MIN", 0.3)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = WorkerClient(f"http://127.0.0.1:{server.server_address[1]}", "hfw_token")
        with pytest.raises(GatewayCut) as cut:
            client.claim("w_1", 20)
        assert cut.value.status == 504 and 0.4 < cut.value.seconds < 5
        with pytest.raises(Unreachable) as quick:  # a 504 at once is a failing server, backed off from
            client.cancel_claim("w_1")
        assert not isinstance(quick.value, GatewayCut)
    finally:
        server.shutdown()


# OpenSSL's default verify paths (SSL_CERT_FILE) are the OS store only on Linux; Windows and macOS ask their own.
linux_store = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="Linux only: SSL_CERT_FILE stands for the OS's certificate store there")


@linux_store
def test_the_os_certificate_store_is_trusted_as_a_browser_trusts_it(rescanned_https, monkeypatch):
    # SSL_CERT_FILE stands for the OS's store here (OpenSSL's default verify paths on Linux); on Windows and
    # macOS truststore asks CryptoAPI and Security.framework the same question.
    url, root = rescanned_https
    with pytest.raises(Unreachable) as refused:  # the root is nowhere this PC looks: refused, in words
        WorkerClient(url, "hfw_secret").ping()
    assert "no authority this PC trusts signed it" in str(refused.value)
    assert "an antivirus or proxy that scans HTTPS connections may be re-signing them" in str(refused.value)
    monkeypatch.setenv("SSL_CERT_FILE", str(root))
    import requests
    with pytest.raises(requests.exceptions.SSLError):  # certifi's bundle alone would never trust it
        requests.get(url + "/api/worker/v1/ping", timeout=5)
    WorkerClient(url, "hfw_secret").ping()  # the OS store trusts it: so does homefarm


@linux_store
def test_the_os_store_still_checks_the_host_name(rescanned_https, monkeypatch):
    url, root = rescanned_https
    monkeypatch.setenv("SSL_CERT_FILE", str(root))
    with pytest.raises(Unreachable, match="the TLS certificate of localhost is not valid"):
        WorkerClient(url.replace("127.0.0.1", "localhost"), "hfw_secret").ping()
