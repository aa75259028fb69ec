"""A pool's open connections: a list while few, a set past a handful (issue 17: a set is
216 bytes and nearly every pool holds one connection); either way the pool counts, drops
and closes them alike."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Request
from l5d_twisted.http.pool import _FEW, _FewConns
from l5d_twisted.naming.addr import Address
from l5d_twisted.telemetry.stats import NULL_STATS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def test_few_conns_add_and_discard_like_a_set() -> None:
    conns = _FewConns()
    a, b = object(), object()
    conns.add(a)
    conns.add(a)
    conns.add(b)
    assert list(conns) == [a, b]
    conns.discard(a)
    conns.discard(a)  # (absent: nothing happens)
    assert list(conns) == [b] and len(conns) == 1


def test_many_connections_switch_to_a_set_and_all_are_forgotten_when_lost() -> None:
    reactor = MemoryReactorClock()
    client = EndpointClient(reactor, Address("10.0.0.1", 80), PoolSettings(), NULL_STATS, 1.0)
    pool = client._pool
    n = _FEW + 3
    got: list[Any] = []
    for _ in range(n):  # n requests at once: n connections
        client(Request(b"GET", b"/")).addBoth(got.append)
    protos: list[Any] = []
    for _ in range(n):
        _, _, factory, _, _ = reactor.tcpClients.pop(0)
        proto: Any = factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        protos.append(proto)
        if len(protos) <= _FEW:
            assert type(pool._open) is _FewConns
    assert type(pool._open) is set and pool.size == n
    for proto in protos:
        proto.dataReceived(OK)
    assert [r.status for r in got] == [200] * n and pool.idle == n
    closed: list[Any] = []
    client.close().addBoth(closed.append)
    for proto in protos:
        proto.connectionLost(Failure(ConnectionDone()))
    assert pool.size == 0 and closed == [None]


def test_one_connection_stays_in_the_list_and_closing_it_empties_it() -> None:
    reactor = MemoryReactorClock()
    client = EndpointClient(reactor, Address("10.0.0.1", 80), PoolSettings(), NULL_STATS, 1.0)
    got: list[Any] = []
    client(Request(b"GET", b"/")).addBoth(got.append)
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    proto: Any = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(OK)
    assert got[0].status == 200
    assert type(client._pool._open) is _FewConns and client._pool.size == 1
    closed: list[Any] = []
    client.close().addBoth(closed.append)
    proto.connectionLost(Failure(ConnectionDone()))
    assert client._pool.size == 0 and closed == [None]
