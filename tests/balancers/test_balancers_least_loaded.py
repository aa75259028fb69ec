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
    b.update(
        {Address("127.0.0.1", 1, weight=3.0): heavy, Address("127.0.0.1", 2, weight=1.0): light}
    )
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


def test_ewma_avoids_the_slow_node_and_probes_it_again_later() -> None:
    b = make("ewma")
    clock = b._clock
    eps = endpoints(4)
    b.update(eps)
    slow_addr = list(eps)[0]
    slow = eps[slow_addr]
    # warm up: every node answers in 1 ms, except the slow one in 2 s
    for _ in range(40):
        b("req")
        clock.advance(0.001)
        for ep in list(eps.values())[1:]:
            ep.answer_all()
    clock.advance(2)
    slow.answer_all()
    assert b.cost_of(slow_addr) > 1000
    before = len(slow.calls)
    for _ in range(500):
        b("req")
        clock.advance(0.001)
        for ep in list(eps.values())[1:]:
            ep.answer_all()
    assert len(slow.calls) == before  # a 2 s node loses against 1 ms ones
    # while the fast nodes keep answering in 1 ms, the slow node's estimate decays (tau
    # 10 s) until, after roughly 10 s * ln(2000), it is tried again
    for _ in range(1200):
        clock.advance(0.099)
        b("req")
        clock.advance(0.001)
        for ep in eps.values():
            ep.answer_all()
    assert len(slow.calls) > before


def test_ewma_new_node_gets_one_request_at_a_time() -> None:
    b = make("ewma")
    eps = endpoints(2)
    b.update(eps)
    b("req")
    b("req")  # nobody answers: the node with a pending first request costs a penalty
    assert [ep.pending for ep in eps.values()] == [1, 1]
    assert b.cost_of(list(eps)[0]) >= 1e12


def test_ewma_peak_and_decay() -> None:
    b = make("ewma", decay_time_ms=1000)
    clock = b._clock
    ep = FakeEndpoint()
    addr = Address("127.0.0.1", 1)
    b.update({addr: ep})
    b("req")
    clock.advance(0.5)
    ep.answer_all()
    assert abs(b.cost_of(addr) - 500) < 1e-6  # the peak is taken at once
    clock.advance(1.0)
    assert abs(b.cost_of(addr) - 500 * 2.718281828**-1) < 1e-3  # decays with tau = 1 s


def test_aperture_grows_with_load_and_shrinks_when_idle() -> None:
    b = make("aperture", smooth_window_ms=1000)
    clock = b._clock
    eps = endpoints(10)
    b.update(eps)
    assert b.aperture == 1
    for _ in range(200):
        b("req")  # load accumulates, nothing answers
        clock.advance(0.05)
    assert b.aperture >= 5
    busy = [ep for ep in eps.values() if ep.calls]
    assert len(busy) >= 5
    # everything answers; keep a trickle of sequential traffic: the window narrows
    for _ in range(400):
        for ep in eps.values():
            ep.answer_all()
        b("req")
        clock.advance(0.05)
    assert b.aperture == 1


def test_aperture_window_skips_dead_nodes_and_min_aperture() -> None:
    b = make("aperture", min_aperture=3)
    eps = endpoints(6)
    b.update(eps)
    assert b.aperture == 3
    ring = list(b.nodes)
    for node in ring[:2]:
        node.service.state = Status.BUSY
    for _ in range(60):
        b("req")
        for ep in eps.values():
            ep.answer_all()
    used = {n.address for n in ring if n.service.calls}
    assert used == {n.address for n in ring[2:5]}


def test_ewma_avoids_a_node_turning_slow_before_its_first_slow_answer() -> None:
    b = make("ewma")
    clock = b._clock
    eps = endpoints(4)
    b.update(eps)
    fast, *others = list(eps.values())
    # warm-up: node 0 answers in 0.2 ms, the others in 20 ms (their estimates are high)
    for _ in range(20):
        for _ in range(4):
            b("req")
        clock.advance(0.0002)
        fast.answer_all()
        clock.advance(0.0198)
        for ep in others:
            ep.answer_all()
    before = len(fast.calls)
    # node 0 turns slow (stops answering); the others keep answering
    for _ in range(1000):
        b("req")
        clock.advance(0.001)
        for ep in others:
            ep.answer_all()
    # with a 0.2 ms estimate against 20 ms, plain peak EWMA would keep sending to it until
    # ~100 requests are pending; the age of its pending requests stops that within a few ms
    assert len(fast.calls) - before <= 10


def test_ewma_pending_age_leaves_no_rounding_residue() -> None:
    b = make("ewma")
    clock = b._clock
    clock.advance(1.7e9 + 0.123)  # epoch-sized timestamps, as reactor.seconds() gives
    eps = endpoints(1)
    b.update(eps)
    ep = next(iter(eps.values()))
    for i in range(3000):  # about three requests overlapping, answered in order
        b("req")
        clock.advance(0.000137 * (1 + i % 7))
        if len(ep.calls) > 3:
            ep.calls.pop(0)[1].callback("ok")
    ep.answer_all()
    node = b._nodes[0]
    assert node.pending == 0 and node.started_sum == 0.0
