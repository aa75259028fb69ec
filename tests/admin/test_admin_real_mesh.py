"""End to end on a real mesh: ``l5d-twisted demo`` (run + hello + two worlds + traffic).

Both world instances answer 20% 500s (set through ``/setFailureRate``), so hello (which
calls world through the mesh) fails as often: every service's success rate is ~0.8.
A real Prometheus scrapes the mesh's admin port; headless Chromium loads the dashboard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import (
    CHART_HAS_LINE_JS,
    CHROMIUM,
    PROMETHEUS,
    PageErrors,
    PromQL,
    browser_session,
    demo_extra_flags,
    distinct_colours,
    http_get,
    http_post,
    near,
    start_prometheus,
)
from l5d_testing import Processes, free_port, wait_for_port, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(PROMETHEUS).exists() or not Path(CHROMIUM).exists(),
        reason="needs prometheus and chromium",
    ),
]

RPS = 40


@dataclass
class Demo:
    admin: str
    admin_port: int
    incoming_port: int
    processes: Processes
    tmp: Path
    failures_set_at: float


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    processes = Processes(tmp)
    ports = {
        name: free_port() for name in ("outgoing", "incoming", "admin", "hello", "world1", "world2")
    }
    try:
        proc = processes.l5d(
            "demo",
            "--traffic", str(RPS),
            "--outgoing-port", str(ports["outgoing"]),
            "--incoming-port", str(ports["incoming"]),
            "--admin-port", str(ports["admin"]),
            "--hello-port", str(ports["hello"]),
            "--world-ports", f"{ports['world1']},{ports['world2']}",
            "--dir", str(tmp / "demo"),
            *demo_extra_flags(),
            name="demo",
        )  # fmt: skip
        for name in ("admin", "world1", "world2", "outgoing"):
            try:
                wait_for_port("127.0.0.1", ports[name], timeout=45)
            except AssertionError:
                raise AssertionError(
                    f"demo did not start {name}:\n{processes.log(proc)[-3000:]}"
                ) from None
        for name in ("world1", "world2"):
            http_post(f"http://127.0.0.1:{ports[name]}/setFailureRate", b"0.2")
        admin = f"http://127.0.0.1:{ports['admin']}"
        yield Demo(admin, ports["admin"], ports["incoming"], processes, tmp, time.monotonic())
    finally:
        processes.stop_all()


def test_metrics_json_of_the_real_mesh(demo: Demo) -> None:
    def served() -> dict[str, Any]:
        metrics = json.loads(http_get(demo.admin + "/admin/metrics.json"))
        return metrics if metrics.get("rt/outgoing/service/svc/world/requests", 0) > 20 else {}

    metrics = wait_until(served, timeout=30, what="traffic through the mesh")
    assert isinstance(metrics, dict)
    for router in ("outgoing", "incoming"):
        for svc in ("svc/hello", "svc/world"):
            prefix = f"rt/{router}/service/{svc}/"
            assert metrics[prefix + "requests"] > 0
            assert prefix + "request_latency_ms.p99" in metrics
    assert metrics[f"rt/incoming/server/127.0.0.1/{demo.incoming_port}/requests"] > 0
    assert http_get(demo.admin + "/admin/ping") == b"pong"


def test_prometheus_top_line_on_the_real_mesh(demo: Demo, tmp_path: Path) -> None:
    prom = PromQL(start_prometheus(demo.processes, tmp_path, demo.admin_port))
    prom.wait_for_scrapes('rt:service:requests{rt="outgoing",service="svc/world"}', 10)
    # Rates over 10 s windows that start after the failure rate was set.
    wait_until(
        lambda: time.monotonic() - demo.failures_set_at > 12,
        timeout=30,
        what="a window after the change",
    )
    out = '{rt="outgoing"}'

    success = prom.scalar(
        f"sum(rate(rt:service:success{out}[10s])) / sum(rate(rt:service:requests{out}[10s]))"
    )
    assert near(success, 0.8, 0.1), success
    volume = prom.scalar(f"sum(rate(rt:service:requests{out}[10s]))")
    assert 0.5 * 2 * RPS <= volume <= 1.3 * 2 * RPS, volume  # hello and world per request
    five_xx = prom.scalar(
        f"sum(rate(rt:service:status:5XX{out}[10s])) / sum(rate(rt:service:requests{out}[10s]))"
    )
    assert near(five_xx, 0.2, 0.4), five_xx
    assert all(
        float(r["value"][1]) == 0
        for r in prom.vector(f"sum(rate(rt:service:status:4XX{out}[10s]))")
    )

    per_service = prom.by(
        f"sum by (service) (rate(rt:service:success{out}[10s]))"
        f" / sum by (service) (rate(rt:service:requests{out}[10s]))",
        "service",
    )
    assert set(per_service) == {"svc/hello", "svc/world"}
    assert all(near(v, 0.8, 0.15) for v in per_service.values()), per_service
    service_volume = prom.by(f"sum by (service) (rate(rt:service:requests{out}[10s]))", "service")
    assert all(0.5 * RPS <= v <= 1.3 * RPS for v in service_volume.values()), service_volume

    per_client = prom.by(
        f"sum by (client) (rate(rt:client:success{out}[10s])) / sum by (client) (rate(rt:client:requests{out}[10s]))",
        "client",
    )
    world_clients = [c for c in per_client if c.endswith("/world")]
    assert world_clients, per_client
    assert near(per_client[world_clients[0]], 0.8, 0.15)

    p95 = prom.by(
        'max by (service) (rt:service:request_latency_ms{rt="outgoing",quantile="0.95"})', "service"
    )
    p99 = prom.by(
        'max by (service) (rt:service:request_latency_ms{rt="outgoing",quantile="0.99"})', "service"
    )
    assert set(p99) == {"svc/hello", "svc/world"}
    assert all(0 < p95[s] <= p99[s] for s in p99)

    servers = prom.by('sum by (server) (rate(rt:server:requests{rt="incoming"}[10s]))', "server")
    assert f"127.0.0.1/{demo.incoming_port}" in servers
    assert prom.scalar("process_uptime_seconds") > 0
    assert prom.scalar("process_resident_memory_bytes") > 1e6


def test_dashboard_of_the_real_mesh(demo: Demo, tmp_path: Path) -> None:
    for browser in browser_session():
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = PageErrors(page)
        page.goto(demo.admin + "/")
        # Samples every 5 s: lines appear once two exist.
        page.wait_for_function(
            CHART_HAS_LINE_JS, arg="#router-outgoing .chart path.s0", timeout=30000
        )
        page.wait_for_selector("#router-incoming")
        names = page.eval_on_selector_all(
            "#services-outgoing tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
        )
        assert sorted(names) == ["svc/hello", "svc/world"]
        rates = page.eval_on_selector_all(
            "#services-outgoing tbody tr", "rows => rows.map(r => r.cells[1].textContent)"
        )
        assert all(r.endswith("%") and 55 <= float(r[:-1]) <= 100 for r in rates), rates
        clients = page.eval_on_selector_all(
            "#clients-outgoing > tbody > tr[data-name]", "rows => rows.length"
        )
        assert clients == 2
        shot = page.screenshot(full_page=True)
        (tmp_path / "dashboard-real.png").write_bytes(shot)
        assert distinct_colours(browser, shot) > 20
        assert errors.errors == []
