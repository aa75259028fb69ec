"""Merging workers' metrics (telemetry.merged): exact sums, bucket-wise histograms."""

from __future__ import annotations

import functools
import json
import math
import random

from twisted.internet.task import Clock

from l5d_twisted.telemetry.histogram import Histogram, merge_states
from l5d_twisted.telemetry.merged import (
    MergedMetrics,
    WorkerProcessCollector,
    gauge_merge,
    merge_records,
    retire,
    snapshot_steps,
)
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics
from l5d_twisted.telemetry.prometheus import PrometheusExposition


def _snapshot(tree: MetricsTree) -> list[list[object]]:
    """What a worker sends, through JSON as on the control channel."""
    records: list[list[object]] = []
    for _ in snapshot_steps(tree, records.extend):
        pass
    copied: list[list[object]] = json.loads(json.dumps(records))
    return copied


def test_counters_summed_histograms_merged_bucket_wise_gauges_by_kind() -> None:
    rng = random.Random(7)
    clock = Clock()
    workers = [MetricsTree(clock, start=False) for _ in range(3)]
    everything = Histogram()  # what one process seeing every request would show
    pending = [2, 0, 5]
    for i, tree in enumerate(workers):
        svc = tree.stats.scope("rt", "out", "service", "svc/a")
        for _ in range(10 * (i + 1)):
            svc.counter("requests").incr()
            latency = rng.lognormvariate(1.0, 1.2)
            svc.stat("request_latency_ms").add(latency)
            everything.add(latency)
        if i == 1:
            tree.get("rt", "out", "service", "svc/a", "request_latency_ms").rotate()  # type: ignore[union-attr]
        svc.gauge("pending", fn=functools.partial(float, pending[i]))
        client = tree.stats.scope("rt", "out", "client", "/$/inet/127.0.0.1/1", "loadbalancer")
        client.gauge("size", fn=lambda: 3.0)
        client.gauge("available", fn=functools.partial(float, 3 - i))
    merged = MergedMetrics(clock)
    merged.load(merge_records([_snapshot(t) for t in workers]))
    flat = flat_metrics(merged)
    key = "rt/out/service/svc/a/"
    assert flat[key + "requests"] == 10 + 20 + 30
    assert flat[key + "request_latency_ms.count"] == 60
    assert math.isclose(flat[key + "request_latency_ms.sum"], everything.sum)
    want = everything.summary()
    for suffix, value in zip(("p50", "p90", "p95", "p99", "p9990", "p9999"), want.percentiles):
        assert flat[key + "request_latency_ms." + suffix] == value, suffix
    assert flat[key + "request_latency_ms.min"] == want.min
    assert flat[key + "request_latency_ms.max"] == want.max
    assert flat[key + "pending"] == 7.0
    lb = "rt/out/client/$/inet/127.0.0.1/1/loadbalancer/"
    assert flat[lb + "size"] == 3.0  # the same address set in every worker: not 9
    assert flat[lb + "available"] == 1.0  # the worst worker's view
    # every exposition reads the merged tree as a worker's own
    text = PrometheusExposition(merged, process_metrics=False).render().decode()
    assert 'rt:service:requests{rt="out",service="svc/a"} 60.0' in text


def test_merge_states_equals_one_histogram_fed_everything() -> None:
    rng = random.Random(1)
    parts = [Histogram() for _ in range(4)]
    whole = Histogram()
    for _ in range(2000):
        value = rng.expovariate(0.1)
        rng.choice(parts).add(value)
        whole.add(value)
    merged = Histogram()
    merged.load(merge_states([p.state() for p in parts]))
    got, want = merged.summary(), whole.summary()
    # buckets, counts, min, max and percentiles exact; sums up to float addition order
    assert (got.count, got.window_count, got.min, got.max, got.percentiles) == (
        want.count,
        want.window_count,
        want.min,
        want.max,
        want.percentiles,
    )
    assert math.isclose(got.sum, want.sum) and math.isclose(got.avg, want.avg)


def test_a_name_no_worker_has_any_more_leaves_and_objects_stay_the_same() -> None:
    merged = MergedMetrics(Clock())
    merged.load({("a", "requests"): ("c", 1), ("b", "x"): ("g", 2.0)})
    first = merged.get("a", "requests")
    merged.load({("a", "requests"): ("c", 5)})
    assert merged.get("a", "requests") is first
    assert flat_metrics(merged) == {"a/requests": 5}


def test_gauge_rules() -> None:
    assert gauge_merge(("rt", "o", "client", "c", "loadbalancer", "size")) == "max"
    assert gauge_merge(("rt", "o", "client", "c", "loadbalancer", "available")) == "min"
    assert gauge_merge(("rt", "o", "server", "0.0.0.0", "4140", "connections")) == "sum"
    assert gauge_merge(("rt", "o", "service", "s", "pending")) == "sum"


def test_process_metrics_labelled_per_worker() -> None:
    collector = WorkerProcessCollector()
    collector.workers["0"] = [
        [
            "process_resident_memory_bytes",
            "RSS",
            "gauge",
            [["process_resident_memory_bytes", {}, 1e7]],
        ]
    ]
    collector.workers["1"] = [
        [
            "process_resident_memory_bytes",
            "RSS",
            "gauge",
            [["process_resident_memory_bytes", {}, 2e7]],
        ]
    ]
    families = {f.name: f for f in collector.collect()}
    samples = {
        s.labels["worker"]: s.value for s in families["process_resident_memory_bytes"].samples
    }
    assert samples["0"] == 1e7 and samples["1"] == 2e7 and samples["supervisor"] > 0


def test_what_an_ended_worker_counted_stays_in_the_counters() -> None:
    clock = Clock()
    old, other, new = (MetricsTree(clock, start=False) for _ in range(3))
    for tree, n in ((old, 5), (other, 3), (new, 2)):
        scope = tree.stats.scope("rt", "out", "service", "svc/a")
        for _ in range(n):
            scope.counter("requests").incr()
            scope.stat("request_latency_ms").add(10.0)
    retired: dict[tuple[str, ...], tuple[str, object]] = {}
    retire(_snapshot(old), retired)  # the old worker died; `new` replaced it
    merged = MergedMetrics(clock)
    merged.load(merge_records([_snapshot(other), _snapshot(new)], retired))
    flat = flat_metrics(merged)
    assert flat["rt/out/service/svc/a/requests"] == 5 + 3 + 2
    assert flat["rt/out/service/svc/a/request_latency_ms.count"] == 10
    assert flat["rt/out/service/svc/a/request_latency_ms.sum"] == 100.0
    # a retired name that no live worker has any more is let go (bounded)
    merged.load(merge_records([], retired))
    assert retired == {}
