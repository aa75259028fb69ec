"""A real Prometheus scrapes our exposition and answers the linkerd-viz top-line queries.

The stand-in process (fake_mesh.py) drives deterministic traffic: svc/hello 50 rps with
every 5th request a 500, svc/world 30 rps with every 20th a 404, latencies 1..100 ms.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, free_port, wait_for_port, wait_until

HERE = Path(__file__).resolve().parent
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus is not installed"),
]


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def start_prometheus(processes: Processes, tmp_path: Path, target_port: int) -> int:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "- job_name: l5d\n"
        "  metrics_path: /admin/metrics/prometheus\n"
        f"  static_configs:\n  - targets: ['127.0.0.1:{target_port}']\n"
    )
    processes.start(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        name="prometheus",
    )
    wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready") is not None, timeout=30, what="prometheus ready")
    return port


class PromQL:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/query?query="

    def vector(self, query: str) -> list[dict[str, Any]]:
        body = json.loads(http_get(self.base + urllib.parse.quote(query)))
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def scalar(self, query: str) -> float:
        result = self.vector(query)
        assert len(result) == 1, (query, result)
        return float(result[0]["value"][1])

    def by(self, query: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.vector(query)}


def near(value: float, want: float, tolerance: float) -> bool:
    return abs(value - want) <= tolerance * want


def test_prometheus_answers_top_line_queries(processes: Processes, tmp_path: Path) -> None:
    admin_port = free_port()
    processes.start(sys.executable, str(HERE / "fake_mesh.py"), "--port", str(admin_port), name="fake_mesh")
    wait_for_port("127.0.0.1", admin_port)
    prom = PromQL(start_prometheus(processes, tmp_path, admin_port))

    # Enough 1 s scrapes for 5 s rates to be steady.
    volume = "sum(rate(rt:service:requests[5s]))"
    scrapes = 'count_over_time(rt:service:requests{service="svc/hello"}[10s])'
    wait_until(lambda: prom.vector(scrapes) and prom.scalar(scrapes) >= 7, timeout=40, interval=0.5, what="enough scrapes")
    wait_until(lambda: prom.vector("up") and prom.scalar("up") == 1.0, timeout=10, what="target up")

    # TOP LINE: global success rate and request volume, error rates.
    success = prom.scalar("sum(rate(rt:service:success[5s])) / sum(rate(rt:service:requests[5s]))")
    assert near(success, 0.875, 0.02), success
    assert near(prom.scalar(volume), 80.0, 0.15)
    assert near(prom.scalar("sum(rate(rt:service:status:5XX[5s]))"), 10.0, 0.2)
    assert near(prom.scalar("sum(rate(rt:service:status:4XX[5s]))"), 1.5, 0.35)
    five_xx_ratio = prom.scalar("sum(rate(rt:service:status:5XX[5s])) / sum(rate(rt:service:requests[5s]))")
    assert near(five_xx_ratio, 0.125, 0.05)
    assert prom.scalar('count(count by (service) (rt:service:requests{rt="outgoing"}))') == 2.0

    # Per service and per client success rate and volume.
    per_service = prom.by("sum by (service) (rate(rt:service:success[5s])) / sum by (service) (rate(rt:service:requests[5s]))", "service")
    assert near(per_service["svc/hello"], 0.8, 0.02) and near(per_service["svc/world"], 1.0, 0.01)
    service_volume = prom.by("sum by (service) (rate(rt:service:requests[5s]))", "service")
    assert near(service_volume["svc/hello"], 50.0, 0.15) and near(service_volume["svc/world"], 30.0, 0.15)
    per_client = prom.by("sum by (client) (rate(rt:client:success[5s])) / sum by (client) (rate(rt:client:requests[5s]))", "client")
    assert near(per_client["%/io.l5d.port/4141/#/io.l5d.fs/hello"], 0.8, 0.02)
    assert near(per_client["$/inet/127.0.0.1/7778"], 1.0, 0.01)

    # Latency per service from the summary quantiles; mean from _sum/_count.
    p95 = prom.by('max by (service) (rt:service:request_latency_ms{quantile="0.95"})', "service")
    p99 = prom.by('max by (service) (rt:service:request_latency_ms{quantile="0.99"})', "service")
    assert near(p95["svc/hello"], 95.0, 0.05) and near(p99["svc/world"], 99.0, 0.05)
    mean = prom.scalar('sum(rate(rt:service:request_latency_ms_sum{service="svc/hello"}[5s])) / sum(rate(rt:service:request_latency_ms_count{service="svc/hello"}[5s]))')
    assert 30 < mean < 70

    # Per instance (server side) and process health.
    server = prom.by("sum by (server) (rate(rt:server:success[5s])) / sum by (server) (rate(rt:server:requests[5s]))", "server")
    assert near(server["127.0.0.1/4140"], 0.875, 0.02)
    assert prom.scalar("process_uptime_seconds") > 0
    assert prom.scalar("process_resident_memory_bytes") > 1e6
    assert prom.scalar('sum(python_gc_collections_total)') >= 0
