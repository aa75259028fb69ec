"""Generate the Grafana dashboards of the chart (chart/dashboards/*.json).

Built with grafana-foundation-sdk, Grafana's own typed builders (generated from Grafana's
schemas; the pinned release targets Grafana 11.6, the chart's Grafana), so the JSON follows
Grafana's dashboard model as it changes, and stays importable by hand.  The layout follows
linkerd-viz: selectors router, service (multi, All) and instance; refresh 5 s over the last
5 min; a TOP LINE, a repeated SERVICE METRICS row per service and PER-INSTANCE METRICS
(server side).  Metric names are linkerd 1's Prometheus names (`rt:service:requests{rt,
service}`, ...) after the chart Prometheus's relabelling (client/service = last segment).

A panel that counts errors (4XX, 5XX) adds `or vector(0)` to its sum: a healthy mesh has no
`rt:client:status:4XX` series at all (a counter exists once its first answer was counted),
and the panel shows 0 rather than "No data".  Only the single-value sums get it: a query
grouped `by (...)` keeps its per-series meaning (no label-less 0 series beside the others).

    python3 tools/dashboards/generate.py           # rewrite chart/dashboards/
    python3 tools/dashboards/generate.py --check   # exit 1 if the files differ

Needs the test extras (`pip install -e '.[test]'`: grafana-foundation-sdk); the chart only
carries the generated JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableHide,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).resolve().parents[2] / "chart" / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "1m"

Thresholds = list[tuple[float | None, str]]


class Ids:
    """Numbers the panels of a dashboard in the order they are added (Grafana needs unique
    ids to link to a panel; the builders leave them to the caller)."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def target(expr: str, legend: str = "", ref: str = "A") -> prometheus_b.Dataquery:
    return (
        prometheus_b.Dataquery().datasource(DS).expr(expr).legend_format(legend).ref_id(ref).range()
    )


def thresholds(steps: Thresholds) -> dashboard_b.ThresholdsConfig:
    return (
        dashboard_b.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def stat(
    ids: Ids,
    title: str,
    expr: str,
    unit: str,
    description: str,
    steps: Thresholds | None = None,
    w: int = 4,
    h: int = 4,
) -> stat_b.Panel:
    panel = (
        stat_b.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DS)
        .with_target(target(expr))
        .unit(unit)
        .thresholds(thresholds(steps or [(None, "blue")]))
        .reduce_options(
            common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)
        )
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .span(w)
        .height(h)
    )
    if unit == "percentunit":
        panel.decimals(2)
    return panel


def timeseries(
    ids: Ids,
    title: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    description: str,
    w: int = 8,
    h: int = 8,
) -> timeseries_b.Panel:
    panel = (
        timeseries_b.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DS)
        .targets([t.ref_id(chr(ord("A") + i)) for i, t in enumerate(targets)])
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .span(w)
        .height(h)
    )
    if unit == "percentunit":
        panel.max(1)
    return panel


def row(ids: Ids, title: str, repeat: str | None = None) -> dashboard_b.Row:
    # An expanded row: its panels follow it in the dashboard's list (Grafana nests a row's
    # panels only when it is collapsed).
    built = dashboard_b.Row(title).id(ids.next()).collapsed(False)
    if repeat:
        built.repeat(repeat)
    return built


def query_var(
    name: str, label: str, query: str, multi: bool, include_all: bool
) -> dashboard_b.QueryVariable:
    variable = (
        dashboard_b.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query({"query": query, "refId": f"{name}-var"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
        .hide(VariableHide.DONT_HIDE)
    )
    if include_all:
        variable.all_value(".*")
    return variable


def datasource_var() -> dashboard_b.DatasourceVariable:
    return (
        dashboard_b.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .hide(VariableHide.DONT_HIDE)
    )


def dashboard(uid: str, title: str, description: str) -> dashboard_b.Dashboard:
    return (
        dashboard_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["l5d-twisted", "service-mesh"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("5s")
        .time("now-5m", "now")
        .timepicker(dashboard_b.TimePicker().refresh_intervals(["5s", "10s", "30s", "1m", "5m"]))
        .timezone("browser")
        .version(1)
        .annotation(
            # Grafana's built-in annotations (what it adds to a dashboard it saves).
            dashboard_b.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            dashboard_b.DashboardLink("l5d-twisted dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["l5d-twisted"])
            .as_dropdown(True)
        )
    )


def success_rate(metric_prefix: str, selector: str, by: str | None = None) -> str:
    grouping = f" by ({by})" if by else ""
    return (
        f"sum{grouping} (rate({metric_prefix}:success{{{selector}}}[{RATE}]))"
        f" / sum{grouping} (rate({metric_prefix}:requests{{{selector}}}[{RATE}]))"
    )


def volume(metric_prefix: str, selector: str, by: str | None = None) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric_prefix}:requests{{{selector}}}[{RATE}]))"


def error_rate(status_class: str, selector: str) -> str:
    """Answers of a status class per second, 0 (not "No data") when there were none: the
    counter only exists once its first answer was counted.  One label-less sum, so `or
    vector(0)` adds nothing when the sum has a value."""
    return f"sum(rate(rt:client:status:{status_class}{{{selector}}}[{RATE}])) or vector(0)"


def latency_targets(metric_prefix: str, selector: str, by: str) -> list[prometheus_b.Dataquery]:
    # Quantiles of several instances cannot be merged: the worst instance's is shown.
    return [
        target(
            f'max by ({by}) ({metric_prefix}:request_latency_ms{{{selector},quantile="{q}"}})',
            f"{{{{{by}}}}} {name}",
        )
        for name, q in (("p95", "0.95"), ("p99", "0.99"), ("max", "1"))
    ]


SR_THRESHOLDS: Thresholds = [(None, "red"), (0.95, "orange"), (0.99, "green")]


def top_line() -> dashboard_b.Dashboard:
    rt = 'rt="$router"'
    svc = 'rt="$router", service=~"$service"'
    ids = Ids()
    d = dashboard(
        "l5d-twisted-top-line",
        "l5d-twisted: mesh top line",
        (
            "Success rate, request volume and latency of the mesh: per router, per service "
            "and per instance (linkerd-viz's dashboard)."
        ),
    )
    d.with_variable(datasource_var())
    d.with_variable(
        query_var(
            "router",
            "router",
            "label_values(rt:service:requests, rt)",
            multi=False,
            include_all=False,
        )
    )
    d.with_variable(
        query_var(
            "service",
            "service",
            'label_values(rt:service:requests{rt="$router"}, service)',
            multi=True,
            include_all=True,
        )
    )
    d.with_variable(
        query_var(
            "instance",
            "instance",
            'label_values(rt:server:requests{rt="$router"}, instance)',
            multi=True,
            include_all=True,
        )
    )

    d.with_row(row(ids, "TOP LINE"))
    d.with_panel(
        stat(
            ids,
            "Services monitored",
            f"count(count by (service) (rt:service:requests{{{rt}}}))",
            "none",
            "Logical services (dst names) the router has seen.",
        )
    )
    d.with_panel(
        stat(
            ids,
            "Mesh instances",
            "count(count by (instance) (rt:server:requests))",
            "none",
            "Mesh pods reporting metrics.",
        )
    )
    d.with_panel(
        stat(
            ids,
            "Global success rate",
            success_rate("rt:service", rt),
            "percentunit",
            "Successful requests / all requests over all services of the router.",
            SR_THRESHOLDS,
        )
    )
    d.with_panel(
        stat(
            ids,
            "Global request volume",
            volume("rt:service", rt),
            "reqps",
            "Requests per second over all services of the router.",
        )
    )
    d.with_panel(
        stat(
            ids,
            "4XX rate",
            error_rate("4XX", rt),
            "reqps",
            "Responses with a 4XX status from the router's destinations, per second "
            "(0 when there were none).",
            [(None, "green"), (1, "orange")],
        )
    )
    d.with_panel(
        stat(
            ids,
            "5XX rate",
            error_rate("5XX", rt),
            "reqps",
            "Responses with a 5XX status from the router's destinations, per second "
            "(0 when there were none).",
            [(None, "green"), (0.1, "red")],
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Success rate by service",
            [target(success_rate("rt:service", svc, "service"), "{{service}}")],
            "percentunit",
            "Per logical service.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Request volume by service",
            [target(volume("rt:service", svc, "service"), "{{service}}")],
            "reqps",
            "Requests per second, per logical service.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Latency by service",
            latency_targets("rt:service", svc, "service"),
            "ms",
            "p95, p99 and max latency per service (the worst instance's).",
        )
    )

    d.with_row(row(ids, "SERVICE METRICS: $service", repeat="service"))
    one = 'rt="$router", service=~"$service", instance=~"$instance"'
    d.with_panel(
        timeseries(
            ids,
            "$service: success rate by instance",
            [target(success_rate("rt:service", one, "instance"), "{{instance}}")],
            "percentunit",
            "The service's success rate as seen by each mesh instance.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "$service: request volume by instance",
            [target(volume("rt:service", one, "instance"), "{{instance}}")],
            "reqps",
            "The service's requests per second through each mesh instance.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "$service: latency by instance",
            latency_targets("rt:service", one, "instance"),
            "ms",
            "p95, p99 and max latency of the service per mesh instance.",
        )
    )

    d.with_row(row(ids, "PER-INSTANCE METRICS"))
    server = 'rt="$router", instance=~"$instance"'
    d.with_panel(
        timeseries(
            ids,
            "Server success rate by instance",
            [target(success_rate("rt:server", server, "instance"), "{{instance}}")],
            "percentunit",
            "What the router's servers answered their clients, per instance.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Server request volume by instance",
            [target(volume("rt:server", server, "instance"), "{{instance}}")],
            "reqps",
            "Requests per second received by each instance's router servers.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Server latency by instance",
            latency_targets("rt:server", server, "instance"),
            "ms",
            "p95, p99 and max latency of the router's servers per instance.",
        )
    )
    return d


def process_health() -> dashboard_b.Dashboard:
    inst = 'instance=~"$instance"'
    ids = Ids()
    d = dashboard(
        "l5d-twisted-process",
        "l5d-twisted: process health",
        "Uptime, CPU, memory, file descriptors and garbage collection of each mesh process.",
    )
    d.with_variable(datasource_var())
    d.with_variable(
        query_var(
            "instance",
            "instance",
            "label_values(rt:server:requests, instance)",
            multi=True,
            include_all=True,
        )
    )
    d.with_row(row(ids, "PROCESS HEALTH"))
    d.with_panel(
        timeseries(
            ids,
            "Uptime",
            [target(f"process_uptime_seconds{{{inst}}}", "{{instance}}")],
            "s",
            "Seconds since each mesh process started (a drop is a restart).",
            w=12,
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "CPU",
            [target(f"rate(process_cpu_seconds_total{{{inst}}}[{RATE}])", "{{instance}}")],
            "percentunit",
            "CPU seconds per second used by each mesh process (1 = one core).",
            w=12,
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Resident memory",
            [target(f"process_resident_memory_bytes{{{inst}}}", "{{instance}}")],
            "bytes",
            "RSS of each mesh process.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "Open file descriptors",
            [target(f"process_open_fds{{{inst}}}", "{{instance}}")],
            "none",
            "Sockets and files open in each mesh process.",
        )
    )
    d.with_panel(
        timeseries(
            ids,
            "GC collections",
            [
                target(
                    f"sum by (instance, generation) (rate(python_gc_collections_total{{{inst}}}[{RATE}]))",
                    "{{instance}} gen {{generation}}",
                )
            ],
            "ops",
            "Python garbage collections per second, per generation.",
        )
    )
    return d


def model(builder: dashboard_b.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, as Grafana's schema (the SDK's encoder) serialises it."""
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model."""
    return {
        "l5d-twisted-top-line.json": model(top_line()),
        "l5d-twisted-process.json": model(process_health()),
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the chart's Grafana dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="only check that chart/dashboards is up to date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, data in dashboards().items():
        path = OUT / name
        text = render(data)
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
