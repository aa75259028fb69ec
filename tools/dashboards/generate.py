"""Generate the Grafana dashboards of the chart (chart/dashboards/*.json).

Plain Python dicts in Grafana's dashboard JSON model (schemaVersion 39), so the dashboards
are reviewable as code and the JSON files stay importable by hand.  The layout follows
linkerd-viz: selectors router, service (multi, All) and instance; refresh 5 s over the last
5 min; a TOP LINE, a repeated SERVICE METRICS row per service and PER-INSTANCE METRICS
(server side).  Metric names are linkerd 1's Prometheus names (`rt:service:requests{rt,
service}`, ...) after the chart Prometheus's relabelling (client/service = last segment).

    python3 tools/dashboards/generate.py           # rewrite chart/dashboards/
    python3 tools/dashboards/generate.py --check   # exit 1 if the files differ
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "chart" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "1m"

Panel = dict[str, Any]


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping into rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1
        self.panels: list[Panel] = []

    def add(self, panel: Panel, w: int, h: int) -> Panel:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_height = max(self.row_height, h)
        self.panels.append(panel)
        return panel

    def newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def row(self, title: str, repeat: str | None = None) -> Panel:
        self.newline()
        row: Panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
        if repeat:
            row["repeat"] = repeat
        self.add(row, 24, 1)
        self.newline()
        return row


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def stat(
    title: str,
    expr: str,
    unit: str,
    description: str,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> Panel:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "blue")])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "decimals": 2 if unit == "percentunit" else None,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "orientation": "auto",
        },
    }


def timeseries(title: str, targets: list[dict[str, Any]], unit: str, description: str) -> Panel:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
    }
    if unit == "percentunit":
        defaults["max"] = 1
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def query_var(name: str, label: str, query: str, multi: bool, include_all: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": include_all,
        "allValue": ".*" if include_all else None,
        "current": {},
        "options": [],
        "hide": 0,
    }


def datasource_var() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "options": [],
        "refresh": 1,
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["l5d-twisted", "service-mesh"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "time": {"from": "now-5m", "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "l5d-twisted dashboards",
                "type": "dashboards",
                "tags": ["l5d-twisted"],
                "asDropdown": True,
            }
        ],
        "panels": panels,
    }


def success_rate(metric_prefix: str, selector: str, by: str | None = None) -> str:
    grouping = f" by ({by})" if by else ""
    return (
        f"sum{grouping} (rate({metric_prefix}:success{{{selector}}}[{RATE}]))"
        f" / sum{grouping} (rate({metric_prefix}:requests{{{selector}}}[{RATE}]))"
    )


def volume(metric_prefix: str, selector: str, by: str | None = None) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric_prefix}:requests{{{selector}}}[{RATE}]))"


def latency_targets(metric_prefix: str, selector: str, by: str) -> list[dict[str, Any]]:
    # Quantiles of several instances cannot be merged: the worst instance's is shown.
    return [
        target(
            f'max by ({by}) ({metric_prefix}:request_latency_ms{{{selector},quantile="{q}"}})',
            f"{{{{{by}}}}} {name}",
        )
        for name, q in (("p95", "0.95"), ("p99", "0.99"), ("max", "1"))
    ]


SR_THRESHOLDS: list[tuple[float | None, str]] = [(None, "red"), (0.95, "orange"), (0.99, "green")]


def top_line() -> dict[str, Any]:
    rt = 'rt="$router"'
    svc = 'rt="$router", service=~"$service"'
    layout = Layout()
    layout.row("TOP LINE")
    layout.add(
        stat(
            "Services monitored",
            f"count(count by (service) (rt:service:requests{{{rt}}}))",
            "none",
            "Logical services (dst names) the router has seen.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Mesh instances",
            "count(count by (instance) (rt:server:requests))",
            "none",
            "Mesh pods reporting metrics.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Global success rate",
            success_rate("rt:service", rt),
            "percentunit",
            "Successful requests / all requests over all services of the router.",
            SR_THRESHOLDS,
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Global request volume",
            volume("rt:service", rt),
            "reqps",
            "Requests per second over all services of the router.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "4XX rate",
            f"sum(rate(rt:client:status:4XX{{{rt}}}[{RATE}]))",
            "reqps",
            "Responses with a 4XX status from the router's destinations, per second.",
            [(None, "green"), (1, "orange")],
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "5XX rate",
            f"sum(rate(rt:client:status:5XX{{{rt}}}[{RATE}]))",
            "reqps",
            "Responses with a 5XX status from the router's destinations, per second.",
            [(None, "green"), (0.1, "red")],
        ),
        4,
        4,
    )
    layout.add(
        timeseries(
            "Success rate by service",
            [target(success_rate("rt:service", svc, "service"), "{{service}}")],
            "percentunit",
            "Per logical service.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Request volume by service",
            [target(volume("rt:service", svc, "service"), "{{service}}")],
            "reqps",
            "Requests per second, per logical service.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Latency by service",
            latency_targets("rt:service", svc, "service"),
            "ms",
            "p95, p99 and max latency per service (the worst instance's).",
        ),
        8,
        8,
    )

    layout.row("SERVICE METRICS: $service", repeat="service")
    one = 'rt="$router", service=~"$service", instance=~"$instance"'
    layout.add(
        timeseries(
            "$service: success rate by instance",
            [target(success_rate("rt:service", one, "instance"), "{{instance}}")],
            "percentunit",
            "The service's success rate as seen by each mesh instance.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "$service: request volume by instance",
            [target(volume("rt:service", one, "instance"), "{{instance}}")],
            "reqps",
            "The service's requests per second through each mesh instance.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "$service: latency by instance",
            latency_targets("rt:service", one, "instance"),
            "ms",
            "p95, p99 and max latency of the service per mesh instance.",
        ),
        8,
        8,
    )

    layout.row("PER-INSTANCE METRICS")
    server = 'rt="$router", instance=~"$instance"'
    layout.add(
        timeseries(
            "Server success rate by instance",
            [target(success_rate("rt:server", server, "instance"), "{{instance}}")],
            "percentunit",
            "What the router's servers answered their clients, per instance.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Server request volume by instance",
            [target(volume("rt:server", server, "instance"), "{{instance}}")],
            "reqps",
            "Requests per second received by each instance's router servers.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Server latency by instance",
            latency_targets("rt:server", server, "instance"),
            "ms",
            "p95, p99 and max latency of the router's servers per instance.",
        ),
        8,
        8,
    )

    variables = [
        datasource_var(),
        query_var(
            "router",
            "router",
            "label_values(rt:service:requests, rt)",
            multi=False,
            include_all=False,
        ),
        query_var(
            "service",
            "service",
            'label_values(rt:service:requests{rt="$router"}, service)',
            multi=True,
            include_all=True,
        ),
        query_var(
            "instance",
            "instance",
            'label_values(rt:server:requests{rt="$router"}, instance)',
            multi=True,
            include_all=True,
        ),
    ]
    return dashboard(
        "l5d-twisted-top-line",
        "l5d-twisted: mesh top line",
        (
            "Success rate, request volume and latency of the mesh: per router, per service "
            "and per instance (linkerd-viz's dashboard)."
        ),
        variables,
        layout.panels,
    )


def process_health() -> dict[str, Any]:
    inst = 'instance=~"$instance"'
    layout = Layout()
    layout.row("PROCESS HEALTH")
    layout.add(
        timeseries(
            "Uptime",
            [target(f"process_uptime_seconds{{{inst}}}", "{{instance}}")],
            "s",
            "Seconds since each mesh process started (a drop is a restart).",
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "CPU",
            [target(f"rate(process_cpu_seconds_total{{{inst}}}[{RATE}])", "{{instance}}")],
            "percentunit",
            "CPU seconds per second used by each mesh process (1 = one core).",
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Resident memory",
            [target(f"process_resident_memory_bytes{{{inst}}}", "{{instance}}")],
            "bytes",
            "RSS of each mesh process.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Open file descriptors",
            [target(f"process_open_fds{{{inst}}}", "{{instance}}")],
            "none",
            "Sockets and files open in each mesh process.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "GC collections",
            [
                target(
                    f"sum by (instance, generation) (rate(python_gc_collections_total{{{inst}}}[{RATE}]))",
                    "{{instance}} gen {{generation}}",
                )
            ],
            "ops",
            "Python garbage collections per second, per generation.",
        ),
        8,
        8,
    )
    variables = [
        datasource_var(),
        query_var(
            "instance",
            "instance",
            "label_values(rt:server:requests, instance)",
            multi=True,
            include_all=True,
        ),
    ]
    return dashboard(
        "l5d-twisted-process",
        "l5d-twisted: process health",
        "Uptime, CPU, memory, file descriptors and garbage collection of each mesh process.",
        variables,
        layout.panels,
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model."""
    return {"l5d-twisted-top-line.json": top_line(), "l5d-twisted-process.json": process_health()}


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the chart's Grafana dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="only check that chart/dashboards is up to date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, model in dashboards().items():
        path = OUT / name
        text = render(model)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            "out of date (run python3 tools/dashboards/generate.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
