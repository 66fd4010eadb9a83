"""What a person reads when the network fails: a sentence that says what happened and what to do, never an
exception's name, an errno or a library's repr (those go to the log)."""

import logging
import socket
import threading

import pytest
import requests

from support import plain_server

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
    server = plain_server.serve()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_https_to_a_plain_http_server(plain_http_server):
    with pytest.raises(Unreachable) as caught:
        WorkerClient(f"https://127.0.0.1:{plain_http_server}", "hfw_x").health()
    assert read_as_a_person(str(caught.value)).startswith(
        f"127.0.0.1:{plain_http_server} answers in plain http, not https")


@pytest.fixture
def closing_server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def close_each():
        try:
            while True:
                conn, _ = listener.accept()
                conn.recv(100)
                conn.close()
        except OSError:  # the test closed the listener: done
            pass

    threading.Thread(target=close_each, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_a_server_that_closes_the_connection(closing_server):
    with pytest.raises(Unreachable) as caught:
        WorkerClient(f"http://127.0.0.1:{closing_server}", "hfw_x").health()
    assert read_as_a_person(str(caught.value)).startswith(f"127.0.0.1:{closing_server} closed the connection")


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


# -- every failure, through every place a person reads it --------------------------------------------------

@pytest.fixture
def self_signed_server(tmp_path):
    """An https server on loopback whose certificate nobody signed."""
    import ssl
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = plain_server.serve(context)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def failures(served, plain_http_server, self_signed_server, closing_server):
    """(what goes wrong, server URL, token, words that say what to do) for each failure a PC owner meets."""
    return [
        ("nothing listens", f"http://127.0.0.1:{free_port()}", "hfw_x", "is the job server running"),
        ("https to plain http", f"https://127.0.0.1:{plain_http_server}", "hfw_x", "http://"),
        ("a certificate nobody signed", f"https://127.0.0.1:{self_signed_server}", "hfw_x", "certificate"),
        ("the connection closed", f"http://127.0.0.1:{closing_server}", "hfw_x", "closed the connection"),
        ("a token the server refuses", served.url, "hfw_not-a-token", ("worker token", "sign in again")),
        ("the web app's token", served.url, served.app_token, ("hfw_", "sign in again")),
    ]


def test_every_failure_reads_as_a_sentence_in_doctor_login_sign_in_and_the_tray(failures, qtbot, tmp_path, blender):
    """Each failure through `homefarm doctor`, `homefarm login`, the Sign-in dialog and the tray's status line:
    no exception name, errno, repr or traceback, and words that say what to do."""
    from support.harness import wait_until
    from support.harness import run_cli as homefarm
    from worker_app import config as config_mod
    from worker_app.core import Folders, Settings, State, Worker
    from worker_app.doctor import run_checks
    from worker_app.system.credentials import TokenStore
    from worker_app.tray import status
    from worker_app.tray.background import Background
    from worker_app.tray.signin import SignInDialog
    from support.keyring_file_backend import MemoryKeyring

    seen = {}
    for what, url, token, to_do in failures:
        said = seen[what] = {}
        # doctor
        paths = config_mod.Paths.default()
        config_mod.load(paths)
        config_mod.set_values(paths, {"server.url": url})
        tokens = TokenStore(MemoryKeyring())
        tokens.set(url, token)
        failed = [c for c in run_checks(paths, tokens) if not c.ok and c.name in ("server", "token")]
        assert failed, what
        said["doctor"] = " / ".join(f"{c.detail} (fix: {c.fix})" for c in failed)
        # login, as a person runs it
        login = homefarm(tmp_path / what.replace(" ", "-"), "login", "--server", url, "--token-stdin",
                         input=token + "\n")
        assert login.returncode != 0, what
        said["login"] = login.stderr.strip()
        # the Sign-in dialog
        background = Background()
        dialog = SignInDialog(config_mod.Config(server_url=url), TokenStore(MemoryKeyring()), background,
                              on_signed_in=lambda _url: None)
        qtbot.addWidget(dialog)
        dialog.token.setText(token)
        dialog.sign_in()
        qtbot.waitUntil(lambda: dialog.buttons.isEnabled(), timeout=20000)
        said["sign-in dialog"] = dialog.message.text()
        background.close()
        # the tray's status line, from a real worker's snapshot
        worker = Worker(WorkerClient(url, token), blender, Folders(tmp_path / "jobs", tmp_path / "cache"),
                        Settings(device="CPU"))
        thread = worker.start_thread()
        try:
            wait_until(lambda: worker.snapshot.state == State.BACKING_OFF, timeout=20, what=f"{what}: a back-off")
            said["tray"] = status.job_line(worker.snapshot)
        finally:
            worker.stop()
            thread.join(20)
        for place, message in said.items():
            read_as_a_person(message)
            assert any(words in message for words in ((to_do,) if isinstance(to_do, str) else to_do)), \
                (what, place, message)
    print("\n".join(f"{what}\n" + "\n".join(f"  {place}: {message}" for place, message in said.items())
                    for what, said in seen.items()))
