"""The floor for any Twisted proxy: relay bytes blindly, one upstream connection per client.

    python3 bench/http_wire/twisted_relay.py LISTEN_PORT UPSTREAM_PORT

No parsing, no pooling, Twisted's own queued writes: what the reactor alone costs per
request, for ``run.py`` to compare the HTTP wire against.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import protocol
from twisted.internet import reactor as _reactor

reactor: Any = _reactor


class Upstream(protocol.Protocol):
    transport: Any

    def __init__(self, downstream: Downstream) -> None:
        self.downstream = downstream

    def connectionMade(self) -> None:
        self.downstream.upstream = self
        if self.downstream.pending:
            self.transport.write(b"".join(self.downstream.pending))
            self.downstream.pending = []

    def dataReceived(self, data: bytes) -> None:
        self.downstream.transport.write(data)

    def connectionLost(self, reason: object = None) -> None:
        self.downstream.transport.loseConnection()


class Downstream(protocol.Protocol):
    transport: Any

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []

    def connectionMade(self) -> None:
        up = Upstream(self)
        protocol.ClientCreator(reactor, lambda: up).connectTCP("127.0.0.1", self.upstream_port)

    def dataReceived(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason: object = None) -> None:
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


def main() -> int:
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    factory: Any = protocol.Factory.forProtocol(lambda: Downstream(upstream))
    reactor.listenTCP(listen, factory, interface="127.0.0.1")
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
