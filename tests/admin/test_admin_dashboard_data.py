"""DashboardSampler: per-router series and per service/client rows, driven by task.Clock."""

from __future__ import annotations

import json
from typing import Any

from fake_mesh import HELLO_CLIENT, WORLD_CLIENT, FakeMesh, Traffic
from twisted.internet.task import Clock

from l5d_twisted.admin.dashboard_data import DashboardSampler


def run(seconds: int, clock: Clock, traffic: Traffic | None) -> None:
    for _ in range(seconds):
        if traffic is not None:
            traffic.step(1.0)
        clock.advance(1.0)


def test_series_rates_success_and_latency() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing", "incoming"], interval_s=5.0)
    sampler.start()
    run(30, clock, traffic)
    data = sampler.to_json()
    assert [r["label"] for r in data["routers"]] == ["incoming", "outgoing"]
    incoming, outgoing = data["routers"]
    assert incoming["series"]["rps"] == [0.0] * 6 and incoming["services"] == []
    series = outgoing["series"]
    assert len(series["t"]) == 6  # samples at 0, 5, ..., 30 s: rates from the second on
    assert series["rps"][-1] == 80.0
    assert series["success_rate"][-1] == 0.875  # (40 + 30) / 80
    assert 45 <= series["p50"][-1] <= 55 and 93 <= series["p95"][-1] <= 97 and 97 <= series["p99"][-1] <= 101
    current = outgoing["current"]
    assert current["rps"] == 80.0 and current["requests"] == 2400

    services = outgoing["services"]
    assert [s["name"] for s in services] == ["svc/hello", "svc/world"]  # worst first
    assert services[0]["success_rate"] == 0.8 and services[0]["rps"] == 50.0
    assert services[1]["success_rate"] == 1.0 and services[1]["rps"] == 30.0
    assert {c["name"] for c in outgoing["clients"]} == {HELLO_CLIENT, WORLD_CLIENT}


def test_rows_carry_resilience_stats() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(30, clock, traffic)
    outgoing = sampler.to_json()["routers"][0]
    services = {s["name"]: s for s in outgoing["services"]}
    # One retry per hello failure: 10/s; 1500 hello requests, every 50th exhausted the budget.
    assert services["svc/hello"]["retries_rps"] == 10.0 and services["svc/hello"]["budget_exhausted"] == 30
    # A service that never retried: no retries, and no budget counter to report.
    assert services["svc/world"]["retries_rps"] == 0.0 and services["svc/world"]["budget_exhausted"] is None
    clients = {c["name"]: c for c in outgoing["clients"]}
    hello = clients[HELLO_CLIENT]
    assert (hello["lb_size"], hello["lb_available"], hello["requeues"], hello["removals"]) == (3, 2, 60, 15)
    world = clients[WORLD_CLIENT]
    assert (world["lb_size"], world["lb_available"], world["requeues"], world["removals"]) == (None, None, None, None)
    assert "retries_rps" not in hello and "lb_size" not in services["svc/hello"]


def test_broken_gauge_reads_as_unknown_not_nan() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    mesh.metrics.stats.scope("rt", "outgoing", "client", HELLO_CLIENT).gauge("loadbalancer", "size", fn=lambda: 1 / 0)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(10, clock, traffic)
    data = sampler.to_json()
    json.dumps(data, allow_nan=False)  # what the admin server serves must be valid JSON
    assert data["routers"][0]["clients"][0]["lb_size"] is None


def test_idle_router_has_gaps_not_zero_success() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(10, clock, traffic)
    run(10, clock, None)  # traffic stops
    series = sampler.to_json()["routers"][0]["series"]
    assert series["rps"][-1] == 0.0
    assert series["success_rate"][-1] is None and series["p99"][-1] is None
    assert series["success_rate"][0] == 0.8


def test_history_is_bounded() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, history_s=60.0)
    sampler.start()
    run(300, clock, Traffic(mesh, 1, 1))
    assert len(sampler.to_json()["routers"][0]["series"]["t"]) == 13
    sampler.stop()
    before = len(sampler.to_json()["routers"][0]["series"]["t"])
    run(30, clock, None)
    assert len(sampler.to_json()["routers"][0]["series"]["t"]) == before  # stopped: no more samples


def test_an_idle_service_expiring_does_not_dip_the_router_chart() -> None:
    """The router's rate is the sum of its services' deltas: when an idle service's
    metrics expire, its counts leave the totals, which must not read as a drop in traffic."""
    clock = Clock()
    mesh = FakeMesh(clock)
    mesh.metrics.set_expiry_ttl(60.0)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(30, clock, traffic)
    traffic.world_rps = 0  # world goes idle; its 900 requests leave the tree after 60 s
    run(120, clock, traffic)
    outgoing = sampler.to_json()["routers"][0]
    assert [s["name"] for s in outgoing["services"]] == ["svc/hello"]  # world expired
    rps = outgoing["series"]["rps"]
    assert rps[-18:] == [50.0] * 18, rps  # hello's 50/s throughout, no dip when world left
    assert None not in outgoing["series"]["success_rate"][-18:]


def test_a_service_coming_back_after_expiry_does_not_spike_the_router_chart() -> None:
    """An expired scope comes back with its counters where they were: the chart must
    count only what it did since, not all it ever counted as one interval's traffic."""
    clock = Clock()
    mesh = FakeMesh(clock)
    mesh.metrics.set_expiry_ttl(60.0)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(30, clock, traffic)
    traffic.world_rps = 0
    run(120, clock, traffic)
    assert [s["name"] for s in sampler.to_json()["routers"][0]["services"]] == ["svc/hello"]
    traffic.world_rps = 30  # world is back, its scope revived with 900 requests counted
    run(30, clock, traffic)
    outgoing = sampler.to_json()["routers"][0]
    assert {s["name"] for s in outgoing["services"]} == {"svc/hello", "svc/world"}
    assert max(outgoing["series"]["rps"]) <= 80.0, outgoing["series"]["rps"]
    assert outgoing["series"]["rps"][-1] == 80.0


def test_a_failing_sample_does_not_stop_sampling() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    read_tree = sampler._read_tree
    failures = [RuntimeError("a metric misbehaved")]

    def flaky() -> Any:
        if failures:
            raise failures.pop()
        return read_tree()

    sampler._read_tree = flaky  # type: ignore[method-assign]
    sampler.start()
    run(30, clock, traffic)
    assert not failures  # the first sample failed...
    assert len(sampler.to_json()["routers"][0]["series"]["t"]) == 5  # ...and 5..30 s went on
