"""Per-server trust of the client's l5d-* fields: ``requestDtab.enabled`` and ``clearContext``.

The fields are dropped on parse, before any router sees them, in any letter case.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.server import REQUEST_DTAB_ADDRESSES, HttpServer, ServerSettings
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: a\r\nL5d-Dtab: /svc=>/$/inet/127.0.0.1/9990\r\nl5d-ctx-dtab: /svc=>/x\r\n"
    b"l5d-ctx-deadline: 1 2\r\nl5d-sample: 1.0\r\nl5d-loop: abc.01234567\r\nX-Other: 1\r\n\r\n"
)


def seen(**settings: Any) -> Request:
    calls: list[Request] = []

    def service(request: Request) -> Deferred[Response]:
        calls.append(request)
        return Deferred()

    server = HttpServer(Clock(), FunctionService(service), ServerSettings(**settings), NULL_STATS)
    proto = server.factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(REQUEST)
    assert len(calls) == 1
    return calls[0]


def names(request: Request) -> list[bytes]:
    return [k.lower() for k, _ in request.headers.items()]


def test_by_default_request_dtabs_and_context_pass() -> None:
    request = seen()
    assert names(request) == [
        b"host",
        b"l5d-dtab",
        b"l5d-ctx-dtab",
        b"l5d-ctx-deadline",
        b"l5d-sample",
        b"l5d-loop",
        b"x-other",
    ]
    assert REQUEST_DTAB_ADDRESSES not in request.ctx


def test_request_dtab_disabled_drops_both_dtab_fields_only() -> None:
    request = seen(request_dtab=False)
    assert names(request) == [b"host", b"l5d-ctx-deadline", b"l5d-sample", b"l5d-loop", b"x-other"]


def test_clear_context_drops_every_l5d_field_but_the_loop_marker() -> None:
    request = seen(clear_context=True)
    assert names(request) == [b"host", b"l5d-loop", b"x-other"]


def test_a_server_allowing_address_dtabs_tells_the_router() -> None:
    assert seen(request_dtab_addresses=True).ctx[REQUEST_DTAB_ADDRESSES] is True
