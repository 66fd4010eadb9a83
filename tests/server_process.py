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
    app_token: str
    worker_token: str

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_server(data_dir, env: dict | None = None) -> ServerProcess:
    """Starts the server on a free loopback port and reads its address and first tokens from its output."""
    proc = subprocess.Popen([sys.executable, "-m", "worker_app", "serve", "--port", "0", "--data-dir",
                             str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env or {**os.environ, "HOMEFARM_HOME": str(data_dir)})
    text = ""
    for line in proc.stdout:
        text += line
        if line.startswith("homefarm job server on "):
            break
    url = re.search(r"on (http://\S+)", text).group(1)
    tokens = dict(re.findall(r"(web app|worker)\s+token.*?:\s+(\S+)", text))
    # Keep reading its log, or a full pipe would stall the server.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return ServerProcess(proc, url, tokens["web app"], tokens["worker"])
