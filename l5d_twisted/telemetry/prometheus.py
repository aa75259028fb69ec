"""Prometheus exposition of the metrics tree, with linkerd 1's names and labels.

A tree name's segments are joined with ``:`` and every character outside
``[a-zA-Z0-9:]`` becomes ``_``; router, service, client and server scopes become labels::

    rt/outgoing/service/svc/hello/requests   -> rt:service:requests{rt="outgoing",service="svc/hello"}
    rt/outgoing/client/<id>/status/2XX       -> rt:client:status:2XX{rt="outgoing",client="<id>"}
    rt/incoming/server/0.0.0.0/4141/requests -> rt:server:requests{rt="incoming",server="0.0.0.0/4141"}
    rt/outgoing/client/<id>/service/<svc>/x  -> rt:client:service:x{rt=..,client=..,service=..}
    rt/outgoing/<other>/x                    -> rt:<other>:x{rt="outgoing"}

Counters are exported untyped, so no ``_total`` suffix is added (linkerd 1's names);
gauges as gauges; histograms as a summary ``<name>{quantile="0.5|0.9|0.95|0.99|0.999|0.9999|1"}``
(``1`` is the max) with cumulative ``<name>_count`` and ``<name>_sum``, plus a gauge
``<name>_avg``.  Quantiles and avg cover the recent window (see :mod:`.histogram`).  The
text itself is prometheus-client's ``generate_latest`` over a custom collector; process
metrics come from :mod:`.process`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from twisted.logger import Logger

from l5d_twisted.telemetry.histogram import QUANTILES, Histogram
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree, Name
from l5d_twisted.telemetry.process import register_process_collectors

log = Logger()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^a-zA-Z0-9:]")


def metric_name(segments: tuple[str, ...], prefix: str = "") -> str:
    name = _INVALID.sub("_", prefix + ":".join(segments))
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def name_and_labels(name: Name, prefix: str = "") -> tuple[str, dict[str, str]]:
    """The Prometheus metric name and labels of a tree name."""
    if len(name) >= 3 and name[0] == "rt":
        router, kind = name[1], name[2]
        if kind in ("service", "client") and len(name) >= 5:
            labels = {"rt": router, kind: name[3]}
            rest = name[4:]
            if kind == "client" and len(rest) >= 3 and rest[0] == "service":
                labels["service"] = rest[1]
                return metric_name(("rt", "client", "service") + rest[2:], prefix), labels
            return metric_name(("rt", kind) + rest, prefix), labels
        if kind == "server" and len(name) >= 6:
            labels = {"rt": router, "server": f"{name[3]}/{name[4]}"}
            return metric_name(("rt", "server") + name[5:], prefix), labels
        return metric_name(("rt",) + name[2:], prefix), {"rt": router}
    return metric_name(name, prefix), {}


@dataclass
class _Family:
    name: str
    type: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


class MetricsTreeCollector:
    """A prometheus-client collector reading a :class:`MetricsTree` at scrape time."""

    def __init__(self, tree: MetricsTree, prefix: str = "") -> None:
        self.tree = tree
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        families: dict[str, _Family] = {}
        # Names a summary adds (_count, _sum, _avg) must not also be another family.
        taken: dict[str, str] = {}

        def family(name: str, type_: str, suffixes: tuple[str, ...] = ()) -> _Family | None:
            existing = families.get(name)
            if existing is not None:
                return existing if existing.type == type_ else None
            names = [name + s for s in suffixes] + [name]
            if any(n in taken for n in names):
                return None
            for n in names:
                taken[n] = name
            created = families[name] = _Family(name, type_)
            return created

        for tree_name, metric in self.tree.metrics():
            name, labels = name_and_labels(tree_name, self.prefix)
            if isinstance(metric, CounterMetric):
                fam = family(name, "unknown")
                if fam is not None:
                    fam.samples.append((name, labels, float(metric.value)))
            elif isinstance(metric, GaugeMetric):
                fam = family(name, "gauge")
                if fam is not None:
                    fam.samples.append((name, labels, metric.read()))
            elif isinstance(metric, Histogram):
                fam = family(name, "summary", ("_count", "_sum"))
                avg = family(name + "_avg", "gauge") if fam is not None else None
                if fam is None or avg is None:
                    log.warn("metric name clash for {name}; skipped", name=name)
                    continue
                summary = metric.summary()
                for (_, _, label), value in zip(QUANTILES, summary.percentiles):
                    fam.samples.append((name, {**labels, "quantile": label}, value))
                fam.samples.append((name, {**labels, "quantile": "1"}, summary.max))
                fam.samples.append((name + "_count", labels, float(summary.count)))
                fam.samples.append((name + "_sum", labels, summary.sum))
                avg.samples.append((name + "_avg", labels, summary.avg))

        for fam in families.values():
            out = Metric(fam.name, "", fam.type)
            for sample_name, labels, value in fam.samples:
                out.add_sample(sample_name, labels, value)
            yield out


class PrometheusExposition:
    """The text a scrape gets: the tree (with ``prefix``) plus process metrics."""

    def __init__(self, tree: MetricsTree, prefix: str = "", process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsTreeCollector(tree, prefix))
        if process_metrics:
            register_process_collectors(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
