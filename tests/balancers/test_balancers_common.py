"""Behaviour every registered balancer shares (the balancers/base.py contract)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from resilience_fakes import FakeEndpoint, RecordingStats
from twisted.internet.task import Clock

from l5d_twisted import errors
from l5d_twisted.balancers.base import BalancerContext
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BALANCERS
from l5d_twisted.service import Status

KINDS = ["p2c", "roundRobin", "heap", "ewma", "aperture"]


def make(kind: str, stats: RecordingStats | None = None, seed: int = 3, **config: Any) -> Any:
    plugin = BALANCERS.get(kind)
    ctx = BalancerContext(clock=Clock(), stats=stats or RecordingStats(), rng=random.Random(seed))
    return plugin.factory(plugin.config_type(**config), ctx)


def endpoints(n: int, port0: int = 8000) -> dict[Address, FakeEndpoint]:
    return {Address("127.0.0.1", port0 + i): FakeEndpoint(f"ep{i}") for i in range(n)}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_registered(kind: str) -> None:
    assert kind in BALANCERS


def test_no_endpoints_fails_with_no_hosts(kind: str) -> None:
    b = make(kind)
    failures: list[Any] = []
    b("req").addErrback(failures.append)
    assert failures and failures[0].check(errors.NoHostsAvailable)
    b.update({})
    b("req").addErrback(failures.append)
    assert len(failures) == 2


def test_spreads_requests_and_returns_responses(kind: str) -> None:
    b = make(kind)
    eps = endpoints(4)
    b.update(eps)
    results: list[Any] = []
    for _ in range(400):
        b("req").addCallback(results.append)
        for ep in eps.values():
            ep.answer_all("pong")
    assert results == ["pong"] * 400
    counts = [len(ep.calls) for ep in eps.values()]
    assert sum(counts) == 400
    if kind != "aperture":  # aperture deliberately uses a small window at low load
        assert min(counts) > 0


def test_gauges_and_counters(kind: str) -> None:
    stats = RecordingStats()
    b = make(kind, stats)
    eps = endpoints(3)
    b.update(eps)
    assert stats.gauge_value("loadbalancer/size") == 3
    assert stats.gauge_value("loadbalancer/available") == 3
    assert stats.counters["loadbalancer/adds"] == 3
    b("a")
    b("b")
    assert stats.gauge_value("loadbalancer/load") == 2
    list(eps.values())[0].state = Status.BUSY
    assert stats.gauge_value("loadbalancer/available") == 2
    for ep in eps.values():
        ep.answer_all()
    assert stats.gauge_value("loadbalancer/load") == 0
    b.close()
    assert "loadbalancer/size" not in stats.gauges


def test_skips_busy_endpoints(kind: str) -> None:
    b = make(kind)
    eps = endpoints(5)
    b.update(eps)
    dead = list(eps.values())[:4]
    for ep in dead:
        ep.state = Status.BUSY
    for _ in range(100):
        b("req")
        for ep in eps.values():
            ep.answer_all()
    assert all(not ep.calls for ep in dead)
    assert len(list(eps.values())[4].calls) == 100


def test_fails_open_when_none_is_open(kind: str) -> None:
    stats = RecordingStats()
    b = make(kind, stats)
    eps = endpoints(3)
    b.update(eps)
    for ep in eps.values():
        ep.state = Status.BUSY
    results: list[Any] = []
    for _ in range(30):
        b("req").addCallback(results.append)
        for ep in eps.values():
            ep.answer_all("ok")
    assert results == ["ok"] * 30
    assert stats.counters["loadbalancer/fail_open"] == 30
    assert b.status is Status.BUSY


def test_staying_address_keeps_state_new_added_removed_drains(kind: str) -> None:
    stats = RecordingStats()
    b = make(kind, stats, **({"min_aperture": 2} if kind == "aperture" else {}))
    eps = endpoints(2)
    b.update(eps)
    a0, a1 = list(eps)
    # a pending request on each
    b("x")
    b("y")
    assert sorted(ep.pending for ep in eps.values()) == [1, 1]
    extra = endpoints(1, port0=9000)
    b.update({a1: eps[a1], **extra})
    assert stats.counters["loadbalancer/removes"] == 1
    assert stats.counters["loadbalancer/adds"] == 3
    assert b.size == 2
    # the removed endpoint still has its pending request: it is not closed yet ...
    assert not eps[a0].closed
    # the staying node kept its load accounting (its request is still pending)
    node = next(n for n in b.nodes if n.address == a1)
    assert node.pending == 1
    # ... and the removed one gets no new request
    for _ in range(50):
        b("z")
        for ep in list(extra.values()) + [eps[a1]]:
            ep.answer_all()
    assert len(eps[a0].calls) == 1
    assert node is next(n for n in b.nodes if n.address == a1)
    eps[a0].answer_all()
    assert eps[a0].closed
    assert not eps[a1].closed


def test_removed_idle_endpoint_closed_at_once(kind: str) -> None:
    b = make(kind)
    eps = endpoints(2)
    b.update(eps)
    first = list(eps)[0]
    b.update({k: v for k, v in eps.items() if k != first})
    assert eps[first].closed


def test_close_closes_all(kind: str) -> None:
    b = make(kind)
    eps = endpoints(3)
    b.update(eps)
    done: list[Any] = []
    b.close().addCallback(done.append)
    assert done == [None]
    assert all(ep.closed for ep in eps.values())
    assert b.status is Status.CLOSED
    failures: list[Any] = []
    b("req").addErrback(failures.append)
    assert failures[0].check(errors.NoHostsAvailable)


def test_endpoint_raising_synchronously_is_a_failed_deferred(kind: str) -> None:
    b = make(kind)

    class Broken(FakeEndpoint):
        def __call__(self, request: Any) -> Any:
            raise RuntimeError("boom")

    b.update({Address("127.0.0.1", 1): Broken()})
    failures: list[Any] = []
    b("req").addErrback(failures.append)
    assert failures[0].check(RuntimeError)
    assert b.load == 0


def test_update_after_close_closes_the_services_instead_of_raising(kind: str) -> None:
    b = make(kind)
    b.close()
    late = endpoints(2)
    b.update(late)
    assert all(ep.closed for ep in late.values())
    assert b.size == 0


def test_a_new_weight_for_the_same_endpoint_keeps_its_node(kind: str) -> None:
    stats = RecordingStats()
    b = make(kind, stats)
    eps = endpoints(2)
    b.update(eps)
    a0, a1 = list(eps)
    b("x")  # pending somewhere
    before = {n.service: (n, n.pending) for n in b.nodes}
    reweighted = Address(a0.host, a0.port, weight=3.0)
    b.update({reweighted: eps[a0], a1: eps[a1]})  # the namer changed only the weight
    assert stats.counters["loadbalancer/removes"] == 0 and stats.counters["loadbalancer/adds"] == 2
    assert not eps[a0].closed
    node = next(n for n in b.nodes if n.service is eps[a0])
    assert node is before[eps[a0]][0] and node.pending == before[eps[a0]][1]
    assert node.address == reweighted and node.weight == 3.0
    assert b.size == 2
