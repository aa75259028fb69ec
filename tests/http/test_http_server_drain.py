"""Graceful drain of the HTTP server: the drain period, the hand-over port, socket options.

The phases run on a ``Clock`` with ``StringTransport`` connections; the listening socket's
behaviour (``SO_REUSEPORT``, accepting the queue before closing) on the real reactor.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import HttpServer, HttpServerProtocol, ServerSettings, serve_http
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def ok(request: Request) -> Deferred[Response]:
    return succeed(Response(200, Headers([(b"Content-Type", b"text/plain")]), BufferedBody(b"ok")))


class Conn:
    """One connection to the server: its protocol and transport."""

    def __init__(self, server: HttpServer) -> None:
        proto = server.factory.buildProtocol(None)
        assert isinstance(proto, HttpServerProtocol)
        self.proto = proto
        self.transport = StringTransport()
        proto.makeConnection(self.transport)

    def request(self) -> bytes:
        self.transport.clear()
        self.proto.dataReceived(GET)
        return bytes(self.transport.value())

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def lost(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))


def make_server(service: Any = ok, **settings: Any) -> tuple[Clock, HttpServer]:
    clock = Clock()
    return clock, HttpServer(
        clock, FunctionService(service), ServerSettings(**settings), NULL_STATS
    )


def test_drain_period_closes_each_connection_after_its_next_response() -> None:
    clock, server = make_server()
    conn = Conn(server)
    assert b"Connection: close" not in conn.request() and not conn.closed
    server.begin_drain()
    assert not conn.closed, "a connection used just now is not closed under its client"
    answer = conn.request()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in answer
    assert conn.closed


def test_drain_period_closes_connections_once_idle_a_while() -> None:
    clock, server = make_server(drain_idle_close_s=1.0)
    used_long_ago, used_just_now = Conn(server), Conn(server)
    used_long_ago.request()
    clock.advance(5)
    used_just_now.request()
    clock.advance(0.4)
    server.begin_drain()
    assert used_long_ago.closed and not used_just_now.closed
    clock.advance(0.7)  # idle 1.1 s now
    assert used_just_now.closed


def test_connection_accepted_during_the_drain_period_is_served_then_closed() -> None:
    clock, server = make_server(drain_idle_close_s=1.0)
    server.begin_drain()
    fresh = Conn(server)
    assert not fresh.closed, "its client opened it for a request on its way"
    answer = fresh.request()
    assert (
        answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in answer and fresh.closed
    )
    silent = Conn(server)
    clock.advance(1.1)
    assert silent.closed, "a connection that never sends a request does not outlive the drain"


def test_after_the_period_idle_kept_alive_connections_close_at_once_fresh_ones_after_a_while() -> (
    None
):
    clock, server = make_server(drain_idle_close_s=1.0)
    kept = Conn(server)
    kept.request()
    fresh = Conn(server)
    drained: list[object] = []
    server.drain(10.0).addCallback(drained.append)
    assert kept.closed and not fresh.closed
    kept.lost()
    answer = fresh.request()  # its request arrives after all: answered
    assert b"Connection: close\r\n" in answer and fresh.closed
    assert drained == []
    fresh.lost()
    assert drained == [None]


def test_drain_waits_for_the_port_to_close_and_serves_what_it_accepted_meanwhile() -> None:
    clock, server = make_server()

    class ClosingPort:
        def __init__(self) -> None:
            self.closing: Deferred[None] = Deferred()

        def stopListening(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
            return self.closing

    port = ClosingPort()
    server.port = port
    drained: list[object] = []
    server.drain(10.0).addCallback(drained.append)
    assert drained == [], "the port has not closed yet: it may still accept"
    late = Conn(server)  # accepted from the queue while closing
    port.closing.callback(None)
    assert not late.closed
    answer = late.request()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in answer
    late.lost()
    assert drained == [None]


def test_socket_options_on_accepted_connections() -> None:
    class Recording(StringTransport):
        def __init__(self) -> None:
            super().__init__()
            self.options: list[tuple[str, bool]] = []

        def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 (Twisted's name)
            self.options.append(("noDelay", enabled))

        def setTcpKeepAlive(self, enabled: bool) -> None:  # noqa: N802 (Twisted's name)
            self.options.append(("keepAlive", enabled))

    def accepted(**settings: Any) -> list[tuple[str, bool]]:
        _, server = make_server(**settings)
        transport = Recording()
        server.factory.buildProtocol(None).makeConnection(transport)  # type: ignore[union-attr]
        return transport.options

    assert accepted() == [("noDelay", True)]
    assert accepted(no_delay=False, keep_alive=True) == [
        ("noDelay", True),
        ("noDelay", False),
        ("keepAlive", True),
    ]


def listen(**settings: Any) -> HttpServer:
    return serve_http(
        reactor,
        "127.0.0.1",
        settings.pop("port", 0),
        FunctionService(ok),
        ServerSettings(**settings),
        NULL_STATS,
    )


def sockopt(server: HttpServer, option: int) -> int:
    return int(server.port.socket.getsockopt(socket.SOL_SOCKET, option))


@pytest_twisted.ensureDeferred
async def test_reuse_port_lets_two_servers_share_a_port() -> None:
    first = listen(reuse_port=True)
    port = first.getHost().port
    second = listen(port=port, reuse_port=True)
    try:
        assert second.getHost().port == port
        assert sockopt(first, socket.SO_REUSEPORT) == 1 and sockopt(first, socket.SO_REUSEADDR) == 1
        with pytest.raises(CannotListenError):
            listen(port=port)  # without the option: the port is taken
    finally:
        await first.drain(1.0)
        await second.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_reuse_addr_off() -> None:
    server = listen(reuse_addr=False)
    try:
        assert (
            sockopt(server, socket.SO_REUSEADDR) == 0 and sockopt(server, socket.SO_REUSEPORT) == 0
        )
    finally:
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_connections_queued_when_the_port_closes_are_answered_not_reset() -> None:
    """Closing a listening socket resets what its accept queue holds; the port accepts it first."""
    server = listen()
    client = socket.create_connection(("127.0.0.1", server.getHost().port), timeout=5)
    try:
        # connected (the kernel finished the handshake) but not accepted: the reactor has
        # not run since; the request waits in the kernel too
        client.sendall(GET)
        await server.drain(5.0)
        received = b""
        while True:
            data = client.recv(65536)
            if not data:
                break
            received += data
        assert (
            received.startswith(b"HTTP/1.1 200 ")
            and b"Connection: close\r\n" in received
            and received.endswith(b"ok")
        )
    finally:
        client.close()


def test_pipelined_requests_already_read_are_answered_and_the_last_closes() -> None:
    backend: list[Deferred[Response]] = []

    def hold(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        backend.append(d)
        return d

    clock, server = make_server(hold)
    conn = Conn(server)
    conn.proto.dataReceived(GET + GET)
    server.begin_drain()
    backend[0].callback(Response(200, Headers([]), BufferedBody(b"one")))
    first = bytes(conn.transport.value())
    assert (
        first.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in first and not conn.closed
    )
    backend[1].callback(Response(200, Headers([]), BufferedBody(b"two")))
    second = bytes(conn.transport.value())[len(first) :]
    assert (
        second.startswith(b"HTTP/1.1 200 ")
        and b"Connection: close\r\n" in second
        and second.endswith(b"two")
    )
    assert conn.closed


@pytest_twisted.ensureDeferred
async def test_keep_alive_and_no_delay_on_real_accepted_sockets() -> None:
    server = listen(keep_alive=True, no_delay=False)
    client = socket.create_connection(("127.0.0.1", server.getHost().port), timeout=5)
    try:
        await wait_for(lambda: bool(server.connections))
        (conn,) = server.connections
        accepted = conn.transport.getHandle()
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    finally:
        client.close()
        await server.drain(1.0)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        assert reactor.seconds() < deadline, "timed out"
        await deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_request_waiting_unread_in_the_socket_is_answered_not_dropped() -> None:
    """A busy reactor may run the drain's idle check before it reads a request that arrived."""
    server = listen()
    client = socket.create_connection(("127.0.0.1", server.getHost().port), timeout=5)
    client.setblocking(False)
    try:
        client.sendall(GET)
        first = await read_until(client, lambda got: got.endswith(b"ok"))
        assert b"Connection: close" not in first
        (conn,) = server.connections
        client.sendall(GET)  # the reactor does not run until the next await: nothing reads it
        deadline = time.monotonic() + 5
        while not has_unread(conn):
            assert time.monotonic() < deadline, "the request never reached the server's socket"
        conn.drain(0.0)  # as when the listeners close: an idle kept-alive connection
        second = await read_until(client, lambda got: False)  # to the end of the connection
        assert (
            second.startswith(b"HTTP/1.1 200 ")
            and b"Connection: close\r\n" in second
            and second.endswith(b"ok")
        )
    finally:
        client.close()
        await server.drain(1.0)


def has_unread(conn: HttpServerProtocol) -> bool:
    from l5d_twisted.http.server import _has_unread_bytes

    return _has_unread_bytes(conn.transport)


async def read_until(client: socket.socket, done: Any, timeout: float = 5.0) -> bytes:
    """Read without blocking the reactor until ``done(received)`` or the end of the connection."""
    received = b""
    deadline = reactor.seconds() + timeout
    while not done(received):
        try:
            data = client.recv(65536)
        except BlockingIOError:
            assert reactor.seconds() < deadline, f"timed out with {received!r}"
            await deferLater(reactor, 0.005, lambda: None)
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return received
