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
from prometheus_client.utils import floatToGoString
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
    # What _TextFamilies keeps instead of samples: the formatted lines.
    lines: list[str] = field(default_factory=list)


class _Families:
    """Prometheus families built one tree metric at a time (in the tree's order)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.families: dict[str, _Family] = {}
        # Names a summary adds (_count, _sum, _avg) must not also be another family.
        self._taken: dict[str, str] = {}

    def _family(self, name: str, type_: str, suffixes: tuple[str, ...] = ()) -> _Family | None:
        existing = self.families.get(name)
        if existing is not None:
            return existing if existing.type == type_ else None
        names = [name + s for s in suffixes] + [name]
        if any(n in self._taken for n in names):
            return None
        for n in names:
            self._taken[n] = name
        created = self.families[name] = _Family(name, type_)
        return created

    def _sample(self, family: _Family, name: str, labels: dict[str, str], value: float) -> None:
        family.samples.append((name, labels, value))

    def add(self, tree_name: Name, metric: object) -> None:
        name, labels = name_and_labels(tree_name, self.prefix)
        sample = self._sample
        if isinstance(metric, CounterMetric):
            fam = self._family(name, "unknown")
            if fam is not None:
                sample(fam, name, labels, float(metric.value))
        elif isinstance(metric, GaugeMetric):
            fam = self._family(name, "gauge")
            if fam is not None:
                sample(fam, name, labels, metric.read())
        elif isinstance(metric, Histogram):
            fam = self._family(name, "summary", ("_count", "_sum"))
            avg = self._family(name + "_avg", "gauge") if fam is not None else None
            if fam is None or avg is None:
                log.warn("metric name clash for {name}; skipped", name=name)
                return
            summary = metric.summary()
            for (_, _, label), value in zip(QUANTILES, summary.percentiles):
                sample(fam, name, {**labels, "quantile": label}, value)
            sample(fam, name, {**labels, "quantile": "1"}, summary.max)
            sample(fam, name + "_count", labels, float(summary.count))
            sample(fam, name + "_sum", labels, summary.sum)
            sample(avg, name + "_avg", labels, summary.avg)


_TEXT_TYPES = {"unknown": "untyped", "gauge": "gauge", "summary": "summary"}


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _TextFamilies(_Families):
    """Families whose samples are kept as text lines, formatted as ``generate_latest`` does.

    For a large tree this is what keeps a render cheap for the garbage collector too: a
    family holds plain strings (which the collector does not track) rather than hundreds
    of thousands of tuples and label dicts, whose survival would trigger a full
    collection of the whole heap (measured: a 1 s pause at 3,000 services).  The text
    format's rules used here: names are already valid (see :func:`metric_name`), labels
    sorted by name, values escaped for ``\\``, newline and ``"``, numbers as Go prints them.
    """

    def _sample(self, family: _Family, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            text = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))
            family.lines.append(f"{name}{{{text}}} {floatToGoString(value)}\n")
        else:
            family.lines.append(f"{name} {floatToGoString(value)}\n")

    @staticmethod
    def header(family: _Family) -> str:
        return f"# HELP {family.name} \n# TYPE {family.name} {_TEXT_TYPES[family.type]}\n"


def _metric(family: _Family, samples: list[tuple[str, dict[str, str], float]]) -> Metric:
    out = Metric(family.name, "", family.type)
    for sample_name, labels, value in samples:
        out.add_sample(sample_name, labels, value)
    return out


class MetricsTreeCollector:
    """A prometheus-client collector reading a :class:`MetricsTree` at scrape time."""

    def __init__(self, tree: MetricsTree, prefix: str = "") -> None:
        self.tree = tree
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        families = _Families(self.prefix)
        for tree_name, metric in self.tree.metrics():
            families.add(tree_name, metric)
        for fam in families.families.values():
            yield _metric(fam, fam.samples)


# Work per step of an incremental render (see :mod:`.render`): tree metrics read, then
# samples formatted; each step takes well under a millisecond.
METRICS_PER_STEP = 50
SAMPLES_PER_STEP = 500


class PrometheusExposition:
    """The text a scrape gets: the tree (with ``prefix``) plus process metrics.

    :meth:`render` makes it in one go; :meth:`render_steps` makes the same bytes in small
    steps, for :func:`.render.run_steps` to interleave with the reactor's other work.
    """

    def __init__(self, tree: MetricsTree, prefix: str = "", process_metrics: bool = True) -> None:
        self.tree = tree
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsTreeCollector(tree, prefix))
        self.process_registry: CollectorRegistry | None = None
        if process_metrics:
            self.process_registry = CollectorRegistry(auto_describe=False)
            register_process_collectors(self.process_registry)

    def render(self) -> bytes:
        text = generate_latest(self.registry)
        if self.process_registry is not None:
            text += generate_latest(self.process_registry)
        return text

    def render_steps(self, out: list[bytes]) -> Iterator[None]:
        """Append the exposition to ``out`` in pieces, yielding between small steps.

        Byte for byte what :meth:`render` returns for the same metric values (the
        families in the same order, each formatted as ``generate_latest`` does; a test
        holds the two together).
        """
        families = _TextFamilies(self.prefix)
        for i, (tree_name, metric) in enumerate(self.tree.metrics(), 1):
            families.add(tree_name, metric)
            if i % METRICS_PER_STEP == 0:
                yield None
        yield None
        for fam in families.families.values():
            lines = fam.lines
            out.append(families.header(fam).encode())
            for start in range(0, len(lines), SAMPLES_PER_STEP):
                out.append("".join(lines[start : start + SAMPLES_PER_STEP]).encode())
                yield None
            fam.lines = []  # freed family by family, not all at the end (a stall of its own)
        if self.process_registry is not None:
            out.append(generate_latest(self.process_registry))
