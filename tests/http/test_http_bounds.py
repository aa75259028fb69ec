"""Bounds a client or a backend cannot push past (issue 10, finding 5).

Request body pace (idle timeout and minimum rate), connections per server, the size of a
response head, and the default total timeout, driven with StringTransport and a Clock.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from l5d_twisted.config.params import ServiceParams
from l5d_twisted.errors import ClientTimeout, RequestTimeout, UpstreamProtocolError
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.pool import PoolSettings
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.http.stream import HIGH_WATER, StreamBody
from l5d_twisted.http.tls import tls_server_factory
from l5d_twisted.naming.addr import Address
from l5d_twisted.resilience.classifiers import non_retryable_5xx
from l5d_twisted.router.stacks import DEFAULT_STACKS, StackParams
from l5d_twisted.service import FunctionService, Params
from l5d_twisted.telemetry.stats import NULL_STATS


class Counters:
    """A StatsReceiver that keeps counters only (enough for these tests)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def counter(self, *name: str) -> Any:
        counts, key = self.counts, "/".join(name)

        class _C:
            def incr(self, n: int = 1) -> None:
                counts[key] += n

        return _C()

    def stat(self, *name: str) -> Any:
        return NULL_STATS.stat(*name)

    def gauge(self, *name: str, fn: Any) -> Any:
        return NULL_STATS.gauge(*name, fn=fn)

    def scope(self, *name: str) -> Any:
        return self


def server_with(service: Any, **settings: Any) -> tuple[Clock, HttpServer, Counters]:
    clock = Clock()
    stats = Counters()
    return (
        clock,
        HttpServer(clock, FunctionService(service), ServerSettings(**settings), stats),
        stats,
    )


def connect(server: HttpServer) -> tuple[Any, StringTransport]:
    proto = server.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def ok(text: bytes = b"ok") -> Response:
    return Response(200, Headers(), BufferedBody(text))


class BodyReader:
    """Reads the whole request body, as forwarding does, then answers with it."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.calls = 0

    def __call__(self, request: Request) -> Deferred[Response]:
        self.calls += 1
        assert isinstance(request.body, StreamBody)

        def failed(f: Failure) -> Failure:
            self.errors.append(f.value)
            return f

        return request.body.read_all().addCallbacks(lambda body: ok(body.data), failed)


CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


# -- request body pace ---------------------------------------------------------------------


def test_chunk_every_5_s_upload_is_cut_by_the_minimum_rate() -> None:
    """One small chunk every 5 s: an idle timeout alone never fires; the average rate does."""
    reader = BodyReader()
    clock, server, stats = server_with(reader)
    proto, transport = connect(server)
    proto.dataReceived(CHUNKED_HEAD)
    for _ in range(4):
        proto.dataReceived(b"5\r\nhello\r\n")
        clock.advance(5)
        if transport.value():
            break
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 408 "), out[:60]
    assert b"Connection: close" in out and transport.disconnecting
    assert [type(e) for e in reader.errors] == [ClientTimeout]
    assert stats.counts["request_body_timeouts"] == 1


def test_an_upload_at_a_steady_pace_is_not_cut() -> None:
    reader = BodyReader()
    clock, server, _ = server_with(reader)
    proto, transport = connect(server)
    proto.dataReceived(CHUNKED_HEAD)
    chunk = b"x" * 1000
    for _ in range(120):  # 1,000 B/s for two minutes
        proto.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        clock.advance(1)
    proto.dataReceived(b"0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ") and reader.errors == []


def test_stalled_body_is_cut_by_the_idle_timeout_with_rate_off() -> None:
    reader = BodyReader()
    clock, server, stats = server_with(reader, body_idle_timeout_s=30.0, min_body_bytes_per_s=0)
    proto, transport = connect(server)
    proto.dataReceived(CHUNKED_HEAD + b"5\r\nhello\r\n")
    clock.advance(29)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert stats.counts["request_body_timeouts"] == 1


def test_small_body_not_yet_dispatched_gets_408_and_the_service_is_never_called() -> None:
    reader = BodyReader()
    clock, server, _ = server_with(reader)
    proto, transport = connect(server)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab")
    for _ in range(10):
        clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 408 ") and reader.calls == 0


def test_time_the_body_is_paused_by_backpressure_is_not_the_clients() -> None:
    """The consumer is slow (its transport is full): we stop reading, the client waits."""
    bodies: list[StreamBody] = []

    def hold(request: Request) -> Deferred[Response]:
        assert isinstance(request.body, StreamBody)
        bodies.append(request.body)
        return Deferred()

    clock, server, _ = server_with(hold)
    proto, transport = connect(server)
    proto.dataReceived(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (HIGH_WATER + 1, b"x" * (HIGH_WATER + 1)))
    assert transport.producerState == "paused"  # nobody consumes yet: the source is paused
    clock.advance(300)
    assert transport.value() == b"" and not transport.disconnecting
    sink: list[bytes] = []

    class Sink:
        def body_data(self, data: bytes) -> None:
            sink.append(data)

        def body_end(self, trailers: Any) -> None:
            pass

        def body_error(self, reason: BaseException) -> None:
            pass

    bodies[0].consume(Sink())  # reading resumes: the pace is measured from now
    assert transport.producerState == "producing"
    clock.advance(3)
    assert not transport.disconnecting


def test_a_body_waiting_for_100_continue_is_not_timed() -> None:
    calls: list[Deferred[Response]] = []

    def held(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        calls.append(d)
        return d

    clock, server, _ = server_with(held)
    proto, transport = connect(server)
    proto.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.dataReceived(
        b"POST /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    clock.advance(120)  # the first request takes two minutes; the second waits for its 100
    assert transport.value() == b""
    calls[0].callback(ok())
    assert b"100 Continue" in transport.value()
    proto.dataReceived(b"body")
    calls[1].callback(ok(b"two"))
    assert transport.value().count(b"HTTP/1.1 200 ") == 2


# -- connections per server -----------------------------------------------------------------


def test_connections_beyond_max_connections_are_refused_at_accept_and_counted() -> None:
    _, server, stats = server_with(lambda r: Deferred(), max_connections=2)
    first, t1 = connect(server)
    connect(server)
    assert server.factory.buildProtocol(None) is None  # the port closes the socket
    assert stats.counts["connections_refused"] == 1
    first.connectionLost(Failure(ConnectionResetError()))
    assert server.factory.buildProtocol(None) is not None  # room again


def test_tls_connections_beyond_max_connections_are_refused_before_the_handshake() -> None:
    _, server, stats = server_with(lambda r: Deferred(), max_connections=1)
    connect(server)
    factory = tls_server_factory(CertificateOptions(), server.factory, server.accepts_connection)
    assert factory.buildProtocol(None) is None
    assert stats.counts["connections_refused"] == 1


def test_max_connections_none_is_unbounded() -> None:
    _, server, stats = server_with(lambda r: Deferred())
    for _ in range(50):
        connect(server)
    assert len(server.connections) == 50 and stats.counts["connections_refused"] == 0


# -- response head size (maxHeadersKB applies to both codecs, as in linkerd 1) --------------


def upstream(max_headers_kb: int = 8) -> tuple[HttpClientProtocol, StringTransport, list[Any]]:
    client = EndpointClient(
        Clock(), Address("127.0.0.1", 9), PoolSettings(max_headers_kb=max_headers_kb), NULL_STATS
    )
    proto = HttpClientProtocol(client)
    transport = StringTransport()
    proto.makeConnection(transport)
    outcomes: list[Any] = []
    proto.send(Request(b"GET", b"/", Headers([(b"Host", b"w")]))).addBoth(outcomes.append)
    return proto, transport, outcomes


def test_30_mb_response_header_is_refused_after_a_bounded_read() -> None:
    proto, transport, outcomes = upstream()
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nX-Big: ")
    fed = 0
    block = b"a" * 65536
    while fed < 30 * 1024 * 1024 and not outcomes:
        proto.dataReceived(block)
        fed += len(block)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Failure)
    assert isinstance(outcomes[0].value, UpstreamProtocolError) and outcomes[0].value.status == 502
    assert "maxHeadersKB" in outcomes[0].value.message
    assert fed <= 8 * 1024 + 4 * 1024 + 65536  # stopped within one read of the limit
    assert transport.disconnecting or not proto.reusable


def test_many_small_response_fields_over_the_limit_are_refused() -> None:
    proto, _, outcomes = upstream(max_headers_kb=8)
    head = (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 90) for i in range(100))
        + b"Content-Length: 0\r\n\r\n"
    )
    proto.dataReceived(head)
    assert isinstance(outcomes[0], Failure) and isinstance(outcomes[0].value, UpstreamProtocolError)


def test_response_head_under_the_limit_is_accepted() -> None:
    proto, _, outcomes = upstream(max_headers_kb=8)
    head = (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 90) for i in range(60))
        + b"Content-Length: 2\r\n\r\nok"
    )
    for i in range(0, len(head), 100):  # in small reads
        proto.dataReceived(head[i : i + 100])
    assert isinstance(outcomes[0], Response) and outcomes[0].status == 200


# -- the default total timeout ----------------------------------------------------------------


def service_stack(clock: Clock, leaf: Any, params: ServiceParams) -> Any:
    return DEFAULT_STACKS.service.make(
        Params()
        .plus(StackParams.REACTOR, clock)
        .plus(StackParams.STATS, NULL_STATS)
        .plus(StackParams.CLASSIFIER, non_retryable_5xx())
        .plus(StackParams.RNG, random.Random(1))
        .plus(StackParams.SERVICE, params),
        FunctionService(leaf),
    )


def test_default_total_timeout_answers_a_hung_backend_in_15_s() -> None:
    assert ServiceParams().total_timeout_ms == 15_000
    clock = Clock()
    cancelled: list[int] = []
    service = service_stack(
        clock, lambda r: Deferred(lambda d: cancelled.append(1)), ServiceParams()
    )
    outcomes: list[Any] = []
    service(Request(b"GET", b"/", Headers([(b"Host", b"h")]))).addBoth(outcomes.append)
    clock.advance(14.9)
    assert outcomes == []
    clock.advance(0.2)
    assert isinstance(outcomes[0], Failure) and isinstance(outcomes[0].value, RequestTimeout)
    assert outcomes[0].value.status == 503 and cancelled == [1]  # the upstream exchange is dropped


def test_default_total_timeout_bounds_the_head_not_a_long_streamed_body() -> None:
    clock = Clock()
    body = StreamBody(None, None)
    answer: Deferred[Response] = Deferred()
    service = service_stack(clock, lambda r: answer, ServiceParams())
    outcomes: list[Any] = []
    service(Request(b"GET", b"/download", Headers([(b"Host", b"h")]))).addBoth(outcomes.append)
    clock.advance(1)
    answer.callback(Response(200, Headers(), body))
    received: list[Any] = []
    assert isinstance(outcomes[0], Response)
    outcomes[0].body.read_all().addBoth(received.append)
    for _ in range(60):  # a one-minute download
        body.write(b"x" * 1000)
        clock.advance(1)
    body.finish()
    assert isinstance(received[0], BufferedBody) and len(received[0].data) == 60_000


def test_total_timeout_null_turns_it_off() -> None:
    clock = Clock()
    service = service_stack(clock, lambda r: Deferred(), ServiceParams(total_timeout_ms=None))
    outcomes: list[Any] = []
    service(Request(b"GET", b"/", Headers([(b"Host", b"h")]))).addBoth(outcomes.append)
    clock.advance(3600)
    assert outcomes == []
