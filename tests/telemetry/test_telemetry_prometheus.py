"""Prometheus exposition: linkerd 1's names and labels, valid text (parsed back)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.prometheus import (
    LINKERD1_QUANTILES,
    PrometheusExposition,
    name_and_labels,
)

K8S_CLIENT = "%/io.l5d.k8s.daemonset/default/incoming/l5d/#/io.l5d.k8s/default/http/world-v1"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def populated_tree() -> MetricsTree:
    tree = MetricsTree(Clock())
    svc = tree.stats.scope("rt", "outgoing", "service", "/svc/hello")
    svc.counter("requests").incr(10)
    for v in range(1, 101):
        svc.stat("request_latency_ms").add(float(v))
    client = tree.stats.scope("rt", "outgoing", "client", "/" + K8S_CLIENT)
    client.counter("requests").incr(4)
    client.counter("status", "2XX").incr(3)
    client.gauge("pending", fn=lambda: 2)
    client.scope("service", "svc/hello").counter("requests").incr(4)
    tree.stats.scope("rt", "incoming", "server", "0.0.0.0", "4141").counter("requests").incr(7)
    tree.stats.scope("rt", "outgoing", "bindcache", "path").counter("misses").incr()
    tree.stats.counter("some-thing.odd").incr()
    return tree


def test_names_and_labels_as_linkerd() -> None:
    assert name_and_labels(("rt", "outgoing", "service", "svc/hello", "requests")) == (
        "rt:service:requests",
        {"rt": "outgoing", "service": "svc/hello"},
    )
    assert name_and_labels(("rt", "incoming", "server", "0.0.0.0", "4141", "status", "2XX")) == (
        "rt:server:status:2XX",
        {"rt": "incoming", "server": "0.0.0.0/4141"},
    )
    assert name_and_labels(("jvm", "uptime"), prefix="l5d_") == ("l5d_jvm:uptime", {})
    assert name_and_labels(("a-b", "c.d")) == ("a_b:c_d", {})
    assert name_and_labels(("x",), prefix="l5d-") == ("l5d_x", {})  # a prefix is sanitised too


def test_exposition_parses_with_expected_samples() -> None:
    text = PrometheusExposition(populated_tree(), quantiles=LINKERD1_QUANTILES).render().decode()
    got = samples(text)
    assert got[key("rt:service:requests", rt="outgoing", service="svc/hello")] == 10
    assert got[key("rt:client:requests", rt="outgoing", client=K8S_CLIENT)] == 4
    assert got[key("rt:client:status:2XX", rt="outgoing", client=K8S_CLIENT)] == 3
    assert got[key("rt:client:pending", rt="outgoing", client=K8S_CLIENT)] == 2
    assert (
        got[
            key("rt:client:service:requests", rt="outgoing", client=K8S_CLIENT, service="svc/hello")
        ]
        == 4
    )
    assert got[key("rt:server:requests", rt="incoming", server="0.0.0.0/4141")] == 7
    assert got[key("rt:bindcache:path:misses", rt="outgoing")] == 1
    assert got[key("some_thing_odd")] == 1
    labels = {"rt": "outgoing", "service": "svc/hello"}
    for quantile, approx in (("0.5", 50), ("0.9", 90), ("0.95", 95), ("0.99", 99), ("1", 100)):
        value = got[key("rt:service:request_latency_ms", quantile=quantile, **labels)]
        assert abs(value - approx) / approx < 0.035, (quantile, value)
    assert got[key("rt:service:request_latency_ms_count", **labels)] == 100
    assert got[key("rt:service:request_latency_ms_sum", **labels)] == 5050
    assert got[key("rt:service:request_latency_ms_avg", **labels)] == 50.5


def test_counters_have_no_total_suffix_and_are_untyped() -> None:
    text = PrometheusExposition(populated_tree(), process_metrics=False).render().decode()
    assert "rt:service:requests{" in text
    assert "_total" not in text
    assert "# TYPE rt:service:requests untyped" in text
    assert "# TYPE rt:service:request_latency_ms summary" in text


def test_process_metrics_present() -> None:
    text = PrometheusExposition(MetricsTree(Clock())).render().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for name in (
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "python_gc_collections_total",
        "process_uptime_seconds",
    ):
        assert name in names


def test_clashing_names_do_not_produce_invalid_text() -> None:
    tree = MetricsTree(Clock())
    tree.stats.stat("lat").add(1)
    tree.stats.counter("lat_count").incr()  # would duplicate the summary's lat_count
    tree.stats.counter("a-b").incr()
    tree.stats.gauge("a_b", fn=lambda: 1)  # same sanitised name, other type
    text = PrometheusExposition(tree, process_metrics=False).render().decode()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names))


def test_prometheus_telemeter_plugin_serves_its_path_and_sets_ttl() -> None:
    tree = MetricsTree(Clock())
    plugin = TELEMETERS.get("io.l5d.prometheus")
    config = plugin.config_type(path="/metrics", prefix="l5d_", metrics_expiry_ttl_secs=60)
    telemeter = plugin.factory(config, PluginContext(reactor=Clock(), stats=tree.stats))
    assert list(telemeter.admin_resources()) == [b"/metrics"]
    assert tree.expiry_ttl_s == 60.0
    tree.stats.counter("x").incr()
    assert b"l5d_x 1.0" in telemeter.exposition.render()
