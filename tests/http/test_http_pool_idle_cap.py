"""hostConnectionPool.maxIdlePerClient (issue 17): the idle connections of all of one
client's endpoints are capped together; the one idle the longest is closed first."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from l5d_twisted.config.loader import load_config
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Request
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path
from l5d_twisted.protocols.http import pool_settings
from l5d_twisted.telemetry.stats import NULL_STATS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def endpoints(n: int, settings: PoolSettings) -> tuple[MemoryReactorClock, list[EndpointClient]]:
    reactor = MemoryReactorClock()
    return reactor, [
        EndpointClient(reactor, Address(f"10.0.0.{i}", 80), settings, NULL_STATS, 1.0)
        for i in range(n)
    ]


def exchange(reactor: MemoryReactorClock, client: EndpointClient) -> tuple[Any, StringTransport]:
    """One request and its response on a new connection, which then goes idle."""
    got: list[Any] = []
    client(Request(b"GET", b"/")).addBoth(got.append)
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    transport = StringTransport()
    proto = factory.buildProtocol(None)
    proto.makeConnection(transport)
    proto.dataReceived(OK)
    assert got[0].status == 200
    return proto, transport


def test_the_longest_idle_connections_close_past_the_cap() -> None:
    settings = PoolSettings(max_idle_per_client=3)
    reactor, clients = endpoints(5, settings)
    transports = []
    for client in clients:
        transports.append(exchange(reactor, client)[1])
        reactor.advance(1)
    assert [t.disconnecting for t in transports] == [True, True, False, False, False]
    assert settings.idle_budget is not None and len(settings.idle_budget) == 3
    assert [c._pool.idle for c in clients] == [0, 0, 1, 1, 1]


def test_reusing_an_idle_connection_takes_it_out_of_the_budget() -> None:
    settings = PoolSettings(max_idle_per_client=2)
    reactor, clients = endpoints(3, settings)
    first = exchange(reactor, clients[0])
    second = exchange(reactor, clients[1])
    # clients[0]'s connection is used again: busy, then idle as the most recent
    got: list[Any] = []
    clients[0](Request(b"GET", b"/")).addBoth(got.append)
    assert not reactor.tcpClients, "the idle connection was reused"
    assert settings.idle_budget is not None and len(settings.idle_budget) == 1
    first[0].dataReceived(OK)
    assert got[0].status == 200
    third = exchange(reactor, clients[2])
    # clients[1]'s connection is now the one idle the longest
    assert second[1].disconnecting
    assert not first[1].disconnecting and not third[1].disconnecting


def test_lost_expired_and_closed_connections_leave_the_budget() -> None:
    settings = PoolSettings(max_idle_per_client=10, idle_time_s=5.0)
    reactor, clients = endpoints(3, settings)
    budget = settings.idle_budget
    assert budget is not None
    protos = [exchange(reactor, c)[0] for c in clients]
    assert len(budget) == 3
    protos[0].connectionLost(Failure(ConnectionDone()))
    assert len(budget) == 2
    clients[1].close()
    assert len(budget) == 1
    reactor.advance(6)  # clients[2]'s connection expires
    assert len(budget) == 0


def test_without_a_cap_every_endpoint_keeps_its_idle_connection() -> None:
    settings = PoolSettings()
    assert settings.idle_budget is None
    reactor, clients = endpoints(20, settings)
    transports = [exchange(reactor, c)[1] for c in clients]
    assert not any(t.disconnecting for t in transports)


def test_the_config_key_gives_each_client_its_own_budget() -> None:
    config = load_config(
        """
routers:
- protocol: http
  dtab: /svc => /$/inet/127.0.0.1/1;
  client:
    hostConnectionPool:
      maxIdlePerClient: 50
  servers:
  - port: 0
"""
    )
    router = config.routers[0]
    params = router.client.params_for(Path.read("/$/inet/127.0.0.1/1"))
    one, two = pool_settings(router, params), pool_settings(router, params)
    assert one.max_idle_per_client == 50 and one.idle_budget is not None
    assert one.idle_budget is not two.idle_budget
    default = load_config(config_without_cap())
    plain = default.routers[0]
    assert pool_settings(plain, plain.client.params_for(Path.read("/x"))).idle_budget is None


def config_without_cap() -> str:
    return "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/1;\n  servers:\n  - port: 0\n"
