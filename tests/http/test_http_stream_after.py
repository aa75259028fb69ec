"""``routers[].streamAfterContentLengthKB``: bodies with a Content-Length up to the threshold
are buffered (whole, replayable), larger and chunked ones streamed; shown at, below and
above the threshold for requests (the server) and responses (the client)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.model import RouterConfig
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import HttpServer
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.naming.addr import Address
from l5d_twisted.protocols.http import pool_settings, server_settings
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS


def _router(extra: str = "") -> RouterConfig:
    return load_config(f"routers:\n- protocol: http\n{extra}").routers[0]


def _request_body(router: RouterConfig, size: int, chunked: bool = False) -> Any:
    seen: list[Request] = []

    def service(request: Request) -> Deferred[Response]:
        seen.append(request)
        return succeed(Response(200))

    settings = server_settings(router, router.servers[0])
    server = HttpServer(Clock(), FunctionService(service), settings, NULL_STATS)
    proto = server.factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    body = b"x" * size
    if chunked:
        proto.dataReceived(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (size, body)
        )
    else:
        proto.dataReceived(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size + body
        )
    assert seen, "the request reached the service"
    return seen[0].body


def _response_body(router: RouterConfig, size: int) -> Any:
    reactor = MemoryReactorClock()
    params = router.client.params_for(router.dst_prefix)
    client = EndpointClient(
        reactor, Address("10.1.2.3", 8080), pool_settings(router, params), NULL_STATS, 1.0
    )
    got: list[Any] = []
    client(Request(b"GET", b"/", Headers([(b"Host", b"a")]))).addBoth(got.append)
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"y" * size)
    assert got and isinstance(got[0], Response)
    return got[0].body


@pytest.mark.parametrize(
    ("size", "buffered"), [(2047, True), (2048, True), (2049, False), (100_000, False)]
)
def test_requests_at_below_and_above_the_threshold(size: int, buffered: bool) -> None:
    router = _router("  streamAfterContentLengthKB: 2\n")
    body = _request_body(router, size)
    assert isinstance(body, BufferedBody if buffered else StreamBody)
    assert body.replayable is buffered  # a buffered request can be retried


@pytest.mark.parametrize(
    ("size", "buffered"), [(2047, True), (2048, True), (2049, False), (100_000, False)]
)
def test_responses_at_below_and_above_the_threshold(size: int, buffered: bool) -> None:
    router = _router("  streamAfterContentLengthKB: 2\n")
    body = _response_body(router, size)
    assert isinstance(body, BufferedBody if buffered else StreamBody)


def test_chunked_messages_stream_even_when_small() -> None:
    body = _request_body(_router("  streamAfterContentLengthKB: 100\n"), 10, chunked=True)
    assert isinstance(body, StreamBody)


def test_a_large_threshold_buffers_large_bodies_up_to_max_request_kb() -> None:
    router = _router("  streamAfterContentLengthKB: 102400\n  maxRequestKB: 200\n")
    assert isinstance(_request_body(router, 150 * 1024), BufferedBody)
    assert isinstance(_request_body(router, 201 * 1024), StreamBody)  # capped by maxRequestKB
    assert isinstance(_response_body(router, 150 * 1024), BufferedBody)


def test_unset_keeps_this_projects_thresholds() -> None:
    router = _router()
    assert router.stream_after_content_length_kb is None
    assert isinstance(_request_body(router, 8 * 1024), BufferedBody)
    assert isinstance(_request_body(router, 8 * 1024 + 1), StreamBody)
    assert isinstance(_response_body(router, 64 * 1024), BufferedBody)
    assert isinstance(_response_body(router, 64 * 1024 + 1), StreamBody)


def test_conflicts_with_streaming_disabled_as_in_linkerd_1() -> None:
    with pytest.raises(ConfigErrors) as e:
        _router("  streamingEnabled: false\n  streamAfterContentLengthKB: 5\n")
    assert "streamingEnabled: false and streamAfterContentLengthKB conflict" in str(e.value)
