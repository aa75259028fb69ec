"""p2c, heap and roundRobin specifics."""

from __future__ import annotations

from collections import Counter
from typing import Any

from resilience_fakes import FakeEndpoint
from test_balancers_common import endpoints, make

from l5d_twisted.naming.addr import Address
from l5d_twisted.service import Status


def test_p2c_avoids_the_loaded_node() -> None:
    b = make("p2c")
    eps = endpoints(3)
    b.update(eps)
    slow = list(eps.values())[0]
    # the slow node never answers; the others answer at once
    for _ in range(300):
        b("req")
        for ep in list(eps.values())[1:]:
            ep.answer_all()
    # once it holds one request it loses every comparison against an idle node
    assert slow.pending == 1
    assert sum(len(ep.calls) for ep in eps.values()) == 300


def test_p2c_prefers_weight() -> None:
    b = make("p2c")
    heavy, light = FakeEndpoint("heavy"), FakeEndpoint("light")
    b.update({Address("127.0.0.1", 1, weight=3.0): heavy, Address("127.0.0.1", 2, weight=1.0): light})
    for _ in range(40):
        b("req")  # nobody answers: load accumulates
    assert heavy.pending > 2 * light.pending


def test_p2c_max_effort_then_scan_finds_the_one_open_node() -> None:
    b = make("p2c", max_effort=1)
    eps = endpoints(50)
    b.update(eps)
    alive = list(eps.values())[17]
    for ep in eps.values():
        if ep is not alive:
            ep.state = Status.BUSY
    for _ in range(20):
        b("req")
    assert alive.pending == 20


def test_round_robin_cycles_in_order() -> None:
    b = make("roundRobin")
    eps = endpoints(3)
    b.update(eps)
    order: list[str] = []
    for _ in range(6):
        b("req")
        for ep in eps.values():
            if ep.pending:
                order.append(ep.name)
            ep.answer_all()
    assert order == ["ep0", "ep1", "ep2", "ep0", "ep1", "ep2"]


def test_round_robin_weighted_is_smooth_and_proportional() -> None:
    b = make("roundRobin")
    a, c = FakeEndpoint("a"), FakeEndpoint("c")
    b.update({Address("127.0.0.1", 1, weight=3.0): a, Address("127.0.0.1", 2, weight=1.0): c})
    order: list[str] = []
    for _ in range(8):
        b("req")
        for ep in (a, c):
            if ep.pending:
                order.append(ep.name)
            ep.answer_all()
    assert Counter(order) == {"a": 6, "c": 2}
    assert "aaa" not in "".join(order[:4]) or order[:4].count("c") == 1


def test_heap_always_least_loaded() -> None:
    b = make("heap")
    eps = endpoints(4)
    b.update(eps)
    for _ in range(40):
        b("req")
    assert sorted(ep.pending for ep in eps.values()) == [10, 10, 10, 10]
    # answer everything on ep2: the next 10 requests all go there
    list(eps.values())[2].answer_all()
    for _ in range(10):
        b("req")
    assert [ep.pending for ep in eps.values()] == [10, 10, 10, 10]
    assert len(list(eps.values())[2].calls) == 20


def test_heap_sequential_requests_rotate() -> None:
    b = make("heap")
    eps = endpoints(3)
    b.update(eps)
    for _ in range(30):
        b("req")
        for ep in eps.values():
            ep.answer_all()
    assert all(len(ep.calls) > 0 for ep in eps.values())


def test_heap_stays_consistent_across_updates() -> None:
    b = make("heap")
    eps = endpoints(4)
    b.update(eps)
    results: list[Any] = []
    for _ in range(8):
        b("req").addCallback(results.append)
    keep = dict(list(eps.items())[1:])
    b.update({**keep, **endpoints(2, port0=9000)})
    for _ in range(20):
        b("req")
    for ep in eps.values():
        ep.answer_all("ok")
    heap = b._heap
    for i, node in enumerate(heap):
        assert node.index == i
        if i:
            assert heap[(i - 1) // 2].pending <= node.pending
    assert results == ["ok"] * 8
