"""update_delta (issue 17): a discovery change applied in O(changed), for every balancer kind.

Each kind is driven through random sequences of additions and removals among 1,000 nodes
and checked against what ``update`` with the whole set would hold, plus each kind's own
index (heap order and positions, the aperture ring's order, roundRobin's weights).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from resilience_fakes import FakeEndpoint, RecordingStats
from twisted.internet.task import Clock

from l5d_twisted.balancers.base import BalancerContext
from l5d_twisted.balancers.nodes import Node, NodeBalancer
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BALANCERS

KINDS = ["p2c", "roundRobin", "heap", "ewma", "aperture"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, seed: int = 5) -> Any:
    plugin = BALANCERS.get(kind)
    clock = Clock()
    ctx = BalancerContext(clock=clock, stats=RecordingStats(), rng=random.Random(seed))
    return plugin.factory(plugin.config_type(), ctx)


def addr(i: int, weight: float = 1.0) -> Address:
    return Address(f"10.0.{i // 256}.{i % 256}", 8080, weight)


class CountingNodes:
    """Counts the nodes a balancer constructs (the work a change costs)."""

    def __init__(self, balancer: NodeBalancer) -> None:
        self.made = 0
        base = balancer.node_type

        def counted(address: Address, service: Any) -> Node:
            self.made += 1
            return base(address, service)

        balancer.node_type = counted  # type: ignore[assignment]


class Untouchable(Mapping[Address, Any]):
    """The whole address set, which an O(changed) update must not look at."""

    def __getitem__(self, key: Address) -> Any:
        raise AssertionError("looked up the whole set")

    def __iter__(self) -> Iterator[Address]:
        raise AssertionError("walked the whole set")

    def __len__(self) -> int:
        raise AssertionError("measured the whole set")


def check_invariants(balancer: Any, live: dict[Address, FakeEndpoint]) -> None:
    nodes = list(balancer.nodes)
    assert {n.address for n in nodes} == set(live)
    assert all(n.service is live[n.address] and not n.retired for n in nodes)
    assert balancer._by_address.keys() == live.keys()
    assert len({id(n) for n in nodes}) == len(nodes)
    if balancer.__class__.__name__ in ("P2CBalancer", "EwmaBalancer", "RoundRobinBalancer"):
        assert [n.slot for n in nodes] == list(range(len(nodes)))
    if hasattr(balancer, "_heap"):
        heap = balancer._heap
        assert {id(n) for n in heap} == {id(n) for n in nodes}
        assert [n.index for n in heap] == list(range(len(heap)))
        for i in range(1, len(heap)):
            assert heap[(i - 1) // 2].pending <= heap[i].pending
    if hasattr(balancer, "_ring"):
        assert balancer._ring is balancer._nodes
    if hasattr(balancer, "_weights"):
        assert balancer._weighted == (len({max(n.weight, 0.0) for n in nodes}) > 1)


def test_random_changes_keep_every_kind_consistent(kind: str) -> None:
    rng = random.Random(11)
    balancer = make(kind)
    live = {addr(i): FakeEndpoint(f"ep{i}") for i in range(1000)}
    balancer.update(dict(live))
    next_id = 1000
    retired: list[FakeEndpoint] = []
    for _ in range(60):
        removed = rng.sample(sorted(live, key=lambda a: a.host), rng.randrange(0, 4))
        for a in removed:
            retired.append(live.pop(a))
        added = {}
        for _ in range(rng.randrange(0, 4)):
            added[addr(next_id)] = FakeEndpoint(f"ep{next_id}")
            next_id += 1
        live.update(added)
        balancer.update_delta(dict(live), added, removed)
        check_invariants(balancer, live)
    assert retired and all(ep.closed for ep in retired)
    assert not any(ep.closed for ep in live.values())
    # requests go only to live endpoints
    for _ in range(50):
        balancer("r")
    assert all(not ep.calls for ep in retired)
    assert sum(len(ep.calls) for ep in live.values()) == 50


def test_one_change_among_1000_touches_one_node_and_keeps_the_others(kind: str) -> None:
    balancer = make(kind)
    live = {addr(i): FakeEndpoint(f"ep{i}") for i in range(1000)}
    balancer.update(dict(live))
    before = {n.address: n for n in balancer.nodes}
    for _ in range(200):  # some load and, for ewma, some latency history
        balancer("r")
    for ep in live.values():
        ep.answer_all()
    loaded = next(iter(before.values()))
    balancer.update_delta(Untouchable(), {}, [])  # nothing changed
    counting = CountingNodes(balancer)
    gone = addr(500)
    came = addr(5000)
    live.pop(gone)
    live[came] = FakeEndpoint("new")
    balancer.update_delta(Untouchable(), {came: live[came]}, [gone])
    assert counting.made == 1
    after = {n.address: n for n in balancer.nodes}
    assert all(after[a] is before[a] for a in live if a != came)
    assert after[loaded.address] is loaded
    assert before[gone].retired and before[gone].service.closed  # type: ignore[attr-defined]


def test_a_removed_node_with_requests_in_flight_closes_after_them(kind: str) -> None:
    balancer = make(kind)
    only = FakeEndpoint("only")
    balancer.update({addr(1): only})
    d = balancer("r")
    balancer.update_delta(
        {addr(2): FakeEndpoint("next")}, {addr(2): FakeEndpoint("next")}, [addr(1)]
    )
    assert not only.closed, "still serving a request"
    only.answer_all()
    assert d.called and only.closed


def test_a_new_weight_keeps_the_node_and_its_state(kind: str) -> None:
    balancer = make(kind)
    live = {addr(i): FakeEndpoint(f"ep{i}") for i in range(10)}
    balancer.update(dict(live))
    node = next(n for n in balancer.nodes if n.address == addr(3))
    balancer("r")  # some state on some node
    heavier = addr(3, weight=2.0)
    service = live.pop(addr(3))
    live[heavier] = service
    balancer.update_delta(dict(live), {heavier: service}, [addr(3)])
    same = next(n for n in balancer.nodes if n.address == heavier)
    assert same is node and same.weight == 2.0 and not service.closed
    check_invariants(balancer, live)


def test_ewma_latency_estimates_survive_a_change_elsewhere() -> None:
    balancer = make("ewma")
    clock = balancer._clock
    live = {addr(i): FakeEndpoint(f"ep{i}") for i in range(100)}
    balancer.update(dict(live))
    for _ in range(300):
        balancer("r")
    clock.advance(0.05)
    for ep in live.values():
        ep.answer_all()
    estimates = {n.address: n.ewma_ms for n in balancer.nodes}
    assert any(v > 0 for v in estimates.values())
    gone = addr(7)
    live.pop(gone)
    balancer.update_delta(dict(live), {addr(700): FakeEndpoint("n")}, [gone])
    assert all(n.ewma_ms == estimates[n.address] for n in balancer.nodes if n.address != addr(700))


def test_aperture_staying_nodes_keep_their_ring_order() -> None:
    balancer = make("aperture")
    live = {addr(i): FakeEndpoint(f"ep{i}") for i in range(50)}
    balancer.update(dict(live))
    order = [n.address for n in balancer._ring]
    removed = [order[0], order[10], order[49]]
    added = {addr(100 + i): FakeEndpoint("n") for i in range(5)}
    balancer.update_delta({}, added, removed)
    ring = [n.address for n in balancer._ring]
    assert [a for a in ring if a in set(order)] == [a for a in order if a not in removed]
    assert set(ring) - set(order) == set(added)


def test_round_robin_weights_follow_incremental_changes() -> None:
    balancer = make("roundRobin")
    balancer.update({addr(1): FakeEndpoint("a"), addr(2): FakeEndpoint("b")})
    assert not balancer._weighted
    heavy = addr(3, weight=3.0)
    balancer.update_delta({}, {heavy: FakeEndpoint("c")}, [])
    assert balancer._weighted
    balancer.update_delta({}, {}, [heavy])
    assert not balancer._weighted
    picks = [balancer("r") for _ in range(4)]
    assert len(picks) == 4


def test_heap_picks_the_least_loaded_after_incremental_changes() -> None:
    balancer = make("heap")
    eps = {addr(i): FakeEndpoint(f"ep{i}") for i in range(8)}
    balancer.update(dict(eps))
    for _ in range(16):  # two requests on every node
        balancer("r")
    fresh = FakeEndpoint("fresh")
    balancer.update_delta({}, {addr(99): fresh}, [addr(0)])
    balancer("r")
    assert len(fresh.calls) == 1, "the idle new node is the least loaded"


def test_a_closed_balancer_closes_what_a_late_delta_hands_it(kind: str) -> None:
    balancer = make(kind)
    balancer.update({addr(1): FakeEndpoint("a")})
    balancer.close()
    late = FakeEndpoint("late")
    balancer.update_delta({addr(2): late}, {addr(2): late}, [addr(1)])
    assert late.closed and not balancer.nodes
