"""Prometheus exposition of the metrics tree, with linkerd 1's names and labels.

A tree name's segments are joined with ``:`` and every character outside
``[a-zA-Z0-9:]`` becomes ``_``; router, service, client and server scopes become labels::

    rt/outgoing/service/svc/hello/requests   -> rt:service:requests{rt="outgoing",service="svc/hello"}
    rt/outgoing/client/<id>/status/2XX       -> rt:client:status:2XX{rt="outgoing",client="<id>"}
    rt/incoming/server/0.0.0.0/4141/requests -> rt:server:requests{rt="incoming",server="0.0.0.0/4141"}
    rt/outgoing/client/<id>/service/<svc>/x  -> rt:client:service:x{rt=..,client=..,service=..}
    rt/outgoing/<other>/x                    -> rt:<other>:x{rt="outgoing"}

Counters are exported untyped, so no ``_total`` suffix is added (linkerd 1's names);
gauges as gauges; histograms as a summary ``<name>{quantile="0.5|0.95|0.99|1"}`` (``1`` is
the max) with cumulative ``<name>_count`` and ``<name>_sum``, plus a gauge ``<name>_avg``.
Quantiles and avg cover the recent window (see :mod:`.histogram`).  The text itself is
``generate_latest`` over a custom collector (:mod:`.promtext`: prometheus-client's text,
without importing it); process metrics come from :mod:`.process`.

**Quantiles.**  linkerd 1 exported ``0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1``
(:data:`LINKERD1_QUANTILES`): seven lines per histogram, three histograms per service and
client, so a third of the lines of a node with thousands of names (issue 17).  The
default, :data:`DEFAULT_QUANTILES`, is what is read: the chart's Grafana dashboards query
``0.95``, ``0.99`` and ``1`` (max), the usual p50 panels ``0.5``.  The ``io.l5d.prometheus``
telemeter's ``quantiles`` key restores linkerd 1's set (or any subset of it).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from l5d_twisted.telemetry.histogram import QUANTILES, Histogram
from l5d_twisted.telemetry.metrics import (
    CounterMetric,
    GaugeMetric,
    MetricGroup,
    MetricsTree,
    Name,
)
from l5d_twisted.telemetry.process import register_process_collectors
from l5d_twisted.telemetry.promtext import Family as Metric
from l5d_twisted.telemetry.promtext import Registry as CollectorRegistry
from l5d_twisted.telemetry.promtext import float_to_go, generate_latest
from l5d_twisted.telemetry.render import CACHE_IDLE_S, IdleForget

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


# The quantiles a histogram has, by label; "1" is the max.
LINKERD1_QUANTILES: tuple[str, ...] = tuple(label for _, _, label in QUANTILES) + ("1",)
DEFAULT_QUANTILES: tuple[str, ...] = ("0.5", "0.95", "0.99", "1")


def check_quantiles(labels: tuple[str, ...]) -> None:
    unknown = [q for q in labels if q not in LINKERD1_QUANTILES]
    if unknown:
        raise ValueError(
            f"unknown quantile(s) {', '.join(unknown)}; known: {', '.join(LINKERD1_QUANTILES)}"
        )


class _Families:
    """Prometheus families built one tree metric at a time (in the tree's order)."""

    def __init__(self, prefix: str, quantiles: tuple[str, ...] = DEFAULT_QUANTILES) -> None:
        self.prefix = prefix
        # (index in Summary.percentiles or None for the max, label), in exposition order
        self._quantiles = [
            (index, label) for index, label in enumerate(LINKERD1_QUANTILES) if label in quantiles
        ]
        self._max_index = len(QUANTILES)
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
            percentiles = summary.percentiles
            for index, label in self._quantiles:
                value = summary.max if index == self._max_index else percentiles[index]
                sample(fam, name, {**labels, "quantile": label}, value)
            sample(fam, name + "_count", labels, float(summary.count))
            sample(fam, name + "_sum", labels, summary.sum)
            sample(avg, name + "_avg", labels, summary.avg)


_TEXT_TYPES = {"unknown": "untyped", "gauge": "gauge", "summary": "summary"}
_MAX_LABEL_TEXTS = 4096  # label sets remembered at once during one render


_float_to_go: Callable[[float], str] = float_to_go


def _go_float(value: float) -> str:
    """``floatToGoString(value)``, with a fast path for what counters hold: small whole
    numbers (below 1e6 Go and Python print them alike, ``12.0``)."""
    if type(value) is int:  # noqa: E721 (not a bool, not a subclass)
        value = float(value)
    if value == 0.0:
        return "0.0" if math.copysign(1.0, value) > 0 else "-0.0"
    if 0.0 < value < 1e6 and value.is_integer():
        return f"{int(value)}.0"
    return _float_to_go(value)


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

    def __init__(self, prefix: str, quantiles: tuple[str, ...] = DEFAULT_QUANTILES) -> None:
        super().__init__(prefix, quantiles)
        # Formatting every sample's labels and every metric's name from scratch was most of
        # a render (issue 17: 1 s of CPU for 5,000 services and their clients).  The metrics
        # of one service or client scope come one after the other and share their labels,
        # and the same few dozen names repeat in every scope: both are formatted once.
        self._scope: Name = ()
        self._scope_text = ""
        self._quantile_texts: dict[str, str] = {}
        self._names: dict[tuple[str, ...], tuple[str, _Family | None, _Family | None]] = {}
        self._texts: dict[tuple[str, ...], str] = {}  # label texts of other samples

    def add(self, tree_name: Name, metric: object) -> None:
        if (
            len(tree_name) < 5
            or tree_name[0] != "rt"
            or tree_name[2] not in ("service", "client")
            or (tree_name[2] == "client" and len(tree_name) >= 7 and tree_name[4] == "service")
        ):
            super().add(tree_name, metric)
            return
        scope = tree_name[:4]
        if scope != self._scope:
            self._enter_scope(scope)
        key = tree_name[2:]
        key = (key[0], type(metric).__name__) + key[2:]
        known = self._names.get(key)
        if known is None:
            known = self._names[key] = self._name_of(tree_name, metric)
        name, fam, avg = known
        if fam is None:
            return
        lines = fam.lines
        text = self._scope_text
        if isinstance(metric, CounterMetric):
            count = metric.value
            if type(count) is int and 0 < count < 1_000_000:  # noqa: E721 (not a bool)
                lines.append(f"{name}{{{text}}} {count}.0\n")
            else:
                lines.append(f"{name}{{{text}}} {_go_float(count)}\n")
        elif isinstance(metric, GaugeMetric):
            lines.append(f"{name}{{{text}}} {_go_float(metric.read())}\n")
        elif isinstance(metric, Histogram) and avg is not None:
            summary = metric.summary()
            percentiles = summary.percentiles
            quantile_texts = self._quantile_texts
            for index, label in self._quantiles:
                value = summary.max if index == self._max_index else percentiles[index]
                lines.append(f"{name}{{{quantile_texts[label]}}} {_go_float(value)}\n")
            lines.append(f"{name}_count{{{text}}} {_go_float(float(summary.count))}\n")
            lines.append(f"{name}_sum{{{text}}} {_go_float(summary.sum)}\n")
            avg.lines.append(f"{name}_avg{{{text}}} {_go_float(summary.avg)}\n")

    def _enter_scope(self, scope: Name) -> None:
        self._scope = scope
        # labels in name order, "quantile" slotted in between: (client,) quantile, rt (, service)
        rt = f'rt="{_escape_label_value(scope[1])}"'
        own = f'{scope[2]}="{_escape_label_value(scope[3])}"'
        before, after = (own + ",", rt) if scope[2] < "quantile" else ("", f"{rt},{own}")
        self._scope_text = before + after
        self._quantile_texts = {
            label: f'{before}quantile="{label}",{after}' for _, label in self._quantiles
        }

    def _name_of(
        self, tree_name: Name, metric: object
    ) -> tuple[str, _Family | None, _Family | None]:
        """A scope metric's name and families (the same in every scope, made once)."""
        name, _ = name_and_labels(tree_name, self.prefix)
        if isinstance(metric, CounterMetric):
            return name, self._family(name, "unknown"), None
        if isinstance(metric, GaugeMetric):
            return name, self._family(name, "gauge"), None
        if isinstance(metric, Histogram):
            fam = self._family(name, "summary", ("_count", "_sum"))
            avg = self._family(name + "_avg", "gauge") if fam is not None else None
            if fam is None or avg is None:
                log.warn("metric name clash for {name}; skipped", name=name)
                return name, None, None
            return name, fam, avg
        return name, None, None

    @staticmethod
    def _label_text(labels: dict[str, str]) -> str:
        return ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))

    def _sample(self, family: _Family, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            key = (*labels, *labels.values())
            text = self._texts.get(key)
            if text is None:
                if len(self._texts) > _MAX_LABEL_TEXTS:
                    self._texts.clear()
                text = self._texts[key] = self._label_text(labels)
            family.lines.append(f"{name}{{{text}}} {_go_float(value)}\n")
        else:
            family.lines.append(f"{name} {_go_float(value)}\n")

    @staticmethod
    def header(family: _Family) -> str:
        return f"# HELP {family.name} \n# TYPE {family.name} {_TEXT_TYPES[family.type]}\n"


def _metric(family: _Family, samples: list[tuple[str, dict[str, str], float]]) -> Metric:
    out = Metric(family.name, "", family.type)
    for sample_name, labels, value in samples:
        out.add_sample(sample_name, labels, value)
    return out


class MetricsTreeCollector:
    """A collector (prometheus-client's protocol) reading a :class:`MetricsTree` at scrape time."""

    def __init__(
        self, tree: MetricsTree, prefix: str = "", quantiles: tuple[str, ...] = DEFAULT_QUANTILES
    ) -> None:
        self.tree = tree
        self.prefix = prefix
        self.quantiles = quantiles

    def collect(self) -> Iterator[Metric]:
        families = _Families(self.prefix, self.quantiles)
        for tree_name, metric in self.tree.metrics():
            families.add(tree_name, metric)
        for fam in families.families.values():
            yield _metric(fam, fam.samples)


# Work per step of an incremental render (see :mod:`.render`): tree metrics read, then
# samples formatted; each step takes well under a millisecond.
METRICS_PER_STEP = 50
SAMPLES_PER_STEP = 500


class _NameClash(Exception):
    """Two tree metrics want the same Prometheus name with different types."""


_COUNTER, _GAUGE, _HISTOGRAM, _OTHER = 0, 1, 2, 3

# Work units per step of a cached render (a group costs its number of metrics, a line
# formatted again more, a histogram's summary most): a step stays well under 1 ms.
UNITS_PER_STEP = 600
_MISS_UNITS = 4
_SUMMARY_UNITS = 30
LINES_PER_PIECE = 2000

_value_of = operator.attrgetter("value")
_count_of = operator.attrgetter("count")
_epoch_of = operator.attrgetter("epoch")
_append = list.append


def _kind_of(metric: object) -> int:
    if isinstance(metric, CounterMetric):
        return _COUNTER
    if isinstance(metric, GaugeMetric):
        return _GAUGE
    if isinstance(metric, Histogram):
        return _HISTOGRAM
    return _OTHER


# ("{labels} " or " ", the label pairs)
_Lab = tuple[str, tuple[tuple[str, str], ...]]

_PICKERS: dict[tuple[int, ...], Callable[[list[Any]], tuple[Any, ...]]] = {}


def _picker(indexes: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``lambda items: tuple(items[i] for i in indexes)``, in C where it can be; one per
    distinct ``indexes`` (groups of one layout share it: 10,000 were megabytes)."""
    key = tuple(indexes)
    found = _PICKERS.get(key)
    if found is not None:
        return found
    if len(_PICKERS) > 10_000:
        _PICKERS.clear()
    if not indexes:
        found = _no_items
    elif len(indexes) == 1:
        found = operator.itemgetter(slice(indexes[0], indexes[0] + 1))
    else:
        found = operator.itemgetter(*indexes)
    _PICKERS[key] = found
    return found


def _no_items(items: list[Any]) -> tuple[Any, ...]:
    return ()


class _Scope:
    """What one group of the tree rendered to last time.

    Its metrics by kind (counters, gauges, histograms; each kind in the group's order),
    the values their lines show, and the lines (``bytes``): the counters', the gauges',
    the histograms' summaries, then their ``_avg`` lines, each with the family list it
    goes to (``targets``).
    """

    __slots__ = (
        "names",
        "counters",
        "gauges",
        "histograms",
        "counter_values",
        "gauge_values",
        "counts",
        "epochs",
        "lines",
        "targets",
        "heads",
        "labs",
        "shape",
    )

    names: tuple[Name, ...]
    counters: Callable[[list[Any]], tuple[Any, ...]]
    gauges: Callable[[list[Any]], tuple[Any, ...]]
    histograms: Callable[[list[Any]], tuple[Any, ...]]
    counter_values: list[Any] | None
    gauge_values: list[Any] | None
    counts: list[int] | None
    epochs: list[int] | None
    lines: list[bytes]
    targets: tuple[list[bytes], ...]
    heads: tuple[str, ...]  # per line: the sample name (shared by every group)
    labs: tuple[_Lab, ...]  # and its labels (one shared by the group's own metrics)
    shape: tuple[int, ...]  # the families this group adds to, in first-line order


class _LineCache:
    """Renders the tree group by group, reusing each metric's line while its value is the
    one it was rendered with (issue 17: at 5,000 services most scopes are idle between
    two scrapes, and formatting 270,000 lines, 15,000 of them histogram summaries, was
    most of a 0.45 s render).

    A counter's or gauge's line is a function of its value; a histogram's lines of its
    ``count`` and ``epoch`` (which changes when its window rotates, see
    :class:`~.histogram.Histogram`).  A group's values are read and compared a kind at a
    time (a list of values against the last one), and its cached lines are added to
    their families' lists in one ``map``: an idle group costs a few C-level passes, not
    a Python statement per line.  (Equal values print alike, with one exception kept on
    purpose: a value that goes from ``0.0`` to ``-0.0`` or back keeps its first sign
    until it changes.)

    Groups are kept by key: one no longer in the tree (expired) leaves the cache at the
    end of the next complete render.  Families (names, types, clashes) are remembered
    across renders; their order in the text is that of their first line in this render,
    as before.  The families' line lists are the cache's own, so one render at a time
    uses it (:attr:`busy`); an overlapping render is made without it.
    """

    def __init__(self, prefix: str, quantiles: tuple[str, ...]) -> None:
        self.prefix = prefix
        self._quantiles = [
            (index, label) for index, label in enumerate(LINKERD1_QUANTILES) if label in quantiles
        ]
        self._max_index = len(QUANTILES)
        self.clashed = False
        self.busy = False
        self._scopes: dict[Name, _Scope] = {}
        self._fam_index: dict[str, int] = {}
        self._fam_types: list[str] = []
        self._fam_names: list[str] = []
        self._fam_lists: list[list[bytes]] = []
        self._headers: list[bytes] = []
        self._taken: dict[str, str] = {}
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._layouts: dict[tuple[Any, ...], Any] = {}
        self._last_lab: _Lab | None = None
        self._last_opens: list[str] = []
        self._scope_names: dict[Name, str] = {}  # (kind, *rest) -> name, for scope metrics

    # -- families ------------------------------------------------------------------------

    def _family(self, name: str, type_: str, suffixes: tuple[str, ...] = ()) -> int:
        index = self._fam_index.get(name)
        if index is not None:
            if self._fam_types[index] != type_:
                raise _NameClash(name)
            return index
        names = [name + s for s in suffixes] + [name]
        if any(n in self._taken for n in names):
            raise _NameClash(name)
        for n in names:
            self._taken[n] = name
        index = self._fam_index[name] = len(self._fam_types)
        self._fam_types.append(type_)
        self._fam_names.append(name)
        self._fam_lists.append([])
        self._headers.append(f"# HELP {name} \n# TYPE {name} {_TEXT_TYPES[type_]}\n".encode())
        return index

    # -- a group's layout ----------------------------------------------------------------

    @staticmethod
    def _lab(labels: dict[str, str]) -> _Lab:
        """A label set as its text between name and value, and its pairs (for quantiles)."""
        text = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))
        return ("{" + text + "} " if text else " "), tuple(labels.items())

    def _quantile_opens(self, lab: _Lab) -> list[str]:
        """A histogram's quantile label texts (the group's histograms share them)."""
        if lab is self._last_lab:
            return self._last_opens
        labels = dict(lab[1])
        labels.pop("quantile", None)  # a label of that name is overridden, as in a dict
        before = [(k, v) for k, v in sorted(labels.items()) if k < "quantile"]
        after = [(k, v) for k, v in sorted(labels.items()) if k > "quantile"]
        head = "".join(f'{k}="{_escape_label_value(v)}",' for k, v in before)
        tail = "".join(f',{k}="{_escape_label_value(v)}"' for k, v in after)
        opens = [
            f'{{{head}quantile="{_escape_label_value(label)}"{tail}}} '
            for _, label in self._quantiles
        ]
        self._last_lab, self._last_opens = lab, opens
        return opens

    def _build(self, key: Name, names: tuple[Name, ...], metrics: list[Any]) -> _Scope:
        in_scope = len(key) == 4 and key[0] == "rt" and key[2] in ("service", "client")
        scope_lab = self._lab({"rt": key[1], key[2]: key[3]}) if in_scope else None
        other_labs: dict[tuple[tuple[str, str], ...], _Lab] = {}
        by_kind: tuple[list[int], list[int], list[int]] = ([], [], [])
        heads: tuple[list[str], list[str], list[str]] = ([], [], [])
        labs: tuple[list[_Lab], list[_Lab], list[_Lab]] = ([], [], [])
        fams: tuple[list[int], list[int], list[int]] = ([], [], [])
        avg_fams: list[int] = []
        shape: list[int] = []
        in_shape: set[int] = set()
        for i, (name, metric) in enumerate(zip(names, metrics)):
            kind = _kind_of(metric)
            if kind == _OTHER:
                continue
            if (
                scope_lab is not None
                and len(name) >= 5
                and name[:4] == key
                and not (name[2] == "client" and len(name) >= 7 and name[4] == "service")
            ):
                memo_key = (name[2],) + name[4:]
                pname = self._scope_names.get(memo_key)
                if pname is None:
                    if len(self._scope_names) > 50_000:
                        self._scope_names.clear()
                    pname = self._scope_names[memo_key] = metric_name(
                        ("rt", name[2]) + name[4:], self.prefix
                    )
                lab = scope_lab
            else:
                pname, labels = name_and_labels(name, self.prefix)
                label_key = tuple(labels.items())
                found = other_labs.get(label_key)
                if found is None:
                    found = other_labs[label_key] = self._lab(labels)
                lab = found
            if kind == _COUNTER:
                family = self._family(pname, "unknown")
            elif kind == _GAUGE:
                family = self._family(pname, "gauge")
            else:
                family = self._family(pname, "summary", ("_count", "_sum"))
                avg = self._family(pname + "_avg", "gauge")
                avg_fams.append(avg)
            by_kind[kind].append(i)
            heads[kind].append(pname)
            labs[kind].append(lab)
            fams[kind].append(family)
            if family not in in_shape:
                in_shape.add(family)
                shape.append(family)
            if kind == _HISTOGRAM and avg not in in_shape:
                in_shape.add(avg)
                shape.append(avg)
        scope = _Scope()
        scope.names = names
        scope.counters = _picker(by_kind[_COUNTER])
        scope.gauges = _picker(by_kind[_GAUGE])
        scope.histograms = _picker(by_kind[_HISTOGRAM])
        scope.counter_values = scope.gauge_values = scope.counts = scope.epochs = None
        all_fams = fams[_COUNTER] + fams[_GAUGE] + fams[_HISTOGRAM] + avg_fams
        scope.lines = [b""] * len(all_fams)
        # shared by the groups of one layout (every service scope alike, say)
        targets = tuple(self._fam_lists[f] for f in all_fams)
        scope.targets = self._interned(tuple(all_fams), targets)
        scope.heads = self._interned(tuple(heads[_COUNTER] + heads[_GAUGE] + heads[_HISTOGRAM]))
        scope.labs = tuple(labs[_COUNTER] + labs[_GAUGE] + labs[_HISTOGRAM])
        shape_t = tuple(shape)
        interned = self._shapes.get(shape_t)
        if interned is None:
            if len(self._shapes) > 10_000:
                self._shapes.clear()
            interned = self._shapes[shape_t] = shape_t
        scope.shape = interned
        return scope

    def _interned(self, key: tuple[Any, ...], value: Any = None) -> Any:
        found = self._layouts.get(key)
        if found is None:
            if len(self._layouts) > 20_000:
                self._layouts.clear()
            found = self._layouts[key] = key if value is None else value
        return found

    # -- lines ---------------------------------------------------------------------------

    @staticmethod
    def _value_line(name: str, open_: str, value: Any) -> bytes:
        if type(value) is int and 0 < value < 1_000_000:  # noqa: E721 (not a bool)
            return f"{name}{open_}{value}.0\n".encode()
        return f"{name}{open_}{_go_float(value)}\n".encode()

    def _histogram_lines(self, name: str, lab: _Lab, metric: Histogram) -> tuple[bytes, bytes]:
        open_ = lab[0]
        quantile_texts = self._quantile_opens(lab)
        summary = metric.summary()
        percentiles = summary.percentiles
        max_index = self._max_index
        parts = []
        for (index, _), q_open in zip(self._quantiles, quantile_texts):
            value = summary.max if index == max_index else percentiles[index]
            parts.append(f"{name}{q_open}{_go_float(value)}\n")
        parts.append(f"{name}_count{open_}{_go_float(float(summary.count))}\n")
        parts.append(f"{name}_sum{open_}{_go_float(summary.sum)}\n")
        avg = f"{name}_avg{open_}{_go_float(summary.avg)}\n"
        return "".join(parts).encode(), avg.encode()

    def _update(self, scope: _Scope, metrics: list[Any]) -> int:
        """Bring the group's lines up to date; the work done, in units."""
        units = len(metrics)
        lines = scope.lines
        heads = scope.heads
        labs = scope.labs
        counters = scope.counters(metrics)
        values = list(map(_value_of, counters))
        old = scope.counter_values
        if values != old:
            for j, value in enumerate(values):
                if old is None or value != old[j]:
                    lines[j] = self._value_line(heads[j], labs[j][0], value)
                    units += _MISS_UNITS
            scope.counter_values = values
        base = len(counters)
        gauges = scope.gauges(metrics)
        try:
            values = [g.value() for g in gauges]  # what GaugeMetric.read does
        except Exception:
            values = [g.read() for g in gauges]  # which logs the broken one
        old = scope.gauge_values
        if values != old:
            for j, value in enumerate(values, base):
                if old is None or value != old[j - base]:
                    lines[j] = self._value_line(heads[j], labs[j][0], value)
                    units += _MISS_UNITS
            scope.gauge_values = values
        base += len(gauges)
        histograms = scope.histograms(metrics)
        if histograms:
            counts = list(map(_count_of, histograms))
            epochs = list(map(_epoch_of, histograms))
            old_counts, old_epochs = scope.counts, scope.epochs
            if counts != old_counts or epochs != old_epochs:
                avg_base = base + len(histograms)
                for j, metric in enumerate(histograms):
                    if (
                        old_counts is None
                        or old_epochs is None
                        or counts[j] != old_counts[j]
                        or epochs[j] != old_epochs[j]
                    ):
                        lines[base + j], lines[avg_base + j] = self._histogram_lines(
                            heads[base + j], labs[base + j], metric
                        )
                        units += _SUMMARY_UNITS
                scope.counts, scope.epochs = counts, epochs
        any(map(_append, scope.targets, lines))  # append returns None: runs to the end
        return units

    # -- a render ------------------------------------------------------------------------

    def render_steps(self, groups: list[MetricGroup], out: list[bytes]) -> Iterator[None]:
        """The tree's part of the exposition, appended to ``out`` in pieces."""
        self.busy = True
        try:
            yield from self._render_steps(groups, out)
        finally:
            self.busy = False
            for lines in self._fam_lists:  # a render stopped part-way leaves nothing
                lines.clear()

    def _render_steps(self, groups: list[MetricGroup], out: list[bytes]) -> Iterator[None]:
        seen: set[int] = set()
        order: list[int] = []
        seen_shapes: set[int] = set()
        last_shape: tuple[int, ...] | None = None
        scopes = self._scopes
        fresh: dict[Name, _Scope] = {}
        units = 0
        for each in groups:
            key, group = each.key, each.metrics
            names = tuple(group)
            metrics = list(group.values())
            if key in fresh:  # the same key twice (a merged tree's own groups)
                key = ("\0",) + key
            scope = scopes.get(key)
            if scope is None or scope.names != names:
                scope = self._build(key, names, metrics)
            try:
                units += self._update(scope, metrics)
            except AttributeError:
                # A name now of another kind (a gauge removed, a counter made under
                # its name): the metric lacks what its old kind's slot reads.
                scope = self._build(key, names, metrics)
                units += self._update(scope, metrics)
            fresh[key] = scope
            shape = scope.shape
            if shape is not last_shape:
                last_shape = shape
                if id(shape) not in seen_shapes:
                    seen_shapes.add(id(shape))
                    for f in shape:
                        if f not in seen:
                            seen.add(f)
                            order.append(f)
            if units >= UNITS_PER_STEP:
                units = 0
                yield None
        self._scopes = fresh  # groups gone from the tree leave the cache
        yield None
        headers = self._headers
        fam_lists = self._fam_lists
        for f in order:
            out.append(headers[f])
            lines = fam_lists[f]
            for start in range(0, len(lines), LINES_PER_PIECE):
                out.append(b"".join(lines[start : start + LINES_PER_PIECE]))
                yield None
            lines.clear()  # freed family by family


class PrometheusExposition:
    """The text a scrape gets: the tree (with ``prefix``) plus process metrics.

    :meth:`render` makes it in one go; :meth:`render_steps` makes the same bytes in small
    steps, for :func:`.render.run_steps` to interleave with the reactor's other work.
    With a ``reactor``, the cached lines are dropped after ``cache_idle_s`` without a
    render (see :class:`.render.IdleForget`).
    """

    def __init__(
        self,
        tree: MetricsTree,
        prefix: str = "",
        process_metrics: bool = True,
        quantiles: tuple[str, ...] = DEFAULT_QUANTILES,
        reactor: Any = None,
        cache_idle_s: float = CACHE_IDLE_S,
    ) -> None:
        check_quantiles(quantiles)
        self.tree = tree
        self.prefix = prefix
        self.quantiles = quantiles
        self.registry = CollectorRegistry()
        self.registry.register(MetricsTreeCollector(tree, prefix, quantiles))
        self._cache = _LineCache(prefix, quantiles)
        self.idle: IdleForget | None = (
            IdleForget(reactor, self.forget, cache_idle_s) if reactor is not None else None
        )
        self.process_registry: CollectorRegistry | None = None
        if process_metrics:
            self.process_registry = CollectorRegistry()
            register_process_collectors(self.process_registry)

    def render(self) -> bytes:
        text = generate_latest(self.registry)
        if self.process_registry is not None:
            text += generate_latest(self.process_registry)
        return text

    def forget(self) -> bool:
        """Drop the cached lines (about 1.5x the exposition's size): a scraper went away.
        False if a render is using them (nothing dropped)."""
        if self._cache.busy:
            return False
        clashed = self._cache.clashed
        self._cache = _LineCache(self.prefix, self.quantiles)
        self._cache.clashed = clashed
        return True

    def render_steps(self, out: list[bytes]) -> Iterator[None]:
        """Append the exposition to ``out`` in pieces, yielding between small steps.

        Byte for byte what :meth:`render` returns for the same metric values (the
        families in the same order, each formatted as ``generate_latest`` does; tests
        hold the two together).  Lines of metrics unchanged since the last render are
        reused (see :class:`_LineCache`).
        """
        groups = getattr(self.tree, "metric_groups", None)
        if self.idle is not None:
            self.idle.touch()
        if groups is None or self._cache.clashed or self._cache.busy:
            yield from self._render_steps_uncached(out)
            return
        start = len(out)
        try:
            yield from self._cache.render_steps(groups(), out)
        except _NameClash:
            # Which of two clashing names is exported depends on the reading order of
            # one render; the cache cannot keep that: such a tree is rendered afresh.
            self._cache.clashed = True
            del out[start:]
            yield from self._render_steps_uncached(out)
            return
        if self.process_registry is not None:
            out.append(generate_latest(self.process_registry))

    def _render_steps_uncached(self, out: list[bytes]) -> Iterator[None]:
        families = _TextFamilies(self.prefix, self.quantiles)
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
