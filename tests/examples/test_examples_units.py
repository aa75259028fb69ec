"""Unit tests of the sample apps' pieces: time driven by Clock, transports in memory."""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport

from l5d_twisted.examples.apps import WorldApp
from l5d_twisted.examples.appserver import AppRequest, AppResponse, AppServerProtocol
from l5d_twisted.examples.client import ClientResponse, parse_proxy, resolve_target
from l5d_twisted.examples.knobs import KnobError, Knobs, parse_failure_rate, parse_latency_ms
from l5d_twisted.examples.traffic import OpenLoopTraffic, percentile


def test_knob_parsing() -> None:
    assert parse_latency_ms(b" 250 ") == 250.0
    assert parse_failure_rate("0.25") == 0.25
    for bad in (b"", b"-1", b"nan", b"inf", b"x"):
        with pytest.raises(KnobError):
            parse_latency_ms(bad)
    for bad in (b"1.01", b"-0.1", b"nan", b"half"):
        with pytest.raises(KnobError):
            parse_failure_rate(bad)


def test_failure_rate_fraction() -> None:
    knobs = Knobs(failure_rate=0.3, rng=random.Random(7))
    fails = sum(knobs.should_fail() for _ in range(10_000))
    assert 2700 < fails < 3300
    assert not any(Knobs(failure_rate=0.0).should_fail() for _ in range(100))
    assert all(Knobs(failure_rate=1.0).should_fail() for _ in range(100))


def test_proxy_and_target_forms() -> None:
    assert parse_proxy("10.0.0.1:4140") == ("10.0.0.1", 4140)
    assert parse_proxy("http://node:4140/") == ("node", 4140)
    assert parse_proxy("") is None
    with pytest.raises(ValueError, match="unsupported proxy"):
        parse_proxy("socks5://x:1")
    via = resolve_target("http://world/a?b=1", ("n", 4140))
    assert (via.host, via.request_target, via.dest_host, via.dest_port) == (
        b"world",
        b"http://world/a?b=1",
        "n",
        4140,
    )
    direct = resolve_target("http://world:81", None)
    assert (direct.host, direct.request_target, direct.dest_host, direct.dest_port) == (
        b"world:81",
        b"/",
        "world",
        81,
    )
    with pytest.raises(ValueError, match="unsupported URL"):
        resolve_target("https://world/", None)


def test_latency_knob_delays_on_the_clock() -> None:
    clock = task.Clock()
    app = WorldApp(clock, "1.2.3.4", Knobs(latency_ms=200))
    d = app(AppRequest(b"GET", b"/", []))
    assert isinstance(d, Deferred)
    got: list[AppResponse] = []
    d.addCallback(got.append)
    clock.advance(0.199)
    assert not got
    clock.advance(0.002)
    assert got[0].status == 200 and got[0].body == b"world (1.2.3.4)!"


def test_pipelined_answers_stay_in_order_and_cancel_on_disconnect() -> None:
    pending: list[Deferred[AppResponse]] = []
    cancelled: list[bool] = []

    def handler(request: AppRequest) -> Deferred[AppResponse]:
        if request.target == b"/slow":
            d: Deferred[AppResponse] = Deferred(lambda _: cancelled.append(True))
            pending.append(d)
            return d
        return succeed(AppResponse(200, b"fast"))

    proto = AppServerProtocol(handler)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(
        b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert transport.value() == b""  # the fast answer waits for the slow one
    pending[0].callback(AppResponse(200, b"slow"))
    out = transport.value()
    assert out.index(b"slow") < out.index(b"fast")
    proto.dataReceived(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.connectionLost()
    assert cancelled == [True]


def test_http10_and_connection_close_close_after_answer() -> None:
    proto = AppServerProtocol(lambda r: AppResponse(200, b"x"))
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in transport.value()
    assert transport.disconnecting


def test_open_loop_rate_latency_and_dropping() -> None:
    clock = task.Clock()
    answers: list[Deferred[ClientResponse]] = []

    def send() -> Deferred[ClientResponse]:
        d: Deferred[ClientResponse] = Deferred()
        answers.append(d)
        return d

    traffic = OpenLoopTraffic(clock, send, rps=100, max_outstanding=50, record_latencies=True)
    traffic.start()
    for _ in range(100):
        clock.advance(0.01)
    # the open loop keeps sending although nothing answered, up to max_outstanding
    assert traffic.stats.sent == 50
    assert traffic.stats.dropped == 51
    answers[0].callback(ClientResponse(200, [], b""))
    answers[1].callback(ClientResponse(503, [], b""))
    answers[2].errback(ConnectionError("x"))
    assert traffic.stats.succeeded == 1 and traffic.stats.failed == 2
    assert traffic.stats.statuses == {200: 1, 503: 1, 0: 1}
    # latency counts from when request 0 was due (t=0), not when it happened to be sent
    assert traffic.stats.latencies_s[0] == pytest.approx(1.0)
    traffic.stop()
    clock.advance(1)
    assert traffic.stats.sent == 50


def test_percentile() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_idle_connections_are_closed_busy_ones_kept() -> None:
    from l5d_twisted.examples.appserver import AppServerFactory

    clock = task.Clock()
    waiting: list[Deferred[AppResponse]] = []

    def handler(request: AppRequest) -> Deferred[AppResponse]:
        d: Deferred[AppResponse] = Deferred()
        waiting.append(d)
        return d

    factory = AppServerFactory(handler, clock, idle_timeout_s=60)
    factory.startFactory()
    idle, busy = factory.buildProtocol(None), factory.buildProtocol(None)
    idle_t, busy_t = StringTransport(), StringTransport()
    idle.makeConnection(idle_t)
    busy.makeConnection(busy_t)
    busy.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    clock.advance(45)
    assert not idle_t.disconnecting
    clock.advance(30)
    assert idle_t.disconnecting
    assert not busy_t.disconnecting  # still owes an answer
    factory.stopFactory()


@pytest_twisted.ensureDeferred
async def test_client_bounds_connections_and_queues_calls() -> None:
    from twisted.internet import reactor

    from l5d_twisted.examples.appserver import listen
    from l5d_twisted.examples.client import HttpClient

    peers: set[int] = set()
    release: list[Deferred[AppResponse]] = []

    def handler(request: AppRequest) -> Deferred[AppResponse]:
        d: Deferred[AppResponse] = Deferred()
        release.append(d)
        return d

    port = listen(reactor, "127.0.0.1", 0, handler)
    factory: Any = port.factory  # type: ignore[attr-defined]
    client = HttpClient(reactor, max_connections_per_dest=2)
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/"  # type: ignore[attr-defined]
        calls = [client.get(url) for _ in range(5)]
        while len(release) < 2:
            await task.deferLater(reactor, 0.01, lambda: None)
        await task.deferLater(reactor, 0.05, lambda: None)
        assert len(release) == 2 and len(factory.connections) == 2  # 3 calls wait
        while len(release) < 5 or any(not d.called for d in release):
            for d in [d for d in release if not d.called]:
                d.callback(AppResponse(200, b"ok"))
            await task.deferLater(reactor, 0.01, lambda: None)
        responses = [await c for c in calls]
        assert [r.status for r in responses] == [200] * 5
        peers.update(id(c) for c in factory.connections)
        assert len(peers) <= 2  # the waiting calls reused the two connections
    finally:
        client.close()
        await port.stopListening()
