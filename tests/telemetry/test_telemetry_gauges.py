"""Gauges registered by several owners in one scope (issue 17): the sum of those alive.

Thousands of names share the ``<overflow>`` scope, each registering ``pending``,
``loadbalancer/size`` and the others there; a replacing gauge showed one name's value.
A registration is held weakly: its owner freed, it leaves the sum at once (reference
counting, no collection needed); the same owner registering again replaces its own.
"""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator

import pytest
from l5d_testing import no_gc as gc_off
from twisted.internet.task import Clock

from l5d_twisted.telemetry.filters import StatsFilter
from l5d_twisted.telemetry.metrics import GaugeMetric, MetricsTree
from l5d_twisted.telemetry.metrics_json import MetricsJsonExposition, metrics_json
from l5d_twisted.telemetry.prometheus import PrometheusExposition

SCOPE = ("rt", "out", "client", "<overflow>")


class Layer:
    """An owner with a gauge method, as a balancer is (it takes weak references)."""

    def __init__(self, size: float) -> None:
        self.size = size

    def size_gauge(self) -> float:
        return self.size


class Slotted:
    """An owner without weak references (as the retry budget is): held by its handle."""

    __slots__ = ("level",)

    def __init__(self, level: float) -> None:
        self.level = level

    def gauge(self) -> float:
        return self.level


@pytest.fixture
def no_gc() -> Iterator[None]:
    """What these tests free must go by reference counting alone."""
    with gc_off():
        yield


def tree() -> MetricsTree:
    return MetricsTree(Clock(), expiry_ttl_s=60.0, start=False)


def size_of(t: MetricsTree) -> float:
    metric = t.get(*SCOPE, "loadbalancer", "size")
    assert isinstance(metric, GaugeMetric)
    return metric.read()


def prometheus(t: MetricsTree, exposition: PrometheusExposition) -> str:
    out: list[bytes] = []
    for _ in exposition.render_steps(out):
        pass
    text = b"".join(out)
    assert text == exposition.render()  # the cached render is the one-go render
    return text.decode()


def json_of(t: MetricsTree, exposition: MetricsJsonExposition) -> dict[str, object]:
    out: list[bytes] = []
    for _ in exposition.render_steps(out):
        pass
    body = b"".join(out)
    assert body == metrics_json(t)
    loaded: dict[str, object] = json.loads(body)
    return loaded


def test_a_gauge_of_several_owners_shows_their_sum_in_every_exposition(no_gc: None) -> None:
    t = tree()
    scope = t.stats.scope(*SCOPE)
    layers = [Layer(n) for n in (1.0, 2.0, 4.0)]
    handles = [scope.gauge("loadbalancer", "size", fn=layer.size_gauge) for layer in layers]
    prom = PrometheusExposition(t, process_metrics=False)
    js = MetricsJsonExposition(t)
    line = 'rt:client:loadbalancer:size{client="<overflow>",rt="out"} '
    assert size_of(t) == 7.0
    assert line + "7.0\n" in prometheus(t, prom)
    assert json_of(t, js)["rt/out/client/<overflow>/loadbalancer/size"] == 7.0
    layers[2].size = 10.0  # values are read at each render (the caches compare them)
    assert line + "13.0\n" in prometheus(t, prom)
    assert json_of(t, js)["rt/out/client/<overflow>/loadbalancer/size"] == 13.0
    handles[0].remove()  # one removed: the others stay
    assert line + "12.0\n" in prometheus(t, prom)
    assert json_of(t, js)["rt/out/client/<overflow>/loadbalancer/size"] == 12.0
    handles[1].remove()
    handles[2].remove()  # the last one removed: the gauge leaves, as one gauge did
    assert t.get(*SCOPE, "loadbalancer", "size") is None
    assert "loadbalancer:size" not in prometheus(t, prom)
    assert "rt/out/client/<overflow>/loadbalancer/size" not in json_of(t, js)


def test_a_freed_owner_drops_out_at_once(no_gc: None) -> None:
    t = tree()
    scope = t.stats.scope(*SCOPE)
    layers = [Layer(1.0) for _ in range(1000)]
    for i in range(len(layers)):  # (no loop variable left holding the last one)
        scope.gauge("loadbalancer", "size", fn=layers[i].size_gauge)  # handles not kept
    prom = PrometheusExposition(t, process_metrics=False)
    assert size_of(t) == 1000.0
    assert prometheus(t, prom).count("loadbalancer:size{") == 1
    witness = weakref.ref(layers[0])
    del layers[:900]
    assert witness() is None, "the gauge does not keep its owner"
    assert size_of(t) == 100.0
    metric = t.get(*SCOPE, "loadbalancer", "size")
    assert isinstance(metric, GaugeMetric) and metric.registrations() == 100
    assert isinstance(metric._regs, list) and len(metric._regs) < 200, "freed ones let go"
    assert 'rt="out"} 100.0\n' in prometheus(t, prom)
    del layers[:]
    assert size_of(t) == 0.0  # every owner gone: 0 until the scope expires
    assert metric.registrations() == 0


def test_the_same_owner_registering_again_replaces_its_registration(no_gc: None) -> None:
    t = tree()
    scope = t.stats.scope(*SCOPE)
    rebuilt, other = Layer(3.0), Layer(5.0)
    first = scope.gauge("loadbalancer", "size", fn=rebuilt.size_gauge)
    scope.gauge("loadbalancer", "size", fn=other.size_gauge)
    again = scope.gauge("loadbalancer", "size", fn=rebuilt.size_gauge)
    assert size_of(t) == 8.0, "counted once"
    first.remove()  # the replaced handle's remove() no longer touches the new one
    assert size_of(t) == 8.0
    again.remove()
    assert size_of(t) == 5.0


def test_stats_filters_sharing_a_scope_sum_their_pending(no_gc: None) -> None:
    from twisted.internet.defer import Deferred

    from l5d_twisted.http.body import BufferedBody
    from l5d_twisted.http.message import Headers, Request, Response
    from l5d_twisted.service import FunctionService

    t = tree()
    clock = Clock()
    scope = t.stats.scope(*SCOPE)
    waiting: list[Deferred[Response]] = []

    def slow(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        waiting.append(d)
        return d

    class Classifier:
        def classify(self, request: object, response: object) -> object:
            from l5d_twisted.resilience.classifier import ResponseClass

            return ResponseClass.SUCCESS

    a = StatsFilter(scope, Classifier(), clock)  # type: ignore[arg-type]
    b = StatsFilter(scope, Classifier(), clock)  # type: ignore[arg-type]
    service = FunctionService(slow)
    for f, n in ((a, 2), (b, 3)):
        for _ in range(n):
            f.apply(Request(b"GET", b"/"), service)
    pending = t.get(*SCOPE, "pending")
    assert isinstance(pending, GaugeMetric) and pending.read() == 5.0
    assert pending.registrations() == 1, "one registration for the scope, not one per filter"
    for d in waiting[:2]:  # a's two requests answer
        d.callback(Response(200, Headers(), BufferedBody(b"")))
    assert pending.read() == 3.0
    del a
    assert pending.read() == 3.0 and pending.registrations() == 1
    for d in waiting[2:]:
        d.callback(Response(200, Headers(), BufferedBody(b"")))
    assert pending.read() == 0.0
    waiting.clear()
    del b, f, service
    assert pending.registrations() == 0, "the last filter freed takes the registration"


def test_a_filter_of_a_scope_made_again_counts_in_its_new_gauge(no_gc: None) -> None:
    t = tree()
    clock = Clock()
    first = StatsFilter(t.stats.scope(*SCOPE), None, clock)  # type: ignore[arg-type]
    old = t.get(*SCOPE, "pending")
    assert isinstance(old, GaugeMetric)
    # the scope's group goes away (as metric expiry removes it) while the filter lives on
    t._groups.pop(next(k for k in t._groups if k and k[:4] == SCOPE))
    second = StatsFilter(t.stats.scope(*SCOPE), None, clock)  # type: ignore[arg-type]
    new = t.get(*SCOPE, "pending")
    assert isinstance(new, GaugeMetric) and new is not old
    assert new.registrations() == 1
    first._pending.n += 2  # (both filters count in the one shared object)
    assert new.read() == 2.0
    del first, second


def test_functions_it_cannot_watch_count_while_their_handle_is_held(no_gc: None) -> None:
    t = tree()
    scope = t.stats.scope(*SCOPE)
    budgets = [Slotted(float(n)) for n in (1, 2, 4)]
    handles = [scope.gauge("loadbalancer", "size", fn=b.gauge) for b in budgets]
    assert size_of(t) == 7.0
    del handles[0]  # its layer let go of it
    assert size_of(t) == 6.0
    handles.clear()  # the newest is held by the gauge too (registered and forgotten)
    assert size_of(t) == 4.0
    scope.gauge("loadbalancer", "size", fn=lambda: 10.0)  # forgotten too: replaces it
    assert size_of(t) == 10.0


def test_a_forgotten_mesh_wide_gauge_still_works() -> None:
    t = tree()
    t.stats.gauge("workers", "running", fn=lambda: 3.0)
    gc.collect()
    assert json.loads(metrics_json(t))["workers/running"] == 3.0


def test_an_expired_scope_with_gauges_is_freed_without_a_full_gc(no_gc: None) -> None:
    clock = Clock()
    t = MetricsTree(clock, expiry_ttl_s=10)
    scope = t.stats.scope("rt", "r", "client", "#/mem/x")
    layer, budget = Layer(1.0), Slotted(2.0)
    counter = scope.counter("requests")
    handles = [
        scope.gauge("loadbalancer", "size", fn=layer.size_gauge),
        scope.gauge("retries", "budget", fn=budget.gauge),
    ]
    stats_filter = StatsFilter(scope, None, clock)  # type: ignore[arg-type]
    counter.incr()
    for _ in range(12):
        clock.advance(1)
    assert ("rt", "r", "client", "#/mem/x") in t._dormant
    group = weakref.ref(t._dormant[("rt", "r", "client", "#/mem/x")])
    del counter, handles, layer, budget, stats_filter, scope
    assert group() is None, "freed by reference counting"
    assert not t._dormant


def test_a_tick_over_many_scopes_is_spread_over_reactor_turns() -> None:
    """Each turn reads at most TICK_GROUPS_PER_TURN groups (a tick over 2,000 groups in
    one go was a 5-8 ms stall every TTL/10); every group is still ticked, and expires."""
    from l5d_twisted.telemetry import metrics as metrics_module

    clock = Clock()
    t = MetricsTree(clock, expiry_ttl_s=60.0, tick_s=6.0)
    per_turn = metrics_module.TICK_GROUPS_PER_TURN
    n = 2 * per_turn + 100
    for i in range(n):
        t.stats.scope("rt", "out", "service", f"s{i}").counter("requests").incr()

    def ticked() -> int:  # groups whose counted requests a tick has seen
        return sum(g.signature == 1 for g in t._groups.values())

    t.tick()  # the first turn's share only (the root group is one of them)
    assert ticked() == per_turn - 1
    assert len(clock.getDelayedCalls()) == 2  # the ticker, and the rest of this tick
    clock.advance(0)  # (task.Clock runs the turns that follow within one advance)
    assert ticked() == n
    assert len(clock.getDelayedCalls()) == 1  # the ticker alone
    clock.advance(61.0)  # idle past the TTL: every scope expires, over several turns
    for _ in range(3):
        clock.advance(0)
    assert t.expired_total == n
    assert list(t._groups) == [()]
    t.stop()
    assert clock.getDelayedCalls() == []
