"""The cap on service/client metric scopes made from request data (issue 10, finding 6)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.path import Path
from l5d_twisted.router.router import Router
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics
from l5d_twisted.telemetry.prometheus import PrometheusExposition
from l5d_twisted.telemetry.scope_limit import (
    DEFAULT_MAX_METRIC_SCOPES,
    OVERFLOW_SCOPE,
    limited_scope,
)
from l5d_twisted.telemetry.stats import NULL_STATS


def services(tree: MetricsTree, router: str = "r") -> list[str]:
    return sorted(k[3] for k in tree.group_keys() if k[:3] == ("rt", router, "service"))


def make(tree: MetricsTree, name: str, cap: int, kind: str = "service", router: str = "r") -> Any:
    scope = limited_scope(tree.stats.scope("rt", router), kind, name, cap)
    scope.counter("requests").incr()
    return scope


def test_new_names_beyond_the_cap_share_the_overflow_scope_and_are_counted() -> None:
    tree = MetricsTree(Clock())
    for i in range(5):
        make(tree, f"svc/s{i}", cap=3)
    assert services(tree) == [OVERFLOW_SCOPE, "svc/s0", "svc/s1", "svc/s2"]
    flat = flat_metrics(tree)
    assert flat[f"rt/r/service/{OVERFLOW_SCOPE}/requests"] == 2
    assert flat["rt/r/service_scope_overflow"] == 2
    # Names that have a scope keep it, however full the cap.
    make(tree, "svc/s1", cap=3)
    assert flat_metrics(tree)["rt/r/service/svc/s1/requests"] == 2
    assert flat_metrics(tree)["rt/r/service_scope_overflow"] == 2
    # Prometheus: one labelled bucket and an alertable counter.
    text = PrometheusExposition(tree, process_metrics=False).render().decode()
    assert 'rt:service:requests{rt="r",service="<overflow>"} 2.0' in text
    assert 'rt:service_scope_overflow{rt="r"} 2.0' in text


def test_the_overflow_counter_exists_before_any_overflow() -> None:
    # Prometheus' increase() ignores a series' first sample: the counter must start at 0.
    tree = MetricsTree(Clock())
    make(tree, "svc/a", cap=3)
    assert flat_metrics(tree)["rt/r/service_scope_overflow"] == 0


def test_service_and_client_scopes_and_routers_are_capped_apart() -> None:
    tree = MetricsTree(Clock())
    for i in range(2):
        make(tree, f"svc/s{i}", cap=2)
        make(tree, f"#/mem/s{i}", cap=2, kind="client")
        make(tree, f"svc/s{i}", cap=2, router="other")
    flat = flat_metrics(tree)
    assert flat["rt/r/service_scope_overflow"] == 0 and flat["rt/r/client_scope_overflow"] == 0
    make(tree, "#/mem/s9", cap=2, kind="client")
    flat = flat_metrics(tree)
    assert flat["rt/r/client_scope_overflow"] == 1 and flat["rt/r/service_scope_overflow"] == 0
    assert f"rt/r/client/{OVERFLOW_SCOPE}/requests" in flat
    assert services(tree, "other") == ["svc/s0", "svc/s1"]


def advance(clock: Clock, seconds: int) -> None:
    for _ in range(seconds):  # in steps, as time passes: the tree's ticks see each change
        clock.advance(1)


def test_expired_scopes_free_their_slot() -> None:
    clock = Clock()
    tree = MetricsTree(clock, expiry_ttl_s=60)
    make(tree, "svc/a", cap=2)
    make(tree, "svc/b", cap=2)
    make(tree, "svc/c", cap=2)  # over the cap
    assert services(tree) == [OVERFLOW_SCOPE, "svc/a", "svc/b"]
    advance(clock, 30)
    make(tree, "svc/b", cap=2)  # b stays busy; a (and the overflow) go idle
    advance(clock, 50)  # t=80: a and the overflow idle for 80 s, b for 50 s
    assert services(tree) == ["svc/b"]
    assert tree.live_scopes(("rt", "r", "service")) == 1
    make(tree, "svc/d", cap=2)  # a's slot is free again
    assert services(tree) == ["svc/b", "svc/d"]
    assert flat_metrics(tree)["rt/r/service_scope_overflow"] == 1


def test_a_scope_handed_out_counts_before_its_first_metric() -> None:
    # A layer may register metrics only on its first request: the slot is taken anyway.
    tree = MetricsTree(Clock())
    for i in range(4):
        limited_scope(tree.stats.scope("rt", "r"), "service", f"svc/s{i}", 2)
    assert services(tree) == ["svc/s0", "svc/s1"]
    assert flat_metrics(tree)["rt/r/service_scope_overflow"] == 2


def test_the_overflow_scope_takes_no_slot() -> None:
    tree = MetricsTree(Clock())
    make(tree, "svc/a", cap=1)
    make(tree, "svc/b", cap=1)  # overflow
    make(tree, "svc/c", cap=2)  # the cap raised: c gets a slot though a and <overflow> are live
    assert services(tree) == [OVERFLOW_SCOPE, "svc/a", "svc/c"]


def test_zero_means_no_cap_and_other_receivers_scope_as_usual() -> None:
    tree = MetricsTree(Clock())
    for i in range(50):
        make(tree, f"svc/s{i}", cap=0)
    assert len(services(tree)) == 50
    assert "rt/r/service_scope_overflow" not in flat_metrics(tree)
    assert limited_scope(NULL_STATS, "service", "svc/x", 1) is NULL_STATS.scope("service", "svc/x")


def test_overflow_name_cannot_be_a_dst_path() -> None:
    # The router's scope of a name is its path shown without the leading "/": "<" and ">"
    # are escaped there, so no service or client can be named like the overflow bucket.
    assert Path.of("svc", OVERFLOW_SCOPE).show().lstrip("/") != "svc/" + OVERFLOW_SCOPE
    assert Path.of(OVERFLOW_SCOPE).show().lstrip("/") != OVERFLOW_SCOPE


CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/mem;
"""


def routed(config_text: str, hosts: list[str]) -> MetricsTree:
    clock = Clock()
    config = load_config(config_text)
    namer = MemoryNamer(
        Path.read("/mem"), {"known": ("127.0.0.1:8080",), "other": ("127.0.0.1:8081",)}
    )
    metrics = MetricsTree(clock)

    def endpoint(
        reactor: Any,
        address: Any,
        pool: Any,
        stats: Any,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> Any:
        return FunctionService(
            lambda request: succeed(Response(200, Headers([(b"content-length", b"0")])))
        )

    router = Router(
        config.routers[0],
        Interpreter({Path.read("/mem"): namer}, (), clock),
        reactor=clock,
        stats=metrics.stats,
        ctx=PluginContext(reactor=clock),
        rng=random.Random(1),
        endpoint_factory=endpoint,
    )
    for host in hosts:
        router(Request(b"GET", b"/", Headers([(b"Host", host.encode())])))
        clock.advance(0.01)
    return metrics


def test_random_hosts_through_a_router_stay_within_the_cap() -> None:
    rng = random.Random(10)
    hosts = ["known", "other"] + ["".join(rng.choices("abcdefghij", k=10)) for _ in range(40)]
    metrics = routed(CONFIG + "  maxMetricScopes: 5\n", hosts)
    names = services(metrics, "outgoing")
    assert names == sorted(
        [OVERFLOW_SCOPE, "svc/known", "svc/other", *(f"svc/{h}" for h in hosts[2:5])]
    )
    flat = flat_metrics(metrics)
    assert flat["rt/outgoing/service_scope_overflow"] == 37
    assert flat[f"rt/outgoing/service/{OVERFLOW_SCOPE}/requests"] == 37
    # The known services' clients were made before the cap filled.
    assert flat["rt/outgoing/client/#/mem/known/requests"] == 1
    assert flat["rt/outgoing/client_scope_overflow"] == 0


def test_the_default_cap_applies_without_the_key() -> None:
    config = load_config(CONFIG)
    assert config.routers[0].max_metric_scopes == DEFAULT_MAX_METRIC_SCOPES == 1000
    metrics = routed(CONFIG + "  maxMetricScopes: 0\n", [f"h{i}" for i in range(30)])
    assert len(services(metrics, "outgoing")) == 30  # 0: no cap


def test_names_in_the_overflow_scope_share_one_receiver() -> None:
    """One receiver for all (issue 17: one per name was 240 bytes), per router and kind."""
    tree = MetricsTree(Clock())
    make(tree, "svc/own", cap=1)
    a, b = make(tree, "svc/a", cap=1), make(tree, "svc/b", cap=1)
    assert a is b and a.prefix == ("rt", "r", "service", OVERFLOW_SCOPE)
    make(tree, "#/own", cap=1, kind="client")
    client = make(tree, "#/c", cap=1, kind="client")
    assert make(tree, "#/d", cap=1, kind="client") is client is not a
    make(tree, "svc/own", cap=1, router="other")
    assert make(tree, "svc/a", cap=1, router="other") is not a
    assert flat_metrics(tree)[f"rt/r/service/{OVERFLOW_SCOPE}/requests"] == 2
