"""`homefarm serve` as its own process, for tests and benchmarks that need a real separate server."""

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    url: str
    app_token: str | None
    worker_token: str | None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_server(data_dir, env: dict | None = None, extra_args: list[str] = (), quiet: bool = False,
                 port: int = 0) -> ServerProcess:
    """Starts the server on a loopback port (a free one by default) and reads its address and first tokens
    from its output; a server on a database that has tokens already prints none (they are None then)."""
    proc = subprocess.Popen([sys.executable, "-m", "worker_app", *(["--quiet"] if quiet else []), "serve",
                             "--port", str(port), "--data-dir", str(data_dir), "--print-tokens", *extra_args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env or {**os.environ, "HOMEFARM_HOME": str(data_dir)})
    text = ""
    for line in proc.stdout:
        text += line
        if line.startswith("homefarm job server on "):
            break
    found = re.search(r"on (http://\S+)", text)
    if found is None:
        proc.wait(10)
        raise RuntimeError(f"the server did not start:\n{text}")
    url = found.group(1)
    tokens = dict(re.findall(r"(web app|worker)\s+token.*?:\s+(\S+)", text))
    # Keep reading its log, or a full pipe would stall the server.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return ServerProcess(proc, url, tokens.get("web app"), tokens.get("worker"))
