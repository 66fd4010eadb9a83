"""What a pip install brings: every package of homefarm, the server's stack without Qt, the tray without the
server's stack."""

import json
import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from support.harness import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_in_the_distribution():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "worker_app").rglob("__init__.py")}
    assert found <= listed, f"not packaged: {sorted(found - listed)}"


def closure(extras: set[str]) -> set[str]:
    """The distributions that `pip install homefarm[extras]` pulls on this platform, from installed metadata."""
    names = {"homefarm"}
    todo = [Requirement(r) for r in PROJECT["project"]["dependencies"]]
    for extra in extras:
        todo += [Requirement(r) for r in PROJECT["project"]["optional-dependencies"][extra]]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name == "homefarm":
            for extra in requirement.extras:
                todo += [Requirement(r) for r in PROJECT["project"]["optional-dependencies"][extra]]
            continue
        if name in names:
            continue
        names.add(name)
        wanted = requirement.extras
        for raw in metadata.requires(requirement.name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                todo.append(sub)
    return names


def test_a_server_install_pulls_no_qt_no_nvml_and_no_keyring():
    pulled = closure({"server"})
    assert {"sqlalchemy", "starlette", "uvicorn", "boto3"} <= pulled
    assert not {name for name in pulled if name.startswith(("pyside6", "shiboken6"))}, sorted(pulled)
    assert not pulled & {"nvidia-ml-py", "pynvml", "keyring", "jeepney", "secretstorage"}, sorted(pulled)


def test_a_tray_install_pulls_the_worker_and_no_server_stack():
    pulled = closure({"tray"})
    assert {"pyside6-essentials", "nvidia-ml-py", "keyring", "zstandard", "truststore"} <= pulled
    assert not pulled & {"sqlalchemy", "starlette", "uvicorn", "boto3", "psycopg", "pymysql"}


def test_the_worker_packages_the_cli_names_are_the_worker_extra():
    """A server-only install that is asked to run the worker says which extra to install."""
    from worker_app.cli import WORKER_PACKAGES

    import_names = {"nvidia-ml-py": "pynvml"}
    extra = {import_names.get(Requirement(r).name, Requirement(r).name)
             for r in PROJECT["project"]["optional-dependencies"]["worker"]}
    assert extra == set(WORKER_PACKAGES)


def test_the_container_image_and_the_unit_run_what_exists():
    """No container builder runs on the test machines: this checks what the image and the unit would run
    (the files they copy, the command they start, the health check's path) against the code."""
    import shlex

    from worker_app.cli import build_parser
    from worker_app.server.http import ROUTES

    dockerfile = (ROOT / "installer" / "server" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the image copies {source}, which is not in the repository"
    command = json.loads(dockerfile.split("\nCMD ", 1)[1].splitlines()[0])
    assert command[0] == "homefarm"
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8750
    assert f"127.0.0.1:{args.port}/api/ready" in dockerfile
    assert ("GET", "/api/ready") in {(method, path) for method, path, _, _ in ROUTES}
    assert "USER homefarm" in dockerfile and "'.[server]'" in dockerfile

    unit = (ROOT / "installer" / "server" / "homefarm-server.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.split("=", 1)[1])
    assert argv[0].endswith("/bin/homefarm")
    assert build_parser().parse_args(argv[1:]).command == "serve"
    assert "TimeoutStopSec=35" in unit and "DynamicUser=yes" in unit
