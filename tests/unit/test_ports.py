"""The core's fakes keep the shapes of the real things (worker_app/core/ports.py): each member a port names has
the same parameters, in the same order and kinds, on the real class and on its fake. A changed WorkerClient
signature that the fake lacks fails here instead of passing every core test."""

import inspect
import typing

import pytest

from support.core_fakes import FakeClient, FakeGuard, FakeRun
from worker_app.client import WorkerClient
from worker_app.core import ports
from worker_app.core.outbox import Outbox
from worker_app.guard.guard import Guard
from worker_app.render.blender import BlenderRun, ColdProcess, Process
from worker_app.render.warm import WarmProcess


def members(port) -> list[str]:
    return [name for name, value in vars(port).items() if callable(value) and not name.startswith("_")]


def shape(function) -> list[tuple[str, object]]:
    """Parameter names and kinds, without ``self`` and without annotations (the fakes need not repeat them)."""
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("port, real, fakes", [
    (ports.ClientPort, WorkerClient, [FakeClient]),
    (ports.RunPort, BlenderRun, [FakeRun]),
    (Process, ColdProcess, [WarmProcess]),  # a warm run is a BlenderRun with the warm process
    (ports.OutboxPort, Outbox, []),
    (ports.GuardPort, Guard, [FakeGuard]),
])
def test_the_real_class_and_its_fakes_have_the_ports_shape(port, real, fakes):
    for name in members(port):
        expected = shape(getattr(port, name))
        for cls in (real, *fakes):
            assert hasattr(cls, name), f"{cls.__name__} has no {name}"
            assert shape(getattr(cls, name)) == expected, f"{cls.__name__}.{name}{inspect.signature(getattr(cls, name))}"


def test_the_check_sees_a_drift():
    class Drifted(FakeClient):
        def claim(self, worker_id, wait, priority):  # a parameter the port does not have
            return None
    assert shape(Drifted.claim) != shape(ports.ClientPort.claim)


def test_the_ports_name_what_the_core_uses():
    hints = typing.get_type_hints(ports.ClientPort)
    assert "server_url" in hints and {"claim", "heartbeat", "upload", "report"} <= set(members(ports.ClientPort))
