"""The smallest useful HTTP/1.1 forwarder on Twisted + httptools: the floor for l5d-twisted.

    python3 bench/minimal_forwarder.py --port 4140 --backend 127.0.0.1:8080

What ``bench/proxy_bench.py`` runs as its "minimal forwarder" row, so that the reader sees
what Python, Twisted's reactor and httptools cost per request before any mesh logic:

* one :class:`Downstream` protocol per client connection, parsing requests with
  ``httptools.HttpRequestParser``;
* per client connection one keep-alive upstream connection (:class:`Upstream`), opened on
  the first request and reused for every later one, parsing responses with
  ``httptools.HttpResponseParser``; requests are written to it as they complete (in order,
  so a pipelining client is answered in order);
* each request and response re-encoded (head rebuilt from the parsed fields, hop-by-hop
  ``Connection``/``Keep-Alive``/``Transfer-Encoding`` dropped, bodies framed by
  ``Content-Length``), as any proxy that reads the message must;
* no routing, naming, balancing, retries, deadlines, stats or logging.

It runs on the same reactor as ``l5d-twisted run`` (``l5d_twisted.eventloop``: epoll
without Twisted's per-event log context; ``--reactor twisted`` for Twisted's own), with
the garbage collector as Python sets it.  Limits, fine for the benchmark's GETs: no HEAD
(a response to HEAD would be read as having a body), no ``Expect: 100-continue``, no
upgrades, whole messages buffered.  An upstream that fails answers the requests still
waiting on it with a 502 and is replaced on the next request.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import deque
from typing import Any

import httptools
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory

HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"proxy-connection", b"te", b"upgrade")
)
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"


def encode(first_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    parts = [first_line]
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP and name.lower() != b"content-length":
            parts.append(b"%s: %s\r\n" % (name, value))
    if body or first_line.startswith(b"HTTP/"):
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


class Upstream(Protocol):
    """One keep-alive connection to the backend, owned by one :class:`Downstream`."""

    transport: Any = None

    def __init__(self, downstream: Downstream) -> None:
        self.downstream = downstream
        self.parser = httptools.HttpResponseParser(self)
        self.pending: list[bytes] = []  # written once connected
        self.waiting = 0  # requests written, response not complete
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.reason = b""
        self.lost = False

    def connectionMade(self) -> None:
        transport = self.transport
        transport.setTcpNoDelay(True)
        if self.pending:
            transport.write(b"".join(self.pending))
            self.pending = []

    def dataReceived(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True
        if self.downstream.upstream is self:
            self.downstream.upstream = None
        self.downstream.upstream_failed(self.waiting)
        self.waiting = 0

    def send(self, request: bytes) -> None:
        self.waiting += 1
        if self.transport is None:
            self.pending.append(request)
        else:
            self.transport.write(request)

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.headers = []
        self.body = []

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.waiting -= 1
        status = self.parser.get_status_code()
        first = b"HTTP/1.1 %d %s\r\n" % (status, self.reason)
        self.downstream.respond(encode(first, self.headers, b"".join(self.body)))
        if not self.parser.should_keep_alive():
            self.transport.loseConnection()


class UpstreamFactory(ClientFactory):
    noisy = False

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def buildProtocol(self, addr: Any) -> Upstream:
        return self.upstream

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.upstream.connectionLost(reason)


class Downstream(Protocol):
    """One client connection: parse its requests, forward them, write the answers back."""

    transport: Any = None

    def __init__(self, server: Forwarder) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.keep_alive: deque[bool] = deque()  # per request in flight, in order
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None and upstream.transport is not None and not upstream.lost:
            upstream.downstream = _Nobody
            upstream.transport.loseConnection()

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.url = []
        self.headers = []
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        first = b"%s %s HTTP/1.1\r\n" % (parser.get_method(), b"".join(self.url))
        request = encode(first, self.headers, b"".join(self.body))
        self.keep_alive.append(parser.should_keep_alive())
        upstream = self.upstream
        if upstream is None:
            upstream = self.upstream = Upstream(self)
            host, port = self.server.backend
            self.server.reactor.connectTCP(host, port, UpstreamFactory(upstream), timeout=10)
        upstream.send(request)

    # from the upstream
    def respond(self, response: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(response)
        if self.keep_alive and not self.keep_alive.popleft():
            self.transport.loseConnection()

    def upstream_failed(self, unanswered: int) -> None:
        for _ in range(unanswered):
            self.respond(BAD_GATEWAY)


class _NobodyClass:
    """The downstream of an upstream whose client has gone: answers go nowhere."""

    upstream = None

    def respond(self, response: bytes) -> None:
        pass

    def upstream_failed(self, unanswered: int) -> None:
        pass


_Nobody: Any = _NobodyClass()


class Forwarder(ServerFactory):
    noisy = False

    def __init__(self, reactor: Any, backend: tuple[str, int]) -> None:
        self.reactor = reactor
        self.backend = backend

    def buildProtocol(self, addr: Any) -> Downstream:
        return Downstream(self)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--backend", required=True, metavar="HOST:PORT")
    parser.add_argument("--reactor", choices=["lean", "twisted"], default="lean")
    args = parser.parse_args(argv)
    host, _, port = args.backend.rpartition(":")
    if args.reactor == "lean":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from l5d_twisted.eventloop import install

        install()
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    reactor.listenTCP(
        args.port, Forwarder(reactor, (host, int(port))), backlog=4096, interface="127.0.0.1"
    )
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run(installSignalHandlers=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
