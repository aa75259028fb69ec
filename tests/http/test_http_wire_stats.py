"""The wire's own stats: connections gauge, connects, sent/received bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport

from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Request
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import FunctionService


class Recorder:
    """A minimal StatsReceiver that remembers everything by name."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, Callable[[], float]] = {}

    def counter(self, *name: str) -> Any:
        key = "/".join(name)
        recorder = self

        class C:
            def incr(self, n: int = 1) -> None:
                recorder.counters[key] = recorder.counters.get(key, 0) + n

        return C()

    def stat(self, *name: str) -> Any:
        return self.counter(*name)

    def gauge(self, *name: str, fn: Callable[[], float]) -> Any:
        key = "/".join(name)
        self.gauges[key] = fn
        gauges = self.gauges

        class G:
            def remove(self) -> None:
                gauges.pop(key, None)

        return G()

    def scope(self, *name: str) -> Any:
        return self


def test_client_stats() -> None:
    reactor = MemoryReactorClock()
    stats = Recorder()
    client = EndpointClient(reactor, Address("10.0.0.1", 80), PoolSettings(), stats)
    client(Request(b"GET", b"/"))
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    proto.dataReceived(response)
    assert stats.counters["connects"] == 1
    assert stats.gauges["connections"]() == 1
    assert stats.counters["sent_bytes"] == len(b"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n")
    assert stats.counters["received_bytes"] == len(response)
    client.close()
    assert "connections" not in stats.gauges  # removed once the pool is closed


def test_server_stats() -> None:
    reactor = MemoryReactorClock()
    stats = Recorder()
    server = HttpServer(reactor, FunctionService(lambda r: None), ServerSettings(), stats)  # type: ignore[arg-type, return-value]
    conns = []
    for _ in range(2):
        proto = server.factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        conns.append(proto)
    assert stats.counters["connects"] == 2 and stats.gauges["connections"]() == 2
    conns[0].connectionLost(None)
    assert stats.gauges["connections"]() == 1
