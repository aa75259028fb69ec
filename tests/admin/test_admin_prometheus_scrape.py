"""A real Prometheus scrapes our exposition and answers the linkerd-viz top-line queries.

The stand-in process (fake_mesh.py) drives deterministic traffic: svc/hello 50 rps with
every 5th request a 500, svc/world 30 rps with every 20th a 404, latencies 1..100 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from admin_helpers import PROMETHEUS, PromQL, near, start_prometheus
from l5d_testing import Processes, free_port, wait_for_port, wait_until

HERE = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus is not installed"),
]


def test_prometheus_answers_top_line_queries(processes: Processes, tmp_path: Path) -> None:
    admin_port = free_port()
    processes.start(
        sys.executable, str(HERE / "fake_mesh.py"), "--port", str(admin_port), name="fake_mesh"
    )
    wait_for_port("127.0.0.1", admin_port)
    prom = PromQL(start_prometheus(processes, tmp_path, admin_port))

    # Enough 1 s scrapes for 5 s rates to be steady.
    volume = "sum(rate(rt:service:requests[5s]))"
    prom.wait_for_scrapes('rt:service:requests{service="svc/hello"}', 7)
    wait_until(lambda: prom.vector("up") and prom.scalar("up") == 1.0, timeout=10, what="target up")

    # TOP LINE: global success rate and request volume, error rates.
    success = prom.scalar("sum(rate(rt:service:success[5s])) / sum(rate(rt:service:requests[5s]))")
    assert near(success, 0.875, 0.02), success
    assert near(prom.scalar(volume), 80.0, 0.15)
    assert near(prom.scalar("sum(rate(rt:service:status:5XX[5s]))"), 10.0, 0.2)
    assert near(prom.scalar("sum(rate(rt:service:status:4XX[5s]))"), 1.5, 0.35)
    five_xx_ratio = prom.scalar(
        "sum(rate(rt:service:status:5XX[5s])) / sum(rate(rt:service:requests[5s]))"
    )
    assert near(five_xx_ratio, 0.125, 0.05)
    assert prom.scalar('count(count by (service) (rt:service:requests{rt="outgoing"}))') == 2.0

    # Per service and per client success rate and volume.
    per_service = prom.by(
        "sum by (service) (rate(rt:service:success[5s])) / sum by (service) (rate(rt:service:requests[5s]))",
        "service",
    )
    assert near(per_service["svc/hello"], 0.8, 0.02) and near(per_service["svc/world"], 1.0, 0.01)
    service_volume = prom.by("sum by (service) (rate(rt:service:requests[5s]))", "service")
    assert near(service_volume["svc/hello"], 50.0, 0.15) and near(
        service_volume["svc/world"], 30.0, 0.15
    )
    per_client = prom.by(
        "sum by (client) (rate(rt:client:success[5s])) / sum by (client) (rate(rt:client:requests[5s]))",
        "client",
    )
    assert near(per_client["%/io.l5d.port/4141/#/io.l5d.fs/hello"], 0.8, 0.02)
    assert near(per_client["$/inet/127.0.0.1/7778"], 1.0, 0.01)

    # Latency per service from the summary quantiles; mean from _sum/_count.
    p95 = prom.by('max by (service) (rt:service:request_latency_ms{quantile="0.95"})', "service")
    p99 = prom.by('max by (service) (rt:service:request_latency_ms{quantile="0.99"})', "service")
    assert near(p95["svc/hello"], 95.0, 0.05) and near(p99["svc/world"], 99.0, 0.05)
    mean = prom.scalar(
        'sum(rate(rt:service:request_latency_ms_sum{service="svc/hello"}[5s]))'
        ' / sum(rate(rt:service:request_latency_ms_count{service="svc/hello"}[5s]))'
    )
    assert 30 < mean < 70

    # Per instance (server side) and process health.
    server = prom.by(
        "sum by (server) (rate(rt:server:success[5s])) / sum by (server) (rate(rt:server:requests[5s]))",
        "server",
    )
    assert near(server["127.0.0.1/4140"], 0.875, 0.02)
    assert prom.scalar("process_uptime_seconds") > 0
    assert prom.scalar("process_resident_memory_bytes") > 1e6
    assert prom.scalar("sum(python_gc_collections_total)") >= 0
