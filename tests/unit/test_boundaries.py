"""The job server and the worker share the protocol and nothing else: the server deployed on a cloud instance
never loads the worker's parts (Blender, the guard, the OS backends, the keyring, the config), and the worker
on the owner's PC never loads the server's. Each import is checked in a fresh interpreter."""

import json
import subprocess
import sys

import pytest

WORKER_PARTS = ("worker_app.core", "worker_app.render", "worker_app.guard", "worker_app.system", "worker_app.tray",
                "worker_app.client", "worker_app.config", "worker_app.runtime", "worker_app.doctor",
                "worker_app.constants")  # the worker's delays and sizes; the protocol's own are protocol/limits.py
SHARED = ("worker_app.protocol", "worker_app.blender_scripts")


def loaded_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout.splitlines()[-1])


def test_the_server_loads_none_of_the_worker():
    loaded = loaded_after("import worker_app.server; from worker_app.server import JobServer")
    ours = [m for m in loaded if m.startswith("worker_app")]
    assert [m for m in ours if m.startswith(WORKER_PARTS)] == [], ours
    assert not {"PySide6", "pynvml", "keyring", "psutil"} & {m.split(".")[0] for m in loaded}


def test_the_homefarm_command_serves_without_the_worker_packages():
    """`homefarm serve` in a server install (`homefarm[server]`): the command, its parser and the server load no
    Qt, NVML, keyring or the worker's other packages."""
    loaded = loaded_after("import worker_app.cli\nworker_app.cli.build_parser().parse_args(['serve'])\n"
                          "from worker_app.server import JobServer")
    assert not {"PySide6", "pynvml", "keyring", "jeepney", "truststore", "zstandard"} & {m.split(".")[0]
                                                                                       for m in loaded}


@pytest.mark.parametrize("statement", ["import worker_app.core.loop", "import worker_app.runtime",
                                       "import worker_app.doctor", "import worker_app.client"])
def test_the_worker_loads_none_of_the_server(statement):
    loaded = loaded_after(statement)
    assert [m for m in loaded if m.startswith("worker_app.server")] == []
    assert not {"sqlalchemy", "starlette", "uvicorn", "boto3", "psycopg", "pymysql"} & {m.split(".")[0]
                                                                                      for m in loaded}


def test_every_file_of_the_data_dir_is_named_once_in_the_layout():
    # worker_app/layout.py owns the names; no other module of the worker spells one out.
    import re
    from support.harness import ROOT
    from worker_app import layout
    names = {value for key, value in vars(layout).items() if key.isupper() and "." in value}
    assert {"lease.json", "outbox.sqlite3", "pause.json", "stats.sqlite3", "blender.pid"} <= names
    spelled = []
    for path in (ROOT / "worker_app").rglob("*.py"):
        if path.name == "layout.py" or "server" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text(encoding="utf-8")
        spelled += [f"{path.relative_to(ROOT)}: {name}" for name in names if re.search(rf"[\"'/]{re.escape(name)}[\"']", text)]
    assert spelled == [], spelled
