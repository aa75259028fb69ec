"""DashboardSampler: per-router series and per service/client rows, driven by task.Clock."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from fake_mesh import HELLO_CLIENT, WORLD_CLIENT, FakeMesh, Traffic
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from l5d_twisted.admin.dashboard_data import (
    MAX_ENDPOINTS,
    STEP_ROWS,
    STEP_SCOPES,
    DashboardSampler,
    sampler_cooperator,
)
from l5d_twisted.balancers.nodes import Node
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import Address
from l5d_twisted.resilience.accrual import FailureAccrualService
from l5d_twisted.resilience.accrual_policies import ConsecutiveFailuresPolicy
from l5d_twisted.resilience.backoff import ConstantBackoff
from l5d_twisted.resilience.classifiers import non_retryable_5xx
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.render import stepping_cooperator
from l5d_twisted.telemetry.stats import NULL_STATS


def run(seconds: int, clock: Clock, traffic: Traffic | None) -> None:
    for _ in range(seconds):
        if traffic is not None:
            traffic.step(1.0)
        clock.advance(1.0)


def test_series_rates_success_and_latency() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing", "incoming"], interval_s=5.0
    )
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
    assert (
        45 <= series["p50"][-1] <= 55
        and 93 <= series["p95"][-1] <= 97
        and 97 <= series["p99"][-1] <= 101
    )
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
    assert (
        services["svc/hello"]["retries_rps"] == 10.0
        and services["svc/hello"]["budget_exhausted"] == 30
    )
    # A service that never retried: no retries, and no budget counter to report.
    assert (
        services["svc/world"]["retries_rps"] == 0.0
        and services["svc/world"]["budget_exhausted"] is None
    )
    clients = {c["name"]: c for c in outgoing["clients"]}
    hello = clients[HELLO_CLIENT]
    assert (hello["lb_size"], hello["lb_available"], hello["requeues"], hello["removals"]) == (
        3,
        2,
        60,
        15,
    )
    world = clients[WORLD_CLIENT]
    assert (world["lb_size"], world["lb_available"], world["requeues"], world["removals"]) == (
        None,
        None,
        None,
        None,
    )
    assert "retries_rps" not in hello and "lb_size" not in services["svc/hello"]


def test_broken_gauge_reads_as_unknown_not_nan() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    mesh.metrics.stats.scope("rt", "outgoing", "client", HELLO_CLIENT).gauge(
        "loadbalancer", "size", fn=lambda: 1 / 0
    )
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
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, history_s=60.0
    )
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
    read_steps = sampler._read_steps
    failures = [RuntimeError("a metric misbehaved")]

    def flaky(entities: Any) -> Any:
        if failures:
            raise failures.pop()
        return read_steps(entities)

    sampler._read_steps = flaky  # type: ignore[method-assign]
    sampler.start()
    run(30, clock, traffic)
    assert not failures  # the first sample failed...
    assert len(sampler.to_json()["routers"][0]["series"]["t"]) == 5  # ...and 5..30 s went on


# -- sampling in steps on a cooperator (issue 10: a whole sample held the reactor 110-450 ms) --


TURN_S = 0.001  # the stepping cooperator's turn: one step each


def drain(clock: Clock, sampler: DashboardSampler) -> int:
    """Run a stepped sample under way to its end; how many turns it took."""
    turns = 0
    while sampler.sampling:
        clock.advance(TURN_S)
        turns += 1
    return turns


def many_services(mesh: FakeMesh, n: int) -> None:
    for i in range(n):
        scope = mesh.metrics.stats.scope("rt", "outgoing", "service", f"svc/s{i}")
        scope.counter("requests").incr(i + 1)
        scope.counter("success").incr(i)
        scope.counter("failures").incr(1)
        scope.stat("request_latency_ms").add(float(i % 100 + 1))


def test_a_stepped_sample_gives_the_same_figures_as_a_whole_one() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    many_services(mesh, 300)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    whole = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing", "incoming"], interval_s=5.0)
    stepped = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing", "incoming"],
        interval_s=5.0,
        cooperator=stepping_cooperator(clock, TURN_S),
    )
    whole.start()
    stepped.start()
    turns = [drain(clock, stepped)]
    for _ in range(30):
        traffic.step(1.0)
        clock.advance(1.0)
        turns.append(drain(clock, stepped))
    assert stepped.to_json() == whole.to_json()
    outgoing = stepped.to_json()["routers"][1]
    # ~80/s: the turns a stepped sample takes move the clock on a little
    assert 79.0 <= outgoing["series"]["rps"][-1] <= 80.0 and len(outgoing["services"]) == 302
    # 302 services and 2 clients: read STEP_SCOPES scopes a step, STEP_ROWS rows a step.
    assert min(t for t in turns if t) >= 300 // STEP_SCOPES + 300 // STEP_ROWS, turns


def test_dashboard_json_serves_the_last_complete_sample_without_reading_the_tree() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        cooperator=stepping_cooperator(clock, TURN_S),
    )
    sampler.start()
    for _ in range(10):
        traffic.step(1.0)
        clock.advance(1.0)
        drain(clock, sampler)
    before = sampler.to_json()
    reads: list[int] = []
    scopes = mesh.metrics.scopes
    mesh.metrics.scopes = lambda: reads.append(1) or scopes()  # type: ignore[method-assign]
    for _ in range(5):
        assert sampler.to_json()["routers"] is before["routers"]
    assert not reads  # a request reads nothing: it serves what the last sample made
    traffic.step(5.0)
    clock.advance(5.0)  # the next sample starts...
    clock.advance(TURN_S)  # ...and has run one step
    assert reads == [1]
    assert (
        sampler.to_json()["routers"] is before["routers"]
    )  # mid-sample: still the last complete one
    drain(clock, sampler)
    after = sampler.to_json()
    assert len(after["routers"][0]["series"]["t"]) == len(before["routers"][0]["series"]["t"]) + 1


def test_a_tick_while_a_stepped_sample_runs_is_skipped() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    many_services(mesh, 200)
    # One step per 1 s turn: a sample of 200 scopes takes longer than the 5 s interval.
    sampler = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        cooperator=stepping_cooperator(clock, 1.0),
    )
    sampler.start()
    clock.advance(5.0)
    assert sampler.skipped == 1
    clock.pump([1.0] * 120)
    assert sampler.skipped >= 2
    series = sampler.to_json()["routers"][0]["series"]
    assert len(series["t"]) >= 2  # samples still complete, one at a time
    sampler.stop()
    skipped = sampler.skipped
    clock.pump([1.0] * 30)
    assert sampler.skipped == skipped and len(
        sampler.to_json()["routers"][0]["series"]["t"]
    ) == len(series["t"])


def test_a_failing_stepped_sample_does_not_stop_sampling() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    sampler = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        cooperator=stepping_cooperator(clock, TURN_S),
    )
    scopes = mesh.metrics.scopes
    failures = [RuntimeError("a metric misbehaved")]

    def flaky() -> Any:
        if failures:
            raise failures.pop()
        return scopes()

    mesh.metrics.scopes = flaky  # type: ignore[method-assign]
    sampler.start()
    drain(clock, sampler)
    assert not failures and sampler.to_json()["routers"] == []  # the first sample failed...
    for _ in range(30):
        traffic.step(1.0)
        clock.advance(1.0)
        drain(clock, sampler)
    assert len(sampler.to_json()["routers"][0]["series"]["t"]) == 5  # ...and 5..30 s went on


def test_the_admin_servers_sampler_leaves_the_reactor_a_gap_after_each_slice() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    many_services(mesh, 100)
    # A zero slice: one step per slice, so each step waits out the gap first.
    sampler = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        cooperator=sampler_cooperator(clock, slice_s=0.0, gap_s=0.005),
    )
    scopes = mesh.metrics.scopes
    reads: list[int] = []
    mesh.metrics.scopes = lambda: reads.append(1) or scopes()  # type: ignore[method-assign]
    sampler.start()
    assert sampler.sampling and not reads  # the first step waits for the gap...
    clock.advance(0.004)
    assert not reads
    clock.advance(0.001)
    assert reads == [1]  # ...then runs alone
    steps = 1
    while sampler.sampling:
        clock.advance(0.005)
        steps += 1
    assert steps >= 100 // STEP_SCOPES + 100 // STEP_ROWS
    names = {row["name"] for row in sampler.to_json()["routers"][0]["services"]}
    assert {f"svc/s{i}" for i in range(100)} <= names  # the sample completed


# -- one window for every figure, per-endpoint rows (issue 16) ---------------------------


def test_top_line_is_the_weighted_success_of_its_services_over_the_same_window() -> None:
    """The router's figures and its rows cover the same 30 s (the top line was the last
    5 s, the rows the last 30 s: 100.00% next to 98.93%)."""
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(40, clock, traffic)
    traffic.hello_failure_every = 10**9  # hello stops failing: the last 5 s differ
    run(10, clock, traffic)
    data = sampler.to_json()
    assert data["window_s"] == 30.0
    (outgoing,) = data["routers"]
    services, current = outgoing["services"], outgoing["current"]
    assert all(s["window_s"] == 30.0 for s in services)
    success = sum(s["window_success"] for s in services)
    failures = sum(s["window_failures"] for s in services)
    assert failures > 0
    assert current["success_rate"] == round(success / (success + failures), 4)
    assert current["rps"] == round(sum(s["rps"] for s in services), 3) == 80.0
    assert current["window_requests"] == sum(s["window_requests"] for s in services) == 2400
    # The chart's last point is the last sample alone (no hello failure in it); the top
    # line, like the rows, still has the failures of the window.
    assert outgoing["series"]["success_rate"][-1] == 1.0 and current["success_rate"] < 0.95


class _FakeClient:
    def __init__(self, id_text: str, nodes: tuple[Any, ...], draining: tuple[Any, ...]) -> None:
        self.id_text = id_text
        self.balancer = SimpleNamespace(nodes=nodes, draining=draining)


def _accrual_node(clock: Clock, hostport: str, status: int) -> Any:
    def answer(request: Request) -> Deferred[Response]:
        return deferLater(clock, 0.02, lambda: Response(status))

    host, port = hostport.split(":")
    service = FailureAccrualService(
        FunctionService(answer),
        ConsecutiveFailuresPolicy(5, ConstantBackoff(60)),
        non_retryable_5xx(),
        clock,
        NULL_STATS,
        label=hostport,
    )
    return Node(Address(host, int(port)), service)


def test_client_rows_list_their_endpoints_with_state_and_window_figures() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=10, world_rps=0)
    good = _accrual_node(clock, "10.0.0.1:7777", 200)
    bad = _accrual_node(clock, "10.0.0.2:7777", 500)
    gone = _accrual_node(clock, "10.0.0.3:7777", 200)
    gone.retired, gone.pending = True, 1
    router = SimpleNamespace(
        label="outgoing",
        clients=lambda: [_FakeClient("/" + HELLO_CLIENT, (bad, good), (gone,))],
    )
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, routers=lambda: [router]
    )
    sampler.start()
    for _ in range(40):
        traffic.step(1.0)
        for _ in range(10):
            good.service(Request(b"GET", b"/"))
            bad.service(Request(b"GET", b"/"))
        clock.advance(0.02)
        clock.advance(0.98)
    (hello,) = [c for c in sampler.to_json()["routers"][0]["clients"] if c["name"] == HELLO_CLIENT]
    assert hello["endpoints_total"] == 3
    rows = {e["address"]: e for e in hello["endpoints"]}
    # Trouble first: the ejected and the draining endpoints, then the healthy one.
    assert [e["address"] for e in hello["endpoints"]][-1] == "10.0.0.1:7777"
    assert rows["10.0.0.2:7777"]["state"] == "ejected"
    assert rows["10.0.0.3:7777"]["state"] == "draining" and rows["10.0.0.3:7777"]["pending"] == 1
    ok = rows["10.0.0.1:7777"]
    assert ok["state"] == "ok" and ok["window_s"] == 30.0
    assert ok["rps"] == 10.0 and ok["window_requests"] == 300 and ok["success_rate"] == 1.0
    assert ok["mean_ms"] == 20.0
    assert rows["10.0.0.2:7777"]["success_rate"] == 0.0
    json.dumps(sampler.to_json(), allow_nan=False)


def test_endpoint_rows_are_bounded_per_client() -> None:
    clock = Clock()
    nodes = tuple(_accrual_node(clock, f"10.0.{i // 250}.{i % 250}:80", 200) for i in range(300))
    router = SimpleNamespace(label="outgoing", clients=lambda: [_FakeClient("/c", nodes, ())])
    mesh = FakeMesh(clock)
    mesh.metrics.stats.scope("rt", "outgoing", "client", "c").counter("requests").incr()
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, routers=lambda: [router]
    )
    sampler.start()
    clock.advance(5)
    (client,) = sampler.to_json()["routers"][0]["clients"]
    assert len(client["endpoints"]) == MAX_ENDPOINTS and client["endpoints_total"] == 300
    assert len(sampler._endpoint_points) == MAX_ENDPOINTS


def test_endpoints_are_read_and_applied_in_steps_with_the_same_figures() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    clients = []
    for i in range(200):
        name = f"$/inet/10.0.0.{i}/80"
        mesh.metrics.stats.scope("rt", "outgoing", "client", name).counter("requests").incr()
        clients.append(_FakeClient("/" + name, (_accrual_node(clock, f"10.0.0.{i}:80", 200),), ()))
    router = SimpleNamespace(label="outgoing", clients=lambda: clients)
    whole = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, routers=lambda: [router]
    )
    stepped = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        cooperator=stepping_cooperator(clock, TURN_S),
        routers=lambda: [router],
    )
    whole.start()
    stepped.start()
    turns = [drain(clock, stepped)]
    for _ in range(3):
        for client in clients:
            client.balancer.nodes[0].service(Request(b"GET", b"/"))
        clock.advance(5.0)
        turns.append(drain(clock, stepped))
    assert stepped.to_json() == whole.to_json()
    rows = stepped.to_json()["routers"][0]["clients"]
    assert len(rows) == 200 and all(r["endpoints"][0]["window_requests"] == 3 for r in rows)
    # 200 clients: read STEP_SCOPES a step, their endpoints applied STEP_ROWS a step.
    assert min(turns[1:]) >= 200 // STEP_SCOPES * 2 + 200 // STEP_ROWS * 2, turns
