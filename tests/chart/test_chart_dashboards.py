"""The Grafana dashboards: generated from tools/dashboards with grafana-foundation-sdk (the
JSON in the chart equals the generator's output and is the SDK's typed model), linkerd-viz's
layout and selectors, every PromQL expression parses (promtool check rules on a rule file of
the expressions, variables substituted), and the error panels show 0 on a healthy mesh
(promtool test rules) rather than "No data"."""

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
            re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["query"]["query"])
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


def test_generator_builds_with_grafana_foundation_sdk() -> None:
    # The JSON is the SDK's typed model: it reads back into grafana_foundation_sdk's
    # Dashboard (Grafana's schema, generated for the chart's Grafana) and serialises to the
    # same document, panels included.
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    assert generate.dashboard_b.__name__ == "grafana_foundation_sdk.builders.dashboard"
    for path in FILES:
        data = json.loads(path.read_text())
        typed = Dashboard.from_json(data)
        assert json.loads(json.dumps(typed, cls=JSONEncoder)) == data, path.name
        assert data["schemaVersion"] == Dashboard().schema_version


def test_rows_are_expanded_with_their_panels_after_them() -> None:
    # Grafana nests a row's panels only when it is collapsed: an expanded row built with
    # nested panels would show none.
    for path in FILES:
        d = json.loads(path.read_text())
        rows = [p for p in d["panels"] if p["type"] == "row"]
        assert rows and all(not r["collapsed"] and not r.get("panels") for r in rows)
        assert d["panels"][0]["type"] == "row"
        assert [p["gridPos"]["y"] for p in d["panels"]] == sorted(
            p["gridPos"]["y"] for p in d["panels"]
        )


def error_panels(d: dict[str, Any]) -> dict[str, str]:
    (expr4,) = [t["expr"] for p in panels(d) if p["title"] == "4XX rate" for t in p["targets"]]
    (expr5,) = [t["expr"] for p in panels(d) if p["title"] == "5XX rate" for t in p["targets"]]
    return {"4XX": expr4, "5XX": expr5}


def test_only_single_value_sums_get_a_zero_default() -> None:
    # `or vector(0)` on a query grouped by a label would add a label-less 0 series beside the
    # real ones: only the label-less sums of the error panels have it.
    d = load("l5d-twisted-top-line.json")
    with_zero = [e for e in expressions(d) if "vector(0)" in e]
    assert sorted(with_zero) == sorted(error_panels(d).values())
    for expr in with_zero:
        assert expr.startswith("sum(") and " by " not in expr, expr


def promtool_test(tmp_path: Path, series: list[tuple[str, str]], cases: list[dict]) -> None:
    """promtool test rules evaluating PromQL (no rule file) on the given input series."""
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": cases,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# The series a healthy mesh exposes (after the chart's relabelling): requests and 2XX answers,
# no 4XX or 5XX counter at all.  The incoming router has 5XX answers; the outgoing router
# gets its first 5XX at minute 5 (30 per minute).
SERIES = [
    ('rt:client:requests{rt="outgoing", client="world-v1", instance="a"}', "0+60x10"),
    ('rt:client:status:2XX{rt="outgoing", client="world-v1", instance="a"}', "0+60x10"),
    ('rt:client:status:5XX{rt="incoming", client="world-v1", instance="a"}', "0+6x10"),
    ('rt:client:status:5XX{rt="outgoing", client="world-v1", instance="b"}', "_x5 0+30x5"),
]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_error_panels_show_zero_on_a_healthy_mesh_and_the_rate_otherwise(tmp_path: Path) -> None:
    exprs = {
        cls: e.replace("$router", "outgoing")
        for cls, e in error_panels(load("l5d-twisted-top-line.json")).items()
    }

    def case(cls: str, at: str, value: float) -> dict:
        return {
            "expr": exprs[cls],
            "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": value}],
        }

    promtool_test(
        tmp_path,
        SERIES,
        [
            # Healthy: one 0, not an empty result ("No data").
            case("4XX", "3m", 0),
            case("5XX", "3m", 0),
            # Errors: their rate alone (no 0 series beside it), this router's only.
            case("5XX", "8m", 0.5),
            case("4XX", "8m", 0),
        ],
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_without_the_zero_default_a_healthy_mesh_shows_no_data(tmp_path: Path) -> None:
    # The test above is meaningful: the sum alone returns nothing on the same series.
    expr = error_panels(load("l5d-twisted-top-line.json"))["4XX"]
    bare = expr.replace(" or vector(0)", "").replace("$router", "outgoing")
    assert bare != expr
    promtool_test(tmp_path, SERIES, [{"expr": bare, "eval_time": "3m", "exp_samples": []}])
