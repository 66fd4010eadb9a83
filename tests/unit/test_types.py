"""The core, the protocol, Blender's side and the server type-check under ``mypy --strict`` (its settings are
pyproject.toml's [tool.mypy]): a port whose real class and fakes drift apart, a reply built by hand where a
protocol class belongs, or a store that returns the wrong row fails the suite here.

mypy starts when this module is collected and runs beside the rest of the tier (whose tests mostly wait on
threads and clocks); the test collects its answer, so the check adds little to the tier's wall time."""

import atexit
import subprocess
import sys
import tomllib

from support.harness import ROOT

_MYPY = subprocess.Popen([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, encoding="utf-8")
atexit.register(_MYPY.kill)


def test_the_typed_packages_pass_mypy_strict():
    output, _ = _MYPY.communicate(timeout=300)
    assert _MYPY.returncode == 0, f"mypy --strict found:\n{output}"


def test_mypy_checks_the_four_packages_strictly():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert settings["strict"] is True
    assert set(settings["files"]) == {"worker_app/core", "worker_app/protocol", "worker_app/render",
                                      "worker_app/server"}
