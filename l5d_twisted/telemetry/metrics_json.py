"""``/admin/metrics.json``: the tree flattened with linkerd 1's names.

Each metric is one key, its tree segments joined with ``/``
(``rt/outgoing/service/svc/hello/requests``).  Counters are integers, gauges floats;
a histogram becomes ``<name>.count .sum .avg .min .max .p50 .p90 .p95 .p99 .p9990
.p9999`` (``count``/``sum`` cumulative, the rest over the recent window, see
:mod:`.histogram`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from l5d_twisted.telemetry.histogram import QUANTILES, Histogram
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree


def flat_metrics(tree: MetricsTree, query: str | None = None) -> dict[str, Any]:
    """Name -> value, sorted by name; ``query`` keeps only names containing it."""
    out: dict[str, Any] = {}
    for name, metric in tree.metrics():
        key = "/".join(name)
        if isinstance(metric, CounterMetric):
            out[key] = metric.value
        elif isinstance(metric, GaugeMetric):
            value = metric.read()
            out[key] = value if math.isfinite(value) else None  # JSON has no NaN or Infinity
        elif isinstance(metric, Histogram):
            summary = metric.summary()
            out[key + ".count"] = summary.count
            out[key + ".sum"] = summary.sum
            out[key + ".avg"] = summary.avg
            out[key + ".min"] = summary.min
            out[key + ".max"] = summary.max
            for (_, suffix, _), value in zip(QUANTILES, summary.percentiles):
                out[key + "." + suffix] = value
    if query:
        out = {k: v for k, v in out.items() if query in k}
    return dict(sorted(out.items()))


def metrics_json(tree: MetricsTree, query: str | None = None, pretty: bool = False) -> bytes:
    data = flat_metrics(tree, query)
    if pretty:
        return json.dumps(data, indent=2).encode() + b"\n"
    return json.dumps(data, separators=(",", ":")).encode()
