"""The server protocol driven with StringTransport and a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from l5d_twisted.errors import NoHostsAvailable
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS


class Backend:
    """A service whose answers the test gives by hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[Request, Deferred[Response]]] = []
        self.cancelled = 0

    def __call__(self, request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred(self._cancel)
        self.calls.append((request, d))
        return d

    def _cancel(self, d: Deferred[Response]) -> None:
        self.cancelled += 1


def connection(service: Any, **settings: Any) -> tuple[Clock, HttpServer, Any, StringTransport]:
    clock = Clock()
    server = HttpServer(clock, FunctionService(service), ServerSettings(**settings), NULL_STATS)
    proto = server.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return clock, server, proto, transport


def ok(text: bytes = b"ok") -> Response:
    return Response(200, Headers([(b"Content-Type", b"text/plain")]), BufferedBody(text))


def test_pipelined_requests_run_one_at_a_time_in_order() -> None:
    backend = Backend()
    _, _, proto, transport = connection(backend)
    proto.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [r.uri for r, _ in backend.calls] == [b"/1"]
    backend.calls[0][1].callback(ok(b"one"))
    assert [r.uri for r, _ in backend.calls] == [b"/1", b"/2"]
    backend.calls[1][1].callback(ok(b"two"))
    out = transport.value()
    assert out.index(b"one") < out.index(b"two")
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2


def test_request_as_the_service_sees_it() -> None:
    backend = Backend()
    _, _, proto, _ = connection(backend, max_buffered_body_kb=1)
    proto.dataReceived(
        b"POST http://svc/x HTTP/1.1\r\nHost: svc\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
        b"Content-Length: 5\r\nX-Keep: 2\r\n\r\nhello"
    )
    request = backend.calls[0][0]
    assert (
        request.method == b"POST" and request.uri == b"http://svc/x" and request.version == b"1.1"
    )
    assert request.headers.items() == [(b"Host", b"svc"), (b"X-Keep", b"2")]
    assert request.body.replayable and request.body.data == b"hello"


def test_large_body_is_a_stream_and_not_replayable() -> None:
    backend = Backend()
    _, _, proto, _ = connection(backend, max_buffered_body_kb=1)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" + b"x" * 100)
    body = backend.calls[0][0].body
    assert isinstance(body, StreamBody) and not body.replayable and body.length == 2000


def test_clear_context_strips_l5d_fields() -> None:
    backend = Backend()
    _, _, proto, _ = connection(backend, clear_context=True)
    proto.dataReceived(
        b"GET / HTTP/1.1\r\nHost: a\r\nl5d-dtab: /a=>/b\r\nL5d-Ctx-Deadline: 1 2\r\nX-Other: 1\r\n\r\n"
    )
    assert backend.calls[0][0].headers.items() == [(b"Host", b"a"), (b"X-Other", b"1")]


def test_service_failure_becomes_error_response() -> None:
    _, _, proto, transport = connection(lambda r: _failing())
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"l5d-err: no%20hosts\r\n" in out and b"l5d-retryable: true\r\n" in out
    assert not transport.disconnecting  # an error response keeps the connection


def _failing() -> Deferred[Response]:
    d: Deferred[Response] = Deferred()
    d.errback(NoHostsAvailable("no hosts"))
    return d


def test_service_exception_is_502() -> None:
    def boom(request: Request) -> Deferred[Response]:
        raise RuntimeError("bug")

    _, _, proto, transport = connection(boom)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 502 ")


def test_response_body_failure_after_head_aborts_the_connection() -> None:
    body = StreamBody(None, None)
    _, _, proto, transport = connection(lambda r: succeed(Response(200, body=body)))
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    body.write(b"part")
    assert b"Transfer-Encoding: chunked" in transport.value()
    body.fail(ConnectionError("upstream died"))
    assert transport.disconnecting
    assert not transport.value().endswith(b"0\r\n\r\n")


def test_client_going_away_cancels_the_service_call() -> None:
    backend = Backend()
    _, _, proto, _ = connection(backend)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.connectionLost(Failure(ConnectionDone()))
    assert backend.cancelled == 1


def test_idle_timeout_closes() -> None:
    clock, _, proto, transport = connection(
        Backend(), idle_timeout_s=5.0, header_read_timeout_s=2.0
    )
    clock.advance(4.0)
    assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting


def test_slow_head_gets_408() -> None:
    clock, _, proto, transport = connection(
        Backend(), idle_timeout_s=60.0, header_read_timeout_s=2.0
    )
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost:")
    clock.advance(2.5)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting


def test_in_flight_request_is_not_timed_out_by_idle() -> None:
    backend = Backend()
    clock, _, proto, transport = connection(backend, idle_timeout_s=1.0)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    clock.advance(10)
    assert not transport.disconnecting
    backend.calls[0][1].callback(ok())
    clock.advance(1.1)
    assert transport.disconnecting


def test_drain_finishes_in_flight_then_closes() -> None:
    backend = Backend()
    clock, server, proto, transport = connection(backend)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    drained: list[object] = []
    server.drain(5.0).addCallback(drained.append)
    assert not transport.disconnecting and drained == []
    backend.calls[0][1].callback(ok())
    assert b"Connection: close" in transport.value()
    assert transport.disconnecting
    proto.connectionLost(Failure(ConnectionDone()))
    assert drained == [None]


def test_drain_aborts_stragglers_after_grace() -> None:
    backend = Backend()
    clock, server, proto, transport = connection(backend)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    server.drain(1.0)
    clock.advance(1.5)
    assert transport.disconnecting


def test_max_concurrent_requests_across_connections() -> None:
    backend = Backend()
    clock, server, proto, transport = connection(backend, max_concurrent_requests=1)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    other = server.factory.buildProtocol(None)
    other_transport = StringTransport()
    other.makeConnection(other_transport)
    other.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert other_transport.value().startswith(b"HTTP/1.1 503 ")
    assert b"l5d-retryable: true" in other_transport.value()
    backend.calls[0][1].callback(ok())
    other.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(backend.calls) == 2


def test_connect_is_refused_with_405() -> None:
    _, _, proto, transport = connection(Backend())
    proto.dataReceived(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 405 ")
    assert transport.disconnecting


def test_expect_continue_for_a_chunked_upload_is_answered_at_dispatch() -> None:
    backend = Backend()
    _, _, proto, transport = connection(backend)
    proto.dataReceived(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    )
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"expect" not in backend.calls[0][0].headers


def test_expect_continue_waits_for_the_previous_response() -> None:
    backend = Backend()
    _, _, proto, transport = connection(backend)
    proto.dataReceived(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert transport.value() == b""  # a 100 now would interleave with the first response
    backend.calls[0][1].callback(ok(b"first"))
    assert transport.value().endswith(b"first" + b"HTTP/1.1 100 Continue\r\n\r\n")
    proto.dataReceived(b"abc")
    assert backend.calls[1][0].body.data == b"abc"


def test_stalled_small_body_gets_408() -> None:
    backend = Backend()
    # the body's own idle timeout (its minimum rate is tested in test_http_bounds.py)
    clock, _, proto, transport = connection(
        backend, body_idle_timeout_s=5.0, min_body_bytes_per_s=0
    )
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    clock.advance(3)
    proto.dataReceived(b"de")  # still trickling in: not idle yet
    clock.advance(3)
    assert not transport.disconnecting
    clock.advance(3)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting and backend.calls == []


def test_malformed_responses_become_502_not_a_hang() -> None:
    answers: list[Any] = [
        None,
        Response(200, Headers([(b"X-Bad", "not bytes")])),
        Response(200, body=BufferedBody(b"fine")),
    ]  # type: ignore[list-item]
    _, _, proto, transport = connection(lambda r: succeed(answers.pop(0)))
    for _ in range(3):
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = transport.value()
    assert out.count(b"HTTP/1.1 502 ") == 2
    assert out.endswith(b"fine")
    assert not transport.disconnecting
