"""The demo's port check and control channel, without processes (issue 16 points 3, 4)."""

from __future__ import annotations

import socket

import pytest
from l5d_testing import free_port
from twisted.internet.defer import Deferred, fail, succeed

from l5d_twisted.cli import build_parser
from l5d_twisted.cli.demo.control import ControlError, ControlHandler
from l5d_twisted.cli.demo.ports import DemoPort, busy_port_errors, why_busy
from l5d_twisted.cli.demo.runner import DemoOptions, command_name
from l5d_twisted.examples.appserver import AppRequest, AppResponse


def test_a_listening_port_is_busy_and_named_with_its_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = free_port()
        errors = busy_port_errors(
            [
                DemoPort("the outgoing router", "--outgoing-port", "127.0.0.1", port),
                DemoPort("the admin server", "--admin-port", "127.0.0.1", free),
            ]
        )
    assert errors == [
        f"port {port} on 127.0.0.1 (the outgoing router) is in use: something already "
        "answers there; move it with --outgoing-port PORT"
    ]


def test_a_bound_but_not_listening_port_is_busy_too() -> None:
    with socket.socket() as taken:  # bound, not accepting: connecting fails, binding too
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        reason = why_busy("127.0.0.1", port)
        errors = busy_port_errors([DemoPort("world-2", "--world-ports", "127.0.0.1", port)])
    assert reason is not None and "in use" in reason.lower()
    assert errors and errors[0].endswith("move it with --world-ports P1,P2,...")
    assert why_busy("127.0.0.1", port) is None  # released


def test_every_demo_port_is_checked_with_its_flag() -> None:
    options = DemoOptions(world_ports=(1001, 1002), control_port=1003)
    listening = options.listening()
    assert [(p.what, p.flag, p.port) for p in listening] == [
        ("the outgoing router", "--outgoing-port", 4140),
        ("the incoming router", "--incoming-port", 4141),
        ("the admin server", "--admin-port", 9990),
        ("hello", "--hello-port", 7777),
        ("world-1", "--world-ports", 1001),
        ("world-2", "--world-ports", 1002),
        ("the demo's control channel", "--control-port", 1003),
    ]
    # every flag named exists on `l5d-twisted demo`
    demo = build_parser()._subparsers._group_actions[0].choices["demo"]  # type: ignore[union-attr]
    flags = {s for action in demo._actions for s in action.option_strings}
    assert {p.flag for p in listening} <= flags
    with pytest.raises(ValueError, match="used twice: 4140"):
        DemoOptions(control_port=4140).validate()


class FakeDemo:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def status_lines(self) -> list[str]:
        return ["l5d pid 1 running", "world-1 pid 2 stopped (demo stop)"]

    def stop_instance(self, name: str) -> Deferred[str]:
        self.calls.append(("stop", name))
        if name == "l5d":
            raise ControlError(409, "l5d is the mesh itself")
        return succeed(f"{name} stopped")

    def start_instance(self, name: str) -> Deferred[str]:
        self.calls.append(("start", name))
        return fail(ControlError(500, f"{name} did not start"))


def answer(handler: ControlHandler, method: bytes, target: bytes) -> AppResponse:
    result = handler(AppRequest(method, target, []))
    if isinstance(result, AppResponse):
        return result
    got: list[AppResponse] = []
    result.addCallback(got.append)
    return got[0]


def test_control_paths() -> None:
    demo = FakeDemo()
    handler = ControlHandler(demo)
    status = answer(handler, b"GET", b"/status")
    assert (status.status, status.body) == (
        200,
        b"l5d pid 1 running\nworld-1 pid 2 stopped (demo stop)\n",
    )
    stopped = answer(handler, b"POST", b"/stop/world-1")
    assert (stopped.status, stopped.body) == (200, b"world-1 stopped\n")
    refused = answer(handler, b"POST", b"/stop/l5d")
    assert (refused.status, refused.body) == (409, b"l5d is the mesh itself\n")
    failed = answer(handler, b"POST", b"/start/world-2")
    assert (failed.status, failed.body) == (500, b"world-2 did not start\n")
    assert demo.calls == [("stop", "world-1"), ("stop", "l5d"), ("start", "world-2")]
    # a GET never changes anything; unknown paths list the known ones
    assert answer(handler, b"GET", b"/stop/world-1").status == 405
    assert answer(handler, b"POST", b"/status").status == 405
    unknown = answer(handler, b"POST", b"/restart/world-1")
    assert unknown.status == 404 and b"POST /stop/NAME" in unknown.body
    assert answer(handler, b"POST", b"/stop/").status == 404
    assert len(demo.calls) == 3


def test_the_printed_commands_call_this_program_again() -> None:
    import sys

    assert command_name("/x/lib/python3.11/site-packages/l5d_twisted/__main__.py") == (
        f"{sys.executable} -m l5d_twisted"
    )
    # not on the PATH under that name: the path as invoked (e.g. .venv/bin/l5d-twisted)
    assert command_name("/nowhere/.venv/bin/l5d-twisted-absent") == (
        "/nowhere/.venv/bin/l5d-twisted-absent"
    )
