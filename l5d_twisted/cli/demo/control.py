"""The running demo's control channel: stop and start one instance from another terminal.

The demo listens on ``127.0.0.1:--control-port`` (9992) with three plain-HTTP paths,
served by the sample apps' small server (:mod:`l5d_twisted.examples.appserver`)::

    GET  /status         one line per process: name, pid, state
    POST /stop/NAME      stop an instance (SIGTERM, then SIGKILL); the demo keeps running
    POST /start/NAME     start it again and wait until it listens

``l5d-twisted demo stop world-1`` (:func:`send`) is the client; ``curl -X POST
127.0.0.1:9992/stop/world-1`` works as well.  Only the sample apps can be stopped: the
mesh itself is the demo (Ctrl-C stops it).
"""

from __future__ import annotations

import http.client
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from l5d_twisted.cli.demo import DEFAULT_CONTROL_PORT
from l5d_twisted.examples.appserver import AppRequest, AppResponse

CONTROL_IP = "127.0.0.1"
__all__ = ["CONTROL_IP", "DEFAULT_CONTROL_PORT", "ControlError", "ControlHandler", "send"]


class ControlError(Exception):
    """A refused control request: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Controlled(Protocol):
    """What the control channel drives (:class:`l5d_twisted.cli.demo.runner.Demo`)."""

    def status_lines(self) -> list[str]: ...

    def stop_instance(self, name: str) -> Deferred[str]: ...

    def start_instance(self, name: str) -> Deferred[str]: ...


class ControlHandler:
    """The appserver handler for the control paths."""

    def __init__(self, demo: Controlled) -> None:
        self.demo = demo

    def __call__(self, request: AppRequest) -> AppResponse | Deferred[AppResponse]:
        path = request.path.decode("ascii", "replace")
        if path == "/status":
            if request.method not in (b"GET", b"HEAD"):
                return _text(405, "use GET\n")
            return _text(200, "".join(line + "\n" for line in self.demo.status_lines()))
        action, _, name = path.lstrip("/").partition("/")
        if action not in ("stop", "start") or not name:
            return _text(404, "paths: GET /status, POST /stop/NAME, POST /start/NAME\n")
        if request.method != b"POST":
            return _text(405, f"use POST /{action}/{name}\n")
        try:
            d = (
                self.demo.stop_instance(name)
                if action == "stop"
                else self.demo.start_instance(name)
            )
        except ControlError as e:
            return _text(e.status, f"{e}\n")
        return d.addCallbacks(lambda text: _text(200, text + "\n"), _refused)


def _refused(failure: Any) -> AppResponse:
    failure.trap(ControlError)
    error: ControlError = failure.value
    return _text(error.status, f"{error}\n")


def _text(status: int, text: str) -> AppResponse:
    return AppResponse(status, text.encode())


def send(
    method: str, path: str, port: int, ip: str = CONTROL_IP, timeout_s: float = 60.0
) -> tuple[int, str]:
    """One request to a running demo's control channel: (status, body).

    Raises OSError if nothing listens there (no demo running, or another --control-port).
    """
    conn = http.client.HTTPConnection(ip, port, timeout=timeout_s)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()
