"""Exposition reuses the lines of metrics that did not change (issue 17).

Each render must still be byte for byte the one-go render of the same values: these tests
change every kind of metric between renders (and rotate windows, expire scopes, remove
gauges) and compare.  They also pin that the cache is a cache: unchanged lines are the
same objects, and expired scopes leave it.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Callable

from test_telemetry_render import odd_tree, varied_tree
from twisted.internet.task import Clock

from l5d_twisted.telemetry.merged import MergedMetrics, merge_records, record_of
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import MetricsJsonExposition, metrics_json
from l5d_twisted.telemetry.prometheus import PrometheusExposition


def stepped(exposition: PrometheusExposition) -> bytes:
    out: list[bytes] = []
    for _ in exposition.render_steps(out):
        pass
    return b"".join(out)


def check(exposition: PrometheusExposition) -> bytes:
    text = stepped(exposition)
    assert text == exposition.render()
    return text


def rotate(clock: Clock, tree: MetricsTree) -> None:
    clock.advance(30)
    tree.tick()


def changes_render(prefix: str) -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=100.0, tick_s=10.0, window_s=30.0, start=False)
    cell = {"load": 0.0, "size": 3.0}
    service = tree.stats.scope("rt", "out", "service", "svc/a")
    requests = service.counter("requests")
    latency = service.stat("request_latency_ms")
    client = tree.stats.scope("rt", "out", "client", "#/x/a")
    client.gauge("loadbalancer", "load", fn=lambda: cell["load"])
    size = client.gauge("loadbalancer", "size", fn=lambda: cell["size"])
    other = tree.stats.scope("rt", "out", "service", "svc/b")
    other.counter("requests").incr(2)
    other.stat("request_latency_ms").add(3.0)
    exposition = PrometheusExposition(tree, prefix, process_metrics=False)
    texts = [check(exposition)]

    def then(change: Callable[[], object], changes: bool = True) -> None:
        change()
        texts.append(check(exposition))
        assert (texts[-1] != texts[-2]) is changes, change

    then(lambda: requests.incr())
    then(lambda: requests.incr(10**7))  # formatted another way
    then(lambda: latency.add(12.5))
    then(lambda: cell.__setitem__("load", 0.25))
    then(lambda: cell.__setitem__("load", math.nan))
    then(lambda: cell.__setitem__("load", 1.0))
    then(lambda: service.counter("retries", "total").incr())  # a new metric
    then(lambda: tree.stats.scope("rt", "out", "service", "svc/c").counter("x").incr())
    then(lambda: size.remove())
    # The window rotates without any new value: after two rotations the summaries show
    # an empty window (the first keeps the values as the previous period).
    then(lambda: rotate(clock, tree), changes=False)
    then(lambda: rotate(clock, tree))
    # Expiry: everything idle for the TTL leaves.
    for _ in range(12):
        clock.advance(10)
        tree.tick()
    assert b"svc/b" not in check(exposition)
    # A clash makes the render go without the cache: the same bytes.
    tree.stats.scope("rt", "out", "service", "svc/d").gauge("requests", fn=lambda: 1)
    tree.stats.scope("rt", "out", "service", "svc/e").counter("requests").incr()
    check(exposition)
    assert exposition._cache.clashed


def test_every_change_shows_in_the_next_render() -> None:
    for prefix in ("", "l5d_"):
        changes_render(prefix)


def test_odd_and_clashing_trees_render_the_same_twice() -> None:
    for tree, clashes in ((odd_tree(), False), (varied_tree(), True)):
        exposition = PrometheusExposition(tree, process_metrics=False)
        first = check(exposition)
        assert check(exposition) == first
        assert exposition._cache.clashed is clashes


def test_unchanged_lines_are_reused_and_changed_ones_made_again() -> None:
    tree = MetricsTree(Clock(), start=False)
    counters = {}
    for name in ("svc/a", "svc/b"):
        scope = tree.stats.scope("rt", "out", "service", name)
        counters[name] = scope.counter("requests")
        scope.stat("request_latency_ms").add(1.0)
        scope.gauge("pending", fn=lambda: 0.0)
    exposition = PrometheusExposition(tree, process_metrics=False)
    check(exposition)
    key_a, key_b = ("rt", "out", "service", "svc/a"), ("rt", "out", "service", "svc/b")
    before_a = list(exposition._cache._scopes[key_a].lines)
    before_b = list(exposition._cache._scopes[key_b].lines)
    counters["svc/a"].incr(4)
    text = check(exposition)
    after_a = exposition._cache._scopes[key_a].lines
    after_b = exposition._cache._scopes[key_b].lines
    assert all(x is y for x, y in zip(before_b, after_b))  # idle: the very same bytes
    changed = [y for x, y in zip(before_a, after_a) if x is not y]
    assert changed == [b'rt:service:requests{rt="out",service="svc/a"} 4.0\n']
    assert changed[0] in text


def test_expired_scopes_leave_the_cache_and_it_holds_no_metric() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=10.0, tick_s=1.0, start=False)
    scope = tree.stats.scope("rt", "out", "service", "svc/gone")
    counter = scope.counter("requests")
    counter.incr()
    scope.stat("request_latency_ms").add(2.0)
    stays = tree.stats.scope("rt", "out", "service", "svc/stays").counter("requests")
    exposition = PrometheusExposition(tree, process_metrics=False)
    check(exposition)
    key = ("rt", "out", "service", "svc/gone")
    assert key in exposition._cache._scopes
    held = weakref.ref(counter)
    del counter, scope
    for _ in range(12):
        stays.incr()
        clock.advance(1)
        tree.tick()
    # expired, dormant, held by nobody: freed, though the cache still has the scope's lines
    gc.collect()
    assert held() is None and key in exposition._cache._scopes
    text = check(exposition)
    assert b"svc/gone" not in text and b"svc/stays" in text
    assert key not in exposition._cache._scopes


def test_overlapping_renders_both_make_the_one_go_bytes() -> None:
    tree = odd_tree()
    exposition = PrometheusExposition(tree, process_metrics=False)
    check(exposition)
    first: list[bytes] = []
    steps = exposition.render_steps(first)
    next(steps)  # under way, holding the cache
    assert check(exposition)  # rendered without it meanwhile
    for _ in steps:
        pass
    assert b"".join(first) == exposition.render()
    assert not exposition._cache.busy
    # a render stopped part-way leaves the cache usable
    stopped: list[bytes] = []
    stopping = exposition.render_steps(stopped)
    next(stopping)
    stopping.close()  # type: ignore[attr-defined]
    assert not exposition._cache.busy
    check(exposition)


def test_a_merged_tree_renders_the_same_after_each_load() -> None:
    worker = odd_tree()
    merged = MergedMetrics(Clock())
    merged.stats.counter("workers", "restarts").incr()
    exposition = PrometheusExposition(merged, process_metrics=False)
    for round_ in range(3):
        records = [r for r in (record_of(n, m) for n, m in worker.metrics()) if r is not None]
        merged.load(merge_records([records, records]))
        check(exposition)
        worker.stats.scope("rt", "o", "service", f"svc/new{round_}").counter("x").incr()
        worker.stats.scope("rt", "outgoing", "service", "svc/s1").stat("lat").add(round_)


def json_stepped(exposition: MetricsJsonExposition, pretty: bool = False) -> bytes:
    out: list[bytes] = []
    for _ in exposition.render_steps(out, None, pretty):
        pass
    text = b"".join(out)
    assert text == metrics_json(exposition.tree, None, pretty)
    return text


def test_metrics_json_shows_every_change_and_forgets_expired_scopes() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=100.0, tick_s=10.0, window_s=30.0, start=False)
    cell = {"load": 0.0}
    service = tree.stats.scope("rt", "out", "service", "svc/a")
    requests = service.counter("requests")
    latency = service.stat("request_latency_ms")
    client = tree.stats.scope("rt", "out", "client", "#/x/a")
    client.gauge("loadbalancer", "load", fn=lambda: cell["load"])
    other = tree.stats.scope("rt", "out", "service", "svc/b")
    other.counter("requests").incr(2)
    tree.stats.counter("permanent").incr()
    exposition = MetricsJsonExposition(tree)
    for pretty in (False, True):
        texts = [json_stepped(exposition, pretty)]
        for change in (
            lambda: requests.incr(),
            lambda: latency.add(2.5),
            lambda: cell.__setitem__("load", math.inf),  # null
            lambda: cell.__setitem__("load", 0.5),
            lambda: service.counter("retries", "total").incr(),
            lambda: rotate(clock, tree),
            lambda: rotate(clock, tree),
        ):
            change()
            texts.append(json_stepped(exposition, pretty))
    key = ("rt", "out", "service", "svc/b")
    assert key in exposition._blocks[False]
    for _ in range(12):
        requests.incr()
        clock.advance(10)
        tree.tick()
    assert b"svc/b" not in json_stepped(exposition)
    assert key not in exposition._blocks[False]
    assert ("rt", "out", "service", "svc/a") in exposition._blocks[False]


def test_metrics_json_scope_names_that_continue_each_other() -> None:
    # svc/a's keys and svc/a/b's interleave once sorted: rendered as single entries
    tree = MetricsTree(Clock(), start=False)
    for name in ("svc/a", "svc/a/b", "svc/a-c", "svc/ab"):
        scope = tree.stats.scope("rt", "out", "service", name)
        scope.counter("requests").incr(len(name))
        scope.counter("zeta").incr()
        scope.counter("a").incr()
        scope.stat("b").add(1.0)
    tree.stats.scope("rt", "out", "client", "#/x").scope("service", "svc/a").counter("c").incr()
    exposition = MetricsJsonExposition(tree)
    for pretty in (False, True, False):
        json_stepped(exposition, pretty)
    assert ("rt", "out", "service", "svc/a") in exposition._split
    assert ("rt", "out", "service", "svc/ab") not in exposition._split
    tree.stats.scope("rt", "out", "service", "svc/a").counter("requests").incr()
    json_stepped(exposition)


def test_metrics_json_of_a_merged_tree() -> None:
    worker = odd_tree()
    merged = MergedMetrics(Clock())
    merged.stats.counter("workers", "restarts").incr()
    exposition = MetricsJsonExposition(merged)
    for round_ in range(3):
        records = [r for r in (record_of(n, m) for n, m in worker.metrics()) if r is not None]
        merged.load(merge_records([records, records]))
        json_stepped(exposition)
        worker.stats.scope("rt", "o", "service", f"svc/new{round_}").counter("x").incr()


def test_forgetting_the_caches_changes_nothing_but_memory() -> None:
    tree = odd_tree()
    exposition = PrometheusExposition(tree, process_metrics=False)
    json_exposition = MetricsJsonExposition(tree)
    first, first_json = check(exposition), json_stepped(json_exposition)
    exposition.forget()
    json_exposition.forget()
    assert not exposition._cache._scopes and not json_exposition._blocks[False]
    assert check(exposition) == first and json_stepped(json_exposition) == first_json


# -- caches dropped when nobody renders (issue 17) ----------------------------------------


def idle_tree(clock: Clock) -> MetricsTree:
    tree = MetricsTree(clock, start=False)
    for i in range(3):
        scope = tree.stats.scope("rt", "out", "service", f"svc/{i}")
        scope.counter("requests").incr(i + 1)
        scope.stat("request_latency_ms").add(2.0)
    return tree


def test_the_prometheus_cache_goes_after_ten_minutes_without_a_render() -> None:
    from l5d_twisted.telemetry.render import CACHE_IDLE_S

    assert CACHE_IDLE_S == 600.0
    clock = Clock()
    tree = idle_tree(clock)
    exposition = PrometheusExposition(tree, process_metrics=False, reactor=clock)
    assert not clock.getDelayedCalls(), "no timer before the first render"
    first = check(exposition)
    assert len(exposition._cache._scopes) == 4  # three services and the permanent group
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(599)
    check(exposition)  # a scrape: the clock starts again from here
    clock.advance(599)
    assert len(exposition._cache._scopes) == 4, "599 s since the last render: kept"
    assert len(clock.getDelayedCalls()) == 1, "one timer, moved on, not one per render"
    clock.advance(1)
    assert exposition._cache._scopes == {}, "600 s without a render: dropped"
    assert not clock.getDelayedCalls(), "and no timer while nobody scrapes"
    assert check(exposition) == first  # made again, same bytes
    assert len(exposition._cache._scopes) == 4 and len(clock.getDelayedCalls()) == 1


def test_a_render_in_progress_keeps_the_cache_until_it_is_over() -> None:
    clock = Clock()
    tree = idle_tree(clock)
    exposition = PrometheusExposition(tree, process_metrics=False, reactor=clock, cache_idle_s=10)
    check(exposition)
    out: list[bytes] = []
    steps = exposition.render_steps(out)
    next(steps)  # a render started (say a slow scraper's) and is using the cache
    clock.advance(10)
    assert exposition._cache.busy and exposition._cache._scopes, "not dropped under a render"
    for _ in steps:
        pass
    assert b"".join(out) == exposition.render()
    clock.advance(10)
    assert exposition._cache._scopes == {}


def test_the_metrics_json_cache_goes_after_ten_minutes_without_a_render() -> None:
    clock = Clock()
    tree = idle_tree(clock)
    exposition = MetricsJsonExposition(tree, clock)

    def render() -> bytes:
        out: list[bytes] = []
        for _ in exposition.render_steps(out):
            pass
        return b"".join(out)

    first = render()
    assert first == metrics_json(tree) and exposition._blocks[False]
    clock.advance(599)
    assert exposition._blocks[False]
    clock.advance(1)
    assert exposition._blocks == {False: {}, True: {}} and exposition._order is None
    assert not clock.getDelayedCalls()
    assert render() == first and exposition._blocks[False]


def test_without_a_reactor_nothing_is_timed() -> None:
    clock = Clock()
    tree = idle_tree(clock)
    exposition = PrometheusExposition(tree, process_metrics=False)
    check(exposition)
    assert exposition.idle is None and not clock.getDelayedCalls()
