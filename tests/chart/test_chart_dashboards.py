"""The Grafana dashboards: generated from tools/dashboards (the JSON in the chart equals the
generator's output), linkerd-viz's layout and selectors, and every PromQL expression parses
(promtool check rules on a rule file of the expressions, variables substituted)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_testlib import CHART, REPO

sys.path.insert(0, str(REPO / "tools" / "dashboards"))
import generate  # noqa: E402

FILES = sorted((CHART / "dashboards").glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((CHART / "dashboards" / name).read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    return exprs


def concrete(expr: str) -> str:
    """A dashboard expression as Prometheus receives it, variables substituted."""
    expr = expr.replace('=~"$service"', '=~"hello|world"').replace('=~"$instance"', '=~".*"')
    return expr.replace("$router", "outgoing").replace("$service", "hello")


def test_chart_json_equals_generator_output() -> None:
    generated = generate.dashboards()
    assert sorted(generated) == [p.name for p in FILES]
    for name, model in generated.items():
        assert (CHART / "dashboards" / name).read_text() == generate.render(model), (
            f"run python3 tools/dashboards/generate.py ({name})"
        )


def test_top_line_has_linkerd_viz_layout() -> None:
    d = load("l5d-twisted-top-line.json")
    assert d["uid"] == "l5d-twisted-top-line"
    assert d["refresh"] == "5s" and d["time"] == {"from": "now-5m", "to": "now"}
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert {"router", "service", "instance"} <= set(variables)
    assert variables["service"]["multi"] and variables["service"]["includeAll"]
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    rows = [p for p in d["panels"] if p["type"] == "row"]
    assert [r["title"].split(":")[0] for r in rows] == [
        "TOP LINE",
        "SERVICE METRICS",
        "PER-INSTANCE METRICS",
    ]
    assert rows[1]["repeat"] == "service"
    titles = [p["title"] for p in panels(d)]
    for wanted in (
        "Services monitored",
        "Mesh instances",
        "Global success rate",
        "Global request volume",
        "4XX rate",
        "5XX rate",
        "Success rate by service",
        "Request volume by service",
        "Latency by service",
    ):
        assert wanted in titles
    exprs = " ".join(expressions(d))
    for metric in (
        "rt:service:requests",
        "rt:service:success",
        "rt:client:status:5XX",
        "rt:client:status:4XX",
        "rt:server:requests",
        "rt:server:success",
        "rt:service:request_latency_ms",
        "rt:server:request_latency_ms",
    ):
        assert metric in exprs
    for q in ('quantile="0.95"', 'quantile="0.99"', 'quantile="1"'):
        assert q in exprs


def test_process_dashboard_shows_process_health() -> None:
    d = load("l5d-twisted-process.json")
    exprs = " ".join(expressions(d))
    for metric in (
        "process_uptime_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_gc_collections_total",
    ):
        assert metric in exprs


def test_panel_ids_unique_and_within_grid() -> None:
    for path in FILES:
        d = json.loads(path.read_text())
        ids = [p["id"] for p in panels(d)]
        assert len(ids) == len(set(ids))
        for p in panels(d):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_every_expression_parses(tmp_path: Path) -> None:
    rules = []
    for path in FILES:
        d = json.loads(path.read_text())
        queries = expressions(d) + [
            re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["definition"])
            for v in d["templating"]["list"]
            if v["type"] == "query"
        ]
        for i, expr in enumerate(queries):
            rules.append(
                {"record": f"dashboard:{path.stem.replace('-', '_')}:q{i}", "expr": concrete(expr)}
            )
    rule_file = tmp_path / "dashboard-exprs.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
