"""Metrics at a node's scale (issue 17): the exposition's quantile lines, the stepped
render's shortcuts (still byte for byte prometheus-client's text), and expired scopes
freed by reference counting, on a task.Clock."""

from __future__ import annotations

import gc
import math

import pytest
from twisted.internet.task import Clock

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.telemetry.metrics import GaugeMetric, MetricsTree
from l5d_twisted.telemetry.prometheus import (
    DEFAULT_QUANTILES,
    LINKERD1_QUANTILES,
    PrometheusExposition,
)
from l5d_twisted.telemetry.prometheus_telemeter import make_prometheus_telemeter


def scoped_tree() -> MetricsTree:
    tree = MetricsTree(Clock())
    for i in range(4):
        svc = tree.stats.scope("rt", "out", "service", f'svc/s{i}"\\\n')
        svc.counter("requests").incr(10**i * 999)  # 999 .. 999,000,000: Go's exponents
        for v in range(1, 50):
            svc.stat("request_latency_ms").add(v * 1.25)
        client = tree.stats.scope("rt", "out", "client", f"#/mem/s{i}")
        client.counter("requests").incr(i)
        client.gauge("pending", fn=lambda: -0.0)
        client.gauge("load", fn=lambda: 2**60)
        client.scope("service", f"svc/s{i}").counter("requests").incr()
        client.stat("retries").add(0)
    # the same name as another type in one scope only: a clash, skipped in both renders
    tree.stats.scope("rt", "out", "service", "svc/odd").gauge("requests", fn=lambda: 1.0)
    tree.stats.scope("rt", "in", "server", "127.0.0.1", "4140").counter("requests").incr()
    tree.stats.gauge("nan", fn=lambda: math.nan)
    return tree


def stepped(exposition: PrometheusExposition) -> bytes:
    out: list[bytes] = []
    for _ in exposition.render_steps(out):
        pass
    return b"".join(out)


@pytest.mark.parametrize("quantiles", [DEFAULT_QUANTILES, LINKERD1_QUANTILES, ("1",), ()])
def test_the_stepped_render_is_prometheus_clients_text(quantiles: tuple[str, ...]) -> None:
    tree = scoped_tree()
    for prefix in ("", "l5d_"):
        exposition = PrometheusExposition(
            tree, prefix=prefix, process_metrics=False, quantiles=quantiles
        )
        assert stepped(exposition) == exposition.render()


def test_default_quantiles_are_the_ones_dashboards_read() -> None:
    text = stepped(PrometheusExposition(scoped_tree(), process_metrics=False)).decode()
    found = {
        line.split('quantile="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("rt:service:request_latency_ms{")
    }
    assert found == {"0.5", "0.95", "0.99", "1"}
    every = stepped(
        PrometheusExposition(scoped_tree(), process_metrics=False, quantiles=LINKERD1_QUANTILES)
    ).decode()
    assert (
        len(every.splitlines()) - len(text.splitlines()) == 3 * 2 * 4
    )  # 3 lines, 2 hists, 4 scopes


def test_the_telemeter_takes_quantiles_from_the_config(tmp_path: object) -> None:
    config = load_config(
        "telemetry:\n- kind: io.l5d.prometheus\n  quantiles: [0.5, 0.9, 0.999, 1]\n"
        "routers:\n- protocol: http\n"
    )
    spec = config.telemetry[0]
    tree = MetricsTree(Clock())
    tree.stats.scope("rt", "r", "service", "svc/x").stat("lat").add(3)
    telemeter = make_prometheus_telemeter(
        spec.config, PluginContext(reactor=Clock(), stats=tree.stats)
    )
    text = telemeter.exposition.render().decode()
    found = [
        line.split('quantile="')[1].split('"')[0]
        for line in text.splitlines()
        if "quantile=" in line
    ]
    assert found == ["0.5", "0.9", "0.999", "1"]


@pytest.mark.parametrize("value", ["[0.42]", "[p99]", "0.5"])
def test_unknown_quantiles_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(
            f"telemetry:\n- kind: io.l5d.prometheus\n  quantiles: {value}\n"
            "routers:\n- protocol: http\n"
        )
    assert "telemetry[0].quantiles" in str(raised.value)


def test_an_expired_scope_nobody_holds_is_freed_without_a_full_gc() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=10)
    scope = tree.stats.scope("rt", "r", "client", "#/mem/x")
    counter = scope.counter("requests")
    gauge = scope.gauge("pending", fn=lambda: 0.0)
    counter.incr()
    gc.collect()
    gc.disable()
    try:
        for _ in range(12):
            clock.advance(1)
        assert ("rt", "r", "client", "#/mem/x") not in tree.group_keys()
        assert ("rt", "r", "client", "#/mem/x") in tree._dormant, "held: dormant"
        counter.incr()  # still held: comes back with its metrics
        clock.advance(1)
        assert ("rt", "r", "client", "#/mem/x") in tree.group_keys()
        pending = tree.get("rt", "r", "client", "#/mem/x", "pending")
        assert isinstance(pending, GaugeMetric) and pending.registrations() == 1
        del pending
        for _ in range(12):
            clock.advance(1)
        del counter, gauge, scope
        assert not tree._dormant, "nobody holds its metrics: freed by reference counting"
    finally:
        gc.enable()


def test_a_layer_closing_does_not_keep_its_scope_alive() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=10)
    counter = tree.stats.scope("rt", "r", "service", "svc/x").counter("closes")
    counter.incr()
    for _ in range(9):
        clock.advance(1)
    key = ("rt", "r", "service", "svc/x")
    tree.closing(key, counter.incr)  # its last update, as a route closes
    clock.advance(1)
    clock.advance(1)
    assert key not in tree.group_keys(), "expired on time: the close was not a use"
    tree.closing(key, counter.incr)  # closing while dormant does not revive it
    clock.advance(1)
    assert key not in tree.group_keys()
    counter.incr()  # a real use does
    clock.advance(1)
    assert key in tree.group_keys()
