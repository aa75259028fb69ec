"""MetricsTree: recording, names, histograms and idle expiry, driven by task.Clock."""

from __future__ import annotations

import gc
import json

from twisted.internet.task import Clock

from l5d_twisted.telemetry.histogram import Histogram, bucket_bounds, bucket_index
from l5d_twisted.telemetry.metrics import CounterMetric, MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics, metrics_json


def advance(clock: Clock, seconds: float, step: float = 10) -> None:
    """Advance in steps, so that a LoopingCall runs at each of its ticks."""
    for _ in range(int(seconds // step)):
        clock.advance(step)


def names(tree: MetricsTree) -> set[str]:
    return {"/".join(n) for n, _ in tree.metrics()}


def test_scoped_names_drop_leading_slash_and_keep_ids_as_one_segment() -> None:
    tree = MetricsTree(Clock())
    svc = tree.stats.scope("rt", "outgoing", "service", "/svc/hello")
    svc.counter("requests").incr(3)
    svc.counter("status", "2XX").incr()
    tree.stats.scope("rt", "outgoing").scope(
        "client", "/%/io.l5d.port/4141/#/io.l5d.fs/world"
    ).counter("requests").incr()
    assert names(tree) == {
        "rt/outgoing/service/svc/hello/requests",
        "rt/outgoing/service/svc/hello/status/2XX",
        "rt/outgoing/client/%/io.l5d.port/4141/#/io.l5d.fs/world/requests",
    }
    metric = tree.get("rt", "outgoing", "service", "svc/hello", "requests")
    assert isinstance(metric, CounterMetric) and metric.value == 3


def test_same_name_gives_same_handle_and_gauge_reads_function() -> None:
    tree = MetricsTree(Clock())
    a = tree.stats.counter("x")
    assert tree.stats.counter("x") is a
    level = [2.0]
    gauge = tree.stats.gauge("g", fn=lambda: level[0])
    level[0] = 7.0
    assert flat_metrics(tree)["g"] == 7.0
    gauge.remove()
    assert "g" not in flat_metrics(tree)


def test_broken_gauge_does_not_break_reading() -> None:
    tree = MetricsTree(Clock())
    tree.stats.gauge("bad", fn=lambda: 1 / 0)
    tree.stats.counter("ok").incr()
    flat = flat_metrics(tree)
    assert flat["ok"] == 1 and flat["bad"] is None


def test_infinite_gauge_keeps_metrics_json_valid() -> None:
    tree = MetricsTree(Clock())
    tree.stats.gauge("inf", fn=lambda: float("inf"))
    tree.stats.counter("ok").incr()

    def invalid(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    flat = json.loads(metrics_json(tree), parse_constant=invalid)
    assert flat == {"inf": None, "ok": 1}


def test_bucket_relative_error_is_small() -> None:
    for value in (0.001, 0.37, 1.0, 3.0, 17.5, 999.0, 123456.0):
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high
        assert (high - low) / low <= 1 / 16 + 1e-9


def test_histogram_percentiles_min_max_avg() -> None:
    h = Histogram()
    for v in range(1, 1001):
        h.add(float(v))
    s = h.summary()
    assert s.count == 1000 and s.sum == 500500.0
    assert s.min == 1.0 and s.max == 1000.0 and s.avg == 500.5
    p50, p90, p95, p99, p999, p9999 = s.percentiles
    for got, want in ((p50, 500), (p90, 900), (p95, 950), (p99, 990), (p999, 999), (p9999, 1000)):
        assert abs(got - want) / want < 0.035, (got, want)


def test_histogram_window_forgets_old_values_but_count_is_cumulative() -> None:
    clock = Clock()
    tree = MetricsTree(clock, tick_s=30)
    stat = tree.stats.stat("lat")
    for _ in range(10):
        stat.add(1000.0)
    clock.advance(30)  # one rotation: still in the window (previous period)
    assert flat_metrics(tree)["lat.p99"] > 900
    stat.add(5.0)
    clock.advance(30)  # the 1000s are now two periods old
    flat = flat_metrics(tree)
    assert flat["lat.max"] == 5.0 and flat["lat.p50"] == 5.0
    assert flat["lat.count"] == 11 and flat["lat.sum"] == 10005.0


def test_empty_histogram_reads_zeroes() -> None:
    tree = MetricsTree(Clock())
    tree.stats.stat("lat")
    flat = flat_metrics(tree)
    assert flat["lat.count"] == 0 and flat["lat.p99"] == 0.0 and flat["lat.max"] == 0.0


def test_idle_service_client_server_scopes_expire_and_others_stay() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=600, tick_s=30)
    svc = tree.stats.scope("rt", "r", "service", "svc/a").counter("requests")
    busy = tree.stats.scope("rt", "r", "service", "svc/b").counter("requests")
    tree.stats.scope("rt", "r", "server", "127.0.0.1", "4140").counter("requests").incr()
    tree.stats.scope("rt", "r", "client", "$/inet/x/1").stat("request_latency_ms").add(1)
    tree.stats.counter("permanent").incr()
    svc.incr()
    # Activity is noticed at the next tick (t=30), so idle for 600 s means gone at t=630.
    for _ in range(21):  # b busy all along
        busy.incr()
        clock.advance(30)
    assert names(tree) == {"rt/r/service/svc/b/requests", "permanent"}
    assert tree.expired_total == 3


def test_a_failing_tick_does_not_stop_expiry() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60, tick_s=10)
    tree.stats.scope("rt", "r", "service", "svc/a").counter("requests").incr()
    revive = tree._revive_dormant
    failures = [RuntimeError("one bad tick")]

    def flaky() -> None:
        if failures:
            raise failures.pop()
        revive()

    tree._revive_dormant = flaky  # type: ignore[method-assign]
    advance(clock, 100)
    assert not failures and names(tree) == set()  # expired despite the first tick failing


def test_handle_used_after_expiry_reattaches_and_keeps_counting() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60, tick_s=10)
    counter = tree.stats.scope("rt", "r", "client", "c").counter("requests")
    counter.incr(5)
    advance(clock, 100)
    assert "rt/r/client/c/requests" not in names(tree)
    counter.incr()
    assert flat_metrics(tree)["rt/r/client/c/requests"] == 6  # back at the next read
    clock.advance(30)
    assert "rt/r/client/c/requests" in names(tree)  # recently active: not expired again


def test_asking_for_an_expired_scope_again_revives_the_same_metrics() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60, tick_s=10)
    first = tree.stats.scope("rt", "r", "service", "s").counter("requests")
    first.incr()
    advance(clock, 100)
    again = tree.stats.scope("rt", "r", "service", "s").counter("requests")
    assert again is first and names(tree) == {"rt/r/service/s/requests"}


def test_expired_scope_nobody_holds_is_freed() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60, tick_s=10)
    tree.stats.scope("rt", "r", "client", "gone").counter("requests").incr()
    advance(clock, 100)
    gc.collect()
    assert len(tree._dormant) == 0
    assert names(tree) == set()


def test_expiry_disabled_with_zero_ttl() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=600, tick_s=10)
    tree.set_expiry_ttl(0)
    tree.stats.scope("rt", "r", "client", "c").counter("requests").incr()
    clock.advance(10_000)
    assert names(tree) == {"rt/r/client/c/requests"}


def test_stop_cancels_the_tick() -> None:
    clock = Clock()
    tree = MetricsTree(clock)
    assert clock.getDelayedCalls()
    tree.stop()
    assert not clock.getDelayedCalls()


def test_inlined_index_matches_bucket_index_and_zero_is_recorded() -> None:
    h = Histogram()
    for value in (0.0, -1.0, 0.001, 3.0, 1e9):
        h.add(value)
    assert sorted(h._cur) == sorted({bucket_index(v) for v in (0.0, -1.0, 0.001, 3.0, 1e9)})
    assert h.summary().min == -1.0


def test_nan_and_infinity_are_not_recorded() -> None:
    h = Histogram()
    h.add(float("nan"))
    h.add(float("inf"))
    h.add(2.0)
    s = h.summary()
    assert s.count == 1 and s.sum == 2.0 and s.max == 2.0


def test_scope_with_requests_in_flight_does_not_expire() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60, tick_s=10)
    scope = tree.stats.scope("rt", "r", "service", "stream")
    scope.counter("requests").incr()
    in_flight = [1]
    scope.gauge("pending", fn=lambda: in_flight[0])
    advance(clock, 200)
    assert "rt/r/service/stream/requests" in names(tree)
    in_flight[0] = 0
    advance(clock, 80)
    assert "rt/r/service/stream/requests" not in names(tree)


def test_tick_follows_the_ttl_and_histogram_windows_stay_30s() -> None:
    clock = Clock()
    tree = MetricsTree(clock)
    assert tree.tick_s == 30.0
    tree.set_expiry_ttl(5)
    assert tree.tick_s == 0.5
    assert [c.getTime() for c in clock.getDelayedCalls()] == [0.5]  # the loop was restarted
    tree.set_expiry_ttl(0)
    assert tree.tick_s == 30.0
    tree.set_expiry_ttl(5)
    stat = tree.stats.stat("lat")
    stat.add(1000.0)
    advance(clock, 29, step=0.5)
    assert flat_metrics(tree)["lat.max"] == 1000.0
    advance(clock, 31, step=0.5)  # two rotations: gone from the window
    assert flat_metrics(tree)["lat.max"] == 0.0
    counter = tree.stats.scope("rt", "r", "client", "c").counter("requests")
    counter.incr()
    advance(clock, 6, step=0.5)
    assert "rt/r/client/c/requests" not in names(tree)
