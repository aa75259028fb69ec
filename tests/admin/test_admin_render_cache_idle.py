"""The admin server's metrics caches go when nobody scrapes for 10 minutes (issue 17)."""

from __future__ import annotations

from fake_mesh import FakeMesh, Traffic
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from l5d_twisted.admin.server import AdminServer
from l5d_twisted.telemetry.render import CACHE_IDLE_S, stepping_cooperator


def scrape(server: AdminServer, clock: Clock, path: bytes) -> None:
    request = DummyRequest([b""])
    request.path = path  # type: ignore[attr-defined]
    request.write = lambda data: None  # type: ignore[method-assign]
    server.handle(request)  # type: ignore[arg-type]
    turns = 0
    while not request.finished and turns < 10_000:
        clock.advance(0.001)
        turns += 1
    assert request.finished, path


def test_the_admin_servers_render_caches_go_after_ten_idle_minutes() -> None:
    clock = Clock()
    mesh = FakeMesh(Clock())
    Traffic(mesh, hello_rps=50, world_rps=30).step(1.0)
    server = AdminServer(mesh, clock, cooperator=stepping_cooperator(clock, 0.001))  # type: ignore[arg-type]
    scrape(server, clock, b"/admin/metrics/prometheus")
    scrape(server, clock, b"/admin/metrics.json")
    prometheus, json_ = server._default_prometheus, server._metrics_json
    assert prometheus is not None and json_ is not None
    assert prometheus._cache._scopes and json_._blocks[False]
    clock.advance(CACHE_IDLE_S - 1)
    assert prometheus._cache._scopes and json_._blocks[False]
    clock.advance(2)
    assert not prometheus._cache._scopes and not json_._blocks[False]
    scrape(server, clock, b"/admin/metrics/prometheus")
    assert prometheus._cache._scopes, "made again by the next scrape"
    assert prometheus.idle is not None and prometheus.idle._call is not None
    server._stop()  # the admin port stopping: no timer left behind
    assert prometheus.idle._call is None
