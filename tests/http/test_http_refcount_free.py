"""A closed connection is freed by reference counting alone, not by a full garbage collection.

Under an attack thousands of connections close a minute; left in reference cycles they
make every full collection long (0.4-1.5 s in bench/attack/mixed.py).  Each test builds
the object through the real code path, closes it, drops every reference, and checks with
the collector disabled (never calling ``gc.collect()``) that it is gone.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from l5d_testing import no_gc
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol, PoolSettings
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.pool import SPENT_FACTORY
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def freed(build: Callable[[], Any]) -> bool:
    """Whether what ``build`` returns (closed, the only reference left) dies by refcount."""
    with no_gc():
        ref = weakref.ref(build())
        return ref() is None


def ok() -> Response:
    return Response(200, Headers([(b"Content-Type", b"text/plain")]), BufferedBody(b"ok"))


class Server:
    """A long-lived server (kept alive by the test) and a way to open connections on it."""

    def __init__(self, service: Any) -> None:
        self.clock = Clock()
        self.server = HttpServer(self.clock, FunctionService(service), ServerSettings(), NULL_STATS)
        self.transports: list[StringTransport] = []

    def connect(self) -> Any:
        proto = self.server.factory.buildProtocol(None)
        transport = StringTransport()
        self.transports.append(transport)
        proto.makeConnection(transport)
        return proto


def lost(proto: Any, reason: BaseException | None = None) -> None:
    """The connection ends as Twisted's TCP transport ends it: it drops its protocol first."""
    transport = getattr(proto, "transport", None)
    if getattr(transport, "protocol", None) is proto:
        del transport.protocol
    proto.connectionLost(Failure(reason or ConnectionDone()))


def test_a_server_connection_that_answered_is_freed_once_closed() -> None:
    server = Server(lambda request: succeed(ok()))

    def build() -> Any:
        proto = server.connect()
        proto.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert server.transports[-1].value().count(b"200 OK") == 2
        lost(proto)
        return proto

    assert freed(build)


def test_a_server_connection_closed_mid_request_is_freed() -> None:
    pending: list[Deferred[Response]] = []

    def service(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        pending.append(d)
        return d

    server = Server(service)

    def build() -> Any:
        proto = server.connect()
        # one request being answered, one streaming its body, one waiting behind
        proto.dataReceived(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        assert len(pending) == 1
        lost(proto, ConnectionLost())
        assert server.server.in_flight == 0
        pending.clear()
        return proto

    assert freed(build)


def test_a_server_connection_closed_while_idle_or_after_a_bad_request_is_freed() -> None:
    server = Server(lambda request: succeed(ok()))

    def idle() -> Any:
        proto = server.connect()
        server.clock.advance(120)  # the idle timeout closed it
        assert server.transports[-1].disconnecting
        lost(proto)
        return proto

    def bad() -> Any:
        proto = server.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert b"400" in server.transports[-1].value()
        lost(proto)
        return proto

    assert freed(idle)
    assert freed(bad)
    assert not server.clock.getDelayedCalls()  # no timer left behind for them


def make_client() -> tuple[MemoryReactorClock, EndpointClient]:
    reactor = MemoryReactorClock()
    return reactor, EndpointClient(
        reactor, Address("10.1.2.3", 8080), PoolSettings(), NULL_STATS, 1.0
    )


def accept(reactor: MemoryReactorClock) -> Any:
    """The connection the pool asked for, connected through the connector's factory: its
    stand-in hands the transport to our protocol (``transport.protocol``) and steps aside,
    so the protocol returned is ours, with nothing of Twisted's wrapped around it."""
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    transport = StringTransport()
    factory.buildProtocol(None).makeConnection(transport)
    proto = transport.protocol  # type: ignore[attr-defined]
    assert type(proto) is HttpClientProtocol
    return proto


def test_an_upstream_connection_is_freed_once_closed() -> None:
    reactor, client = make_client()
    answers: list[Any] = []

    def build() -> Any:
        client(Request(b"GET", b"/x")).addBoth(answers.append)
        proto = accept(reactor)
        proto.dataReceived(OK)
        assert answers[-1].status == 200
        lost(proto)
        return proto

    def mid_response() -> Any:
        client(Request(b"GET", b"/x")).addBoth(answers.append)
        proto = accept(reactor)
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi")
        lost(proto, ConnectionLost())
        return proto

    assert freed(build)
    assert freed(mid_response)
    answers.clear()


def test_a_closed_endpoint_client_is_freed_with_its_pool() -> None:
    def build() -> Any:
        reactor, client = make_client()
        got: list[Any] = []
        client(Request(b"GET", b"/x")).addBoth(got.append)
        proto = accept(reactor)
        proto.dataReceived(OK)
        closed: list[Any] = []
        client.close().addBoth(closed.append)
        lost(proto)
        assert closed == [None]
        return client

    assert freed(build)


def test_a_streamed_body_lets_go_of_its_pipe_and_source_once_delivered() -> None:
    class Source:
        def pause_body(self) -> None: ...
        def resume_body(self) -> None: ...
        def abort_body(self) -> None: ...

    class Pipe:
        """Like codec.BodyPipe: holds the stream it consumes."""

        def __init__(self, stream: StreamBody) -> None:
            self.stream = stream
            self.ended: list[str] = []
            stream.consume(self)

        def body_data(self, data: bytes) -> None: ...

        def body_end(self, trailers: Any) -> None:
            self.ended.append("end")

        def body_error(self, reason: BaseException) -> None:
            self.ended.append("error")

    def ended(how: str) -> Callable[[], Any]:
        def build() -> Any:
            source = Source()
            stream = StreamBody(source, None)
            pipe = Pipe(stream)
            stream.write(b"abc")
            if how == "end":
                stream.finish()
            else:
                stream.fail(ConnectionLost())
            assert pipe.ended == [how]
            source_ref.append(weakref.ref(source))
            return pipe

        return build

    source_ref: list[Any] = []
    assert freed(ended("end"))
    assert freed(ended("error"))
    with no_gc():
        assert [r() for r in source_ref] == [None, None]


def test_a_closed_upstream_connection_cuts_twisteds_connector_cycles() -> None:
    """tcp.Client <-> Connector, and the connector's factory (a shared spent one once connected)."""

    class Connector:
        transport: Any = None
        factory: Any = None

    class Transport(StringTransport):
        connector: Any = None

    reactor, client = make_client()
    answers: list[Any] = []

    def build() -> Any:
        client(Request(b"GET", b"/x")).addBoth(answers.append)
        _, _, factory, _, _ = reactor.tcpClients.pop(0)
        connector = Connector()
        connector.factory = factory
        factory.startedConnecting(connector)
        stand_in = factory.buildProtocol(None)
        transport = Transport()
        transport.connector = connector
        connector.transport = transport  # as tcp.Client and its Connector do
        stand_in.makeConnection(transport)
        proto = transport.protocol  # type: ignore[attr-defined]
        assert connector.factory is SPENT_FACTORY  # the connector let go of its factory
        proto.dataReceived(OK)
        assert answers[-1].status == 200
        lost(proto)
        return connector

    assert freed(build)
