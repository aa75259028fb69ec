"""Idle connections of every pool are closed by one IdleReaper per reactor and idle time
(issue 17): one timer however many pools, only due connections visited, in batches."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Request
from l5d_twisted.http.pool import IdleReaper, idle_reaper
from l5d_twisted.naming.addr import Address
from l5d_twisted.telemetry.stats import NULL_STATS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def endpoints(reactor: MemoryReactorClock, n: int, **settings: Any) -> list[EndpointClient]:
    # a settings object per client, as the router builds them
    return [
        EndpointClient(
            reactor,
            Address(f"10.0.{i // 250}.{i % 250}", 80),
            PoolSettings(**settings),
            NULL_STATS,
            1.0,
        )
        for i in range(n)
    ]


def exchange(reactor: MemoryReactorClock, client: EndpointClient) -> StringTransport:
    """One request and its response on a new connection, which then goes idle."""
    got: list[Any] = []
    client(Request(b"GET", b"/")).addBoth(got.append)
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    transport = StringTransport()
    proto: Any = factory.buildProtocol(None)
    proto.makeConnection(transport)
    proto.dataReceived(OK)
    assert got[0].status == 200
    return transport


def test_one_timer_for_every_pool() -> None:
    reactor = MemoryReactorClock()
    clients = endpoints(reactor, 300, idle_time_s=5.0)
    transports = [exchange(reactor, c) for c in clients]
    assert len(reactor.getDelayedCalls()) == 1
    assert len(idle_reaper(reactor, 5.0)) == 300
    reactor.advance(4.9)
    assert not any(t.disconnecting for t in transports)


def counting_timers(reactor: MemoryReactorClock) -> list[float]:
    """The delays of every callLater made on ``reactor`` from now on."""
    delays: list[float] = []
    original = reactor.callLater

    def call_later(delay: float, f: Any, *args: Any, **kw: Any) -> Any:
        delays.append(delay)
        return original(delay, f, *args, **kw)

    reactor.callLater = call_later  # type: ignore[method-assign, assignment]
    return delays


def test_due_connections_close_in_batches_with_turns_between() -> None:
    reactor = MemoryReactorClock()
    clients = endpoints(reactor, 150, idle_time_s=5.0)
    transports = [exchange(reactor, c) for c in clients]
    delays = counting_timers(reactor)
    reactor.advance(5.0)
    assert all(t.disconnecting for t in transports)
    # 2 at a time (each close is ~40-100 us of CPU): the reactor turns between batches
    assert IdleReaper.BATCH == 2
    assert delays == [0] * (-(-150 // IdleReaper.BATCH) - 1)
    assert len(idle_reaper(reactor, 5.0)) == 0
    assert reactor.getDelayedCalls() == []  # nothing idle: nothing scheduled


def test_each_connection_closes_after_its_own_idle_time() -> None:
    reactor = MemoryReactorClock()
    first, second = endpoints(reactor, 2, idle_time_s=5.0)
    a = exchange(reactor, first)
    reactor.advance(3.0)
    b = exchange(reactor, second)
    reactor.advance(2.0)  # a: idle 5 s
    assert a.disconnecting and not b.disconnecting
    reactor.advance(2.9)  # b: idle 4.9 s
    assert not b.disconnecting
    reactor.advance(0.5 + 0.1)  # within a tenth of the idle time after its own
    assert b.disconnecting


def test_a_reused_connection_is_not_closed_for_its_earlier_idleness() -> None:
    reactor = MemoryReactorClock()
    [client] = endpoints(reactor, 1, idle_time_s=5.0)
    transport = exchange(reactor, client)
    reactor.advance(4.0)
    got: list[Any] = []
    client(Request(b"GET", b"/again")).addBoth(got.append)
    assert not reactor.tcpClients  # the idle connection was taken
    assert len(idle_reaper(reactor, 5.0)) == 0
    reactor.advance(2.0)  # the reaper fires for the old idleness: nothing is due
    assert not transport.disconnecting


def test_min_size_connections_are_looked_at_once_per_idle_time() -> None:
    reactor = MemoryReactorClock()
    [client] = endpoints(reactor, 1, idle_time_s=5.0, min_size=1)
    transport = exchange(reactor, client)
    delays = counting_timers(reactor)
    for _ in range(300):
        reactor.advance(0.1)
    assert not transport.disconnecting
    # 30 s: one look per idle time (the pool's own sweep used to come back every 10 ms)
    assert 5 <= len(delays) <= 6 and delays == pytest.approx([5.0] * len(delays))
    assert len(reactor.getDelayedCalls()) == 1


def test_idle_times_have_their_own_reapers_and_close_empties_them() -> None:
    reactor = MemoryReactorClock()
    [short] = endpoints(reactor, 1, idle_time_s=1.0)
    [long] = endpoints(reactor, 1, idle_time_s=60.0)
    s, t = exchange(reactor, short), exchange(reactor, long)
    assert idle_reaper(reactor, 1.0) is not idle_reaper(reactor, 60.0)
    reactor.advance(1.0)
    assert s.disconnecting and not t.disconnecting
    long.close()
    assert t.disconnecting and len(idle_reaper(reactor, 60.0)) == 0


def test_reactors_do_not_share_reapers() -> None:
    one, two = MemoryReactorClock(), MemoryReactorClock()
    assert idle_reaper(one, 5.0) is not idle_reaper(two, 5.0)
    assert idle_reaper(one, 5.0) is idle_reaper(one, 5.0)


def test_a_pool_that_never_queues_holds_no_waiter_queue() -> None:
    reactor = MemoryReactorClock()
    [client] = endpoints(reactor, 1, max_size=1)
    exchange(reactor, client)
    assert client._pool._waiters == ()  # (an empty deque is ~760 bytes a pool)
    first: list[Any] = []
    second: list[Any] = []
    client(Request(b"GET", b"/1")).addBoth(first.append)  # takes the idle connection
    client(Request(b"GET", b"/2")).addBoth(second.append)  # waits for it
    assert client._pool.waiters == 1
