"""The dashboard sampler samples only while a dashboard is watched (issue 17: idle CPU).

With thousands of idle names a sample (every scope, every client's endpoints, every 5 s)
was most of an idle proxy's CPU; the admin server's sampler now runs only while
/admin/dashboard.json was asked within ``watch_s``.  All on a task.Clock.
"""

from __future__ import annotations

from typing import Any

from fake_mesh import FakeMesh, Traffic
from pytest import approx
from twisted.internet.task import Clock

from l5d_twisted.admin.dashboard_data import WATCH_S, DashboardSampler
from l5d_twisted.admin.server import AdminServer
from l5d_twisted.telemetry.render import stepping_cooperator


def counting_reads(mesh: FakeMesh) -> list[int]:
    reads: list[int] = []
    scopes = mesh.metrics.scopes
    mesh.metrics.scopes = lambda: reads.append(1) or scopes()  # type: ignore[method-assign]
    return reads


def sampler_calls(clock: Clock) -> list[Any]:
    return [c for c in clock.getDelayedCalls() if "DashboardSampler" in repr(c)]


def run(seconds: int, clock: Clock, traffic: Traffic, poll: DashboardSampler | None) -> None:
    """``seconds`` of traffic; a dashboard polling every 2 s when ``poll`` is given."""
    for second in range(seconds):
        traffic.step(1.0)
        clock.advance(1.0)
        if poll is not None and second % 2 == 0:
            poll.watch()


def outgoing(data: dict[str, Any]) -> dict[str, Any]:
    (router,) = [r for r in data["routers"] if r["label"] == "outgoing"]
    return router


def test_nothing_is_sampled_or_scheduled_until_a_dashboard_watches() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    reads = counting_reads(mesh)
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, watch_s=30.0
    )
    sampler.start()
    run(120, clock, traffic, None)
    assert reads == [] and sampler_calls(clock) == [] and sampler.paused
    sampler.watch()  # the page is opened
    assert reads == [1] and not sampler.paused  # a sample at once...
    run(20, clock, traffic, sampler)
    assert len(reads) == 5  # ...then one per interval while it is watched
    sampler.stop()
    assert sampler_calls(clock) == []


def test_sampling_pauses_when_nobody_watches_and_resumes_with_honest_rates() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    reads = counting_reads(mesh)
    sampler = DashboardSampler(
        mesh.metrics,
        clock,
        lambda: ["outgoing"],
        interval_s=5.0,
        watch_s=30.0,
        cooperator=stepping_cooperator(clock, 0.001),  # in steps, as the admin server's
    )
    sampler.start()
    sampler.watch()
    run(60, clock, traffic, sampler)
    watched = outgoing(sampler.to_json())
    assert watched["series"]["rps"][-1] == 80.0 and watched["current"]["rps"] == 80.0

    # The tab is closed: sampling stops within watch_s plus one interval.
    run(40, clock, traffic, None)
    assert sampler.paused and sampler.pauses == 1
    assert sampler_calls(clock) == []
    points_before = len(outgoing(sampler.to_json())["series"]["t"])
    n = len(reads)
    traffic.hello_rps = 200  # traffic changes while nobody watches
    run(200, clock, traffic, None)
    assert len(reads) == n  # no sample at all while paused

    # The page is opened again.  Its first answer: the charts as they were (the pause is a
    # gap), no rows (the last ones would be stale), warming up.
    sampler.watch()
    first = sampler.to_json()
    assert first["warming_up"] is True
    router = outgoing(first)
    assert router["services"] == [] and router["clients"] == []
    assert router["current"]["rps"] is None
    while sampler.sampling:  # the first sample's steps
        clock.advance(0.001)
    first_sample = outgoing(sampler.to_json())
    assert len(first_sample["series"]["t"]) == points_before  # no point over the pause
    assert {s["name"] for s in first_sample["services"]} == {"svc/hello", "svc/world"}
    assert all(s["rps"] is None for s in first_sample["services"])  # rates need 2 samples
    assert sampler.to_json()["warming_up"] is True

    for _ in range(5):
        traffic.step(1.0)
        clock.advance(1.0)
        sampler.watch()
        while sampler.sampling:
            clock.advance(0.001)
    second = sampler.to_json()
    assert second["warming_up"] is False
    router = outgoing(second)
    rates = {s["name"]: s["rps"] for s in router["services"]}
    # The rate since the resume, not an average over the pause (which mixed 50/s and 200/s)
    # (the resumed sample's steps took a few ms: within 1 %; a rate over the pause would mix 50/s and 200/s)
    assert rates == {"svc/hello": approx(200.0, rel=0.01), "svc/world": approx(30.0, rel=0.01)}
    assert router["series"]["rps"][-1] == approx(230.0, rel=0.01)
    assert len(router["series"]["t"]) == points_before + 1


def test_chart_points_older_than_the_history_are_dropped_on_resume() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    sampler = DashboardSampler(
        mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0, history_s=60.0, watch_s=10.0
    )
    sampler.start()
    sampler.watch()
    run(30, clock, traffic, sampler)
    run(100, clock, traffic, None)
    assert sampler.paused
    sampler.watch()
    assert outgoing(sampler.to_json())["series"]["t"] == []


def test_without_watch_s_it_samples_for_as_long_as_it_runs() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    reads = counting_reads(mesh)
    sampler = DashboardSampler(mesh.metrics, clock, lambda: ["outgoing"], interval_s=5.0)
    sampler.start()
    run(300, clock, traffic, None)
    assert len(reads) == 61 and not sampler.paused
    sampler.stop()


def test_the_admin_server_samples_only_while_dashboard_json_is_asked() -> None:
    clock = Clock()
    mesh = FakeMesh(clock)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    server = AdminServer(mesh, clock)  # type: ignore[arg-type]
    assert server.sampler.watch_s == WATCH_S
    server.sampler.start()
    reads = counting_reads(mesh)
    run(60, clock, traffic, None)
    assert reads == [] and server.sampler.paused

    class Request:
        args: dict[bytes, list[bytes]] = {}

        def setHeader(self, name: bytes, value: bytes) -> None:
            pass

        def setResponseCode(self, code: int) -> None:
            pass

    server.dashboard_json(Request())  # type: ignore[arg-type]
    assert not server.sampler.paused
    run(int(WATCH_S) + 10, clock, traffic, None)
    assert server.sampler.paused and reads
    server.sampler.stop()
