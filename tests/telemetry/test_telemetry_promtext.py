"""The mesh's own Prometheus text (telemetry.promtext, telemetry.process) against
prometheus-client's for the same values (issue 15 item 3: the run path no longer imports
prometheus-client, whose exposition module imports ``ssl``; names, types, help text and
bytes must not change, as the chart's dashboards and scrapers read them)."""

from __future__ import annotations

import math
import platform
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector as ClientGCCollector
from prometheus_client.platform_collector import PlatformCollector as ClientPlatformCollector
from prometheus_client.process_collector import ProcessCollector as ClientProcessCollector
from prometheus_client.utils import floatToGoString
from twisted.internet.task import Clock

from l5d_twisted.telemetry import process, promtext
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.prometheus import MetricsTreeCollector, PrometheusExposition

VALUES = [
    0.0,
    -0.0,
    1.0,
    12,
    0.5,
    1e-9,
    123456.0,
    1234567.0,
    1.5e300,
    -2.5e7,
    math.inf,
    -math.inf,
    math.nan,
    7,
    2**53 + 1,
]


@pytest.mark.parametrize("value", VALUES)
def test_numbers_print_as_prometheus_client_prints_them(value: float) -> None:
    assert promtext.float_to_go(value) == floatToGoString(value)


class Fixed:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def families(make: Any) -> list[Any]:
    """The same families built with ``make`` (promtext.Family or prometheus-client's Metric)."""
    out = []
    for name, doc, type_ in [
        ("rt:requests", "", "unknown"),
        ("rt:load", "the load\nwith a \\ backslash", "gauge"),
        ("rt:latency_ms", "", "summary"),
        ("process_cpu_seconds", "Total user and system CPU time spent in seconds.", "counter"),
    ]:
        family = make(name, doc, type_)
        sample = name + "_total" if type_ == "counter" else name
        family.add_sample(sample, {}, 3)
        family.add_sample(sample, {"rt": 'a"b\\c\nd', "client": "/#/io.l5d.fs/x"}, 0.25)
        family.add_sample(sample, {"quantile": "0.99", "rt": "r"}, math.inf)
        out.append(family)
    return out


def test_the_text_is_prometheus_clients_for_the_same_families() -> None:
    ours = promtext.Registry()
    ours.register(Fixed(families(promtext.Family)))
    theirs = CollectorRegistry(auto_describe=False)
    theirs.register(Fixed(families(Metric)))
    assert promtext.generate_latest(ours) == prometheus_client.generate_latest(theirs)


def scoped_tree() -> MetricsTree:
    tree = MetricsTree(Clock())
    for i in range(3):
        svc = tree.stats.scope("rt", "out", "service", f'svc/s{i}"\\\n')
        svc.counter("requests").incr(10**i * 999_999)  # Go's exponents from 1e6
        for v in range(1, 50):
            svc.stat("request_latency_ms").add(v * 1.25)
        client = tree.stats.scope("rt", "out", "client", f"#/io.l5d.fs/s{i}")
        client.gauge("pending", fn=lambda: -0.0)
        client.gauge("load", fn=lambda: 2**60)
        client.scope("service", f"svc/s{i}").counter("requests").incr()
    tree.stats.scope("rt", "in", "server", "127.0.0.1", "4140").counter("requests").incr()
    tree.stats.gauge("nan", fn=lambda: math.nan)
    return tree


class AsClientMetrics:
    """Our collector's families handed to prometheus-client as its own ``Metric``s."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def collect(self) -> list[Metric]:
        out = []
        for family in self.collector.collect():
            metric = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                metric.add_sample(sample.name, sample.labels, sample.value)
            out.append(metric)
        return out


@pytest.mark.parametrize("prefix", ["", "l5d_"])
def test_a_tree_renders_as_prometheus_client_renders_it(prefix: str) -> None:
    tree = scoped_tree()
    theirs = CollectorRegistry(auto_describe=False)
    theirs.register(AsClientMetrics(MetricsTreeCollector(tree, prefix)))
    exposition = PrometheusExposition(tree, prefix=prefix, process_metrics=False)
    assert exposition.render() == prometheus_client.generate_latest(theirs)


def records(families: Any) -> list[tuple[str, str, str, list[tuple[str, dict[str, str]]]]]:
    return [
        (f.name, f.documentation, f.type, [(s.name, dict(s.labels)) for s in f.samples])
        for f in families
    ]


def test_process_metrics_have_prometheus_clients_names_types_help_and_labels() -> None:
    theirs = CollectorRegistry(auto_describe=False)
    ClientProcessCollector(registry=theirs)
    ClientGCCollector(registry=theirs)
    ClientPlatformCollector(registry=theirs)
    ours = promtext.Registry()
    process.register_process_collectors(ours)
    ours_records = records(ours.collect())
    assert ours_records[-1][0] == "process_uptime_seconds"  # ours, after theirs
    assert ours_records[:-1] == records(theirs.collect())
    # the values that do not move between two reads are the same
    fixed = {"process_start_time_seconds", "process_max_fds", "python_info"}
    ours_values = {f.name: [s.value for s in f.samples] for f in ours.collect()}
    theirs_values = {f.name: [s.value for s in f.samples] for f in theirs.collect()}
    for name in fixed:
        assert ours_values[name] == theirs_values[name], name
    assert ours_values["python_info"] == [1]
    rss = ours_values["process_resident_memory_bytes"][0]
    assert abs(rss - theirs_values["process_resident_memory_bytes"][0]) < 64 << 20
    assert platform.python_implementation() == "CPython"
