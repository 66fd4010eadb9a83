"""What a person reads when the network fails: a sentence that says what happened and what to do, never an
exception's name, an errno or a library's repr (those go to the log)."""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from worker_app.client import Unreachable, WorkerClient, explain

PYTHON_SPEAK = ("Error", "Errno", "Traceback", "_Tracked", "HTTPConnection", "Max retries", "urllib3", "Caused by",
                "object at", "<", "[SSL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_as_a_person(message: str) -> str:
    for word in PYTHON_SPEAK:
        assert word not in message, (word, message)
    return message


def test_nothing_listening(caplog):
    caplog.set_level(logging.INFO, "homefarm.client")
    port = free_port()
    with pytest.raises(Unreachable) as caught:
        WorkerClient(f"http://127.0.0.1:{port}", "hfw_x").health()
    assert read_as_a_person(str(caught.value)) == f"nothing answers at 127.0.0.1:{port}: is the job server running?"
    assert "ConnectionError" in caplog.text, "the technical detail is in the log"


@pytest.fixture
def plain_http_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_https_to_a_plain_http_server(plain_http_server):
    with pytest.raises(Unreachable) as caught:
        WorkerClient(f"https://127.0.0.1:{plain_http_server}", "hfw_x").health()
    assert read_as_a_person(str(caught.value)).startswith(
        f"127.0.0.1:{plain_http_server} answers in plain http, not https")


def test_a_server_that_closes_the_connection():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def close_each():
        try:
            while True:
                conn, _ = listener.accept()
                conn.recv(100)
                conn.close()
        except OSError:  # the test closed the listener: done
            pass

    threading.Thread(target=close_each, daemon=True).start()
    with pytest.raises(Unreachable) as caught:
        WorkerClient(f"http://127.0.0.1:{port}", "hfw_x").health()
    listener.close()
    assert read_as_a_person(str(caught.value)).startswith(f"127.0.0.1:{port} closed the connection")


@pytest.mark.parametrize("error, url, expected", [
    (requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='render.example.invalid', port=443): Max retries exceeded with url: /api/health "
        "(Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve "
        "'render.example.invalid' ([Errno -2] Name or service not known)\"))"),
     "https://render.example.invalid", "the name render.example.invalid does not resolve"),
    (requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='render.example.com', port=443): Max retries exceeded (Caused by "
        "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "certificate has expired (_ssl.c:1006)')))"),
     "https://render.example.com", "the TLS certificate of render.example.com is not valid (certificate has "
                                   "expired)"),
    (requests.exceptions.ConnectTimeout("HTTPSConnectionPool(host='10.9.9.9', port=8750): Max retries exceeded"),
     "https://10.9.9.9:8750", "10.9.9.9:8750 did not answer in time"),
    (requests.exceptions.InvalidSchema("No connection adapters were found for '127.0.0.1:8757/api/health'"),
     "127.0.0.1:8757", "127.0.0.1:8757 is not an address homefarm can use"),
])
def test_each_kind_of_failure_reads_as_a_sentence(error, url, expected):
    assert read_as_a_person(explain(error, url)).startswith(expected)
