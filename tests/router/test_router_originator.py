"""``routers[].originator``: linkerd 1's gauge ``rt/<router>/originator`` = 1 on a router
marked as the first hop of linker-to-linker requests (and nothing on the others), read from a
real ``l5d-twisted run``'s admin metrics; with workers the gauge merges to 1, not the sum."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from l5d_testing import Processes, free_port, wait_for_port, wait_until

from l5d_twisted.config import load_config
from l5d_twisted.telemetry.merged import gauge_merge


def test_a_real_mesh_reports_the_originator_gauge(processes: Processes, tmp_path: Path) -> None:
    edge_port, inner_port, admin_port = free_port(), free_port(), free_port()
    config = tmp_path / "l.yaml"
    config.write_text(
        f"admin: {{ip: 127.0.0.1, port: {admin_port}}}\n"
        "routers:\n"
        "- protocol: http\n  label: outgoing\n  originator: true\n"
        f"  servers: [{{ip: 127.0.0.1, port: {edge_port}}}]\n"
        "- protocol: http\n  label: incoming\n"
        f"  servers: [{{ip: 127.0.0.1, port: {inner_port}}}]\n"
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", admin_port)
    wait_for_port("127.0.0.1", edge_port)

    def metrics() -> dict[str, float]:
        url = f"http://127.0.0.1:{admin_port}/admin/metrics.json"
        with urllib.request.urlopen(url, timeout=5) as response:
            found: dict[str, float] = json.load(response)
            return found

    found = wait_until(lambda: "rt/outgoing/originator" in metrics() and metrics())
    assert isinstance(found, dict)
    assert found["rt/outgoing/originator"] == 1
    assert "rt/incoming/originator" not in found


def test_default_is_false_and_workers_merge_it_as_one() -> None:
    assert load_config("routers:\n- protocol: http\n").routers[0].originator is False
    assert load_config("routers:\n- originator: true\n").routers[0].originator is True
    assert gauge_merge(("rt", "outgoing", "originator")) == "max"
    assert gauge_merge(("rt", "outgoing", "server", "originator")) == "sum"
