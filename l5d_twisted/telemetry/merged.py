"""The metrics of several worker processes as one tree (``workers: N``, docs/operations.md).

Each worker records into its own :class:`~.metrics.MetricsTree`.  The supervisor asks every
worker for a *snapshot* (:func:`snapshot_steps`: the worker's live metrics as plain records,
made in small steps between the worker's other work) and loads them into one
:class:`MergedMetrics`, a tree that every exposition reads as it reads a worker's own
(Prometheus, ``metrics.json``, the dashboard sampler), merged exactly:

* counters are summed;
* histograms are merged bucket by bucket (:func:`~.histogram.merge_states`): cumulative
  count and sum added, each period's buckets added, min of mins and max of maxes, so the
  mesh's percentiles are those of all its requests, not an average of the workers';
* gauges by what they measure: the sum for amounts that add up across processes
  (``pending``, ``connections``, a balancer's ``load``, a retry budget's balance, and any
  gauge not named below); the maximum for a balancer's ``size`` and ``aperture`` (every
  worker balances over the same address set); the minimum for ``available`` (an endpoint
  one worker's failure accrual took out counts as unavailable).

A metric any worker has is in the merged tree; one no worker has any more leaves it
(each worker expires idle scopes itself).  When a worker ends, what it had counted is kept
(:func:`retire`) and added to the counters and histogram totals its replacement and the
other workers go on with, so no counter of the mesh ever goes down.  Process metrics (RSS, CPU, open fds, GC) are not
merged: :class:`WorkerProcessCollector` exposes each worker's with a ``worker`` label, the
supervisor's own as ``worker="supervisor"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from typing import Any

from l5d_twisted.telemetry.histogram import Histogram, HistogramState, merge_states
from l5d_twisted.telemetry.metrics import (
    CounterMetric,
    FixedGauge,
    GaugeMetric,
    MetricGroup,
    MetricsTree,
    Name,
    group_key,
)
from l5d_twisted.telemetry.metrics import (
    Metric as TreeMetric,
)
from l5d_twisted.telemetry.process import register_process_collectors
from l5d_twisted.telemetry.promtext import Family as Metric
from l5d_twisted.telemetry.promtext import Registry as CollectorRegistry

# Records per step (and per control-channel frame) of a worker's snapshot.
RECORDS_PER_STEP = 200

# Gauges that are not sums, by their last name segments.
_GAUGE_MAX = {("loadbalancer", "size"), ("loadbalancer", "aperture")}
_GAUGE_MIN = {("loadbalancer", "available")}


def _nan() -> float:
    return math.nan


def gauge_merge(name: Name) -> str:
    """How a gauge merges across workers: ``"sum"``, ``"max"`` or ``"min"``."""
    tail = name[-2:]
    if tail in _GAUGE_MAX or (len(name) == 3 and name[0] == "rt" and name[2] == "originator"):
        return "max"
    if tail in _GAUGE_MIN:
        return "min"
    return "sum"


# -- the worker's side ---------------------------------------------------------------------


def record_of(name: Name, metric: object) -> list[Any] | None:
    """One metric as a JSON-able record: ``[segments, "c"|"g"|"h", value]``."""
    if isinstance(metric, CounterMetric):
        return [list(name), "c", metric.value]
    if isinstance(metric, GaugeMetric):
        return [list(name), "g", metric.read()]
    if isinstance(metric, Histogram):
        c, s, cur, cur_sum, cur_lo, cur_hi, prev, prev_sum, prev_lo, prev_hi = metric.state()
        return [
            list(name),
            "h",
            [c, s, list(cur.items()), cur_sum, cur_lo, cur_hi]
            + [list(prev.items()), prev_sum, prev_lo, prev_hi],
        ]
    return None


def snapshot_steps(tree: MetricsTree, send: Any) -> Iterator[None]:
    """Hand ``send`` the tree's records, :data:`RECORDS_PER_STEP` at a time, between steps."""
    batch: list[Any] = []
    for name, metric in tree.metrics():
        record = record_of(name, metric)
        if record is not None:
            batch.append(record)
        if len(batch) >= RECORDS_PER_STEP:
            send(batch)
            batch = []
            yield None
    if batch:
        send(batch)


def process_families(registry: CollectorRegistry) -> list[list[Any]]:
    """A registry's families as records: ``[name, help, type, [[sample, labels, value]...]]``."""
    out = []
    for family in registry.collect():
        samples = [[s.name, dict(s.labels), s.value] for s in family.samples]
        out.append([family.name, family.documentation, family.type, samples])
    return out


def process_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    register_process_collectors(registry)
    return registry


# -- the supervisor's side -----------------------------------------------------------------


def _histogram_state(value: list[Any]) -> HistogramState:
    c, s, cur, cur_sum, cur_lo, cur_hi, prev, prev_sum, prev_lo, prev_hi = value
    return (
        int(c),
        float(s),
        {int(i): int(n) for i, n in cur},
        float(cur_sum),
        float(cur_lo),
        float(cur_hi),
        {int(i): int(n) for i, n in prev},
        float(prev_sum),
        float(prev_lo),
        float(prev_hi),
    )


def retire(records: Sequence[list[Any]], retired: dict[Name, tuple[str, Any]]) -> None:
    """Keep what an ended worker had counted (its last snapshot's ``records``): its counters
    and its histograms' cumulative count and sum, which :func:`merge_records` adds back, so
    the mesh's counters never go down when a worker is replaced (Prometheus would read a
    reset)."""
    for segments, kind, value in records:
        name = tuple(str(s) for s in segments)
        known = retired.get(name)
        if kind == "c":
            before = known[1] if known is not None and known[0] == "c" else 0
            retired[name] = ("c", before + int(value))
        elif kind == "h":
            count, total = known[1] if known is not None and known[0] == "h" else (0, 0.0)
            retired[name] = ("h", (count + int(value[0]), total + float(value[1])))


def merge_records(
    snapshots: Sequence[Sequence[list[Any]]],
    retired: dict[Name, tuple[str, Any]] | None = None,
) -> dict[Name, tuple[str, Any]]:
    """Several workers' records as one: name -> (kind, merged value), in first-seen order.

    ``retired`` (see :func:`retire`) is added to the counters and histogram totals of the
    names some worker still has; a retired name no worker has any more is dropped from it
    (so it stays bounded: such a metric has left the view anyway).
    """
    merged: dict[Name, tuple[str, Any]] = {}
    for _ in merge_steps(snapshots, merged, retired):
        pass
    return merged


def merge_steps(
    snapshots: Sequence[Sequence[list[Any]]],
    merged: dict[Name, tuple[str, Any]],
    retired: dict[Name, tuple[str, Any]] | None = None,
) -> Iterator[None]:
    """:func:`merge_records` into ``merged``, :data:`RECORDS_PER_STEP` records per step (the
    supervisor's admin server keeps answering probes while tens of thousands merge)."""
    kinds: dict[Name, str] = {}
    values: dict[Name, list[Any]] = {}
    n = 0
    for records in snapshots:
        for segments, kind, value in records:
            name = tuple(str(s) for s in segments)
            known = kinds.setdefault(name, kind)
            if known == kind:  # a clash between workers: the first kind seen wins
                values.setdefault(name, []).append(value)
            n += 1
            if n % RECORDS_PER_STEP == 0:
                yield None
    for name, kind in kinds.items():
        parts = values[name]
        if kind == "c":
            merged[name] = (kind, sum(int(v) for v in parts))
        elif kind == "g":
            numbers = [float(v) for v in parts if v is not None and not math.isnan(float(v))]
            how = gauge_merge(name)
            if not numbers:
                merged[name] = (kind, math.nan)
            elif how == "max":
                merged[name] = (kind, max(numbers))
            elif how == "min":
                merged[name] = (kind, min(numbers))
            else:
                merged[name] = (kind, math.fsum(numbers))
        elif kind == "h":
            merged[name] = (kind, merge_states([_histogram_state(v) for v in parts]))
        n += len(parts)
        if n % RECORDS_PER_STEP < len(parts):
            yield None
    if retired:
        for name in [n for n in retired if n not in merged]:
            del retired[name]
        for name, (kind, base) in retired.items():
            found = merged[name]
            if found[0] != kind:
                continue
            if kind == "c":
                merged[name] = ("c", found[1] + base)
            else:
                state = found[1]
                merged[name] = ("h", (state[0] + base[0], state[1] + base[1]) + state[2:])


class _Loaded:
    """A group of loaded metrics, as :meth:`MergedMetrics.metric_groups` lists it."""

    __slots__ = ("key", "metrics")

    def __init__(self, key: Name, metrics: dict[Name, TreeMetric]) -> None:
        self.key = key
        self.metrics = metrics


class MergedMetrics(MetricsTree):
    """A tree showing what :meth:`load` was last given, plus the supervisor's own metrics.

    Reading is :class:`~.metrics.MetricsTree`'s API (``metrics()``, ``scopes()``,
    ``get()``); recording through ``.stats`` adds the supervisor's own metrics (its
    ``workers/*``), which are shown after the merged ones.  The metric objects of a name
    stay the same from one load to the next (the dashboard sampler keeps histograms
    between its steps); nothing expires or rotates here: the workers do that.
    """

    def __init__(self, clock: Any) -> None:
        super().__init__(clock, expiry_ttl_s=0.0, start=False)
        self._merged: dict[Name, dict[Name, TreeMetric]] = {}
        self._merged_groups: list[MetricGroup] = []
        self._by_name: dict[Name, TreeMetric] = {}

    def load(self, merged: dict[Name, tuple[str, Any]]) -> None:
        for _ in self.load_steps(merged):
            pass

    def load_steps(self, merged: dict[Name, tuple[str, Any]]) -> Iterator[None]:
        """:meth:`load` in steps; the new set of names shows at the end, values as they come."""
        by_name: dict[Name, TreeMetric] = {}
        groups: dict[Name, dict[Name, TreeMetric]] = {}
        for i, (name, (kind, value)) in enumerate(merged.items(), 1):
            if i % RECORDS_PER_STEP == 0:
                yield None
            metric = self._by_name.get(name)
            if kind == "c":
                if not isinstance(metric, CounterMetric):
                    metric = CounterMetric()
                metric.value = value
            elif kind == "g":
                if not isinstance(metric, FixedGauge):
                    metric = FixedGauge(name, _nan)
                metric.fn = functools.partial(float, value)
            else:
                if not isinstance(metric, Histogram):
                    metric = Histogram()
                metric.load(value)
            by_name[name] = metric
            groups.setdefault(group_key(name), {})[name] = metric
        self._by_name = by_name
        self._merged = groups
        self._merged_groups = [_Loaded(key, group) for key, group in groups.items()]

    def start(self) -> None:
        pass  # nothing to tick: each worker rotates and expires its own

    def metrics(self) -> Iterator[tuple[Name, TreeMetric]]:
        for group in list(self._merged.values()):
            yield from list(group.items())
        yield from super().metrics()

    def metric_groups(self) -> list[MetricGroup]:
        return self._merged_groups + super().metric_groups()

    def get(self, *name: str) -> TreeMetric | None:
        found = self._by_name.get(tuple(name))
        return found if found is not None else super().get(*name)

    def group_keys(self) -> list[Name]:
        return [k for k in self._merged if k] + [
            k for k in super().group_keys() if k not in self._merged
        ]

    def scopes(self) -> list[tuple[Name, dict[Name, TreeMetric]]]:
        return [(key, group) for key, group in self._merged.items() if key] + [
            (key, group) for key, group in super().scopes() if key not in self._merged
        ]


class WorkerProcessCollector:
    """Each worker's process metrics (as its last snapshot had them) with a ``worker`` label,
    then the supervisor's own (``worker="supervisor"``), one family per metric name."""

    def __init__(self) -> None:
        self.own = process_registry()
        self.workers: dict[str, list[list[Any]]] = {}  # worker label -> process_families()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sources = list(self.workers.items()) + [("supervisor", process_families(self.own))]
        for label, records in sources:
            for name, documentation, type_, samples in records:
                family = families.get(name)
                if family is None:
                    family = families[name] = Metric(name, documentation, type_)
                elif family.type != type_:
                    continue
                for sample_name, labels, value in samples:
                    family.add_sample(sample_name, {**labels, "worker": label}, value)
        yield from families.values()

    def registry(self) -> CollectorRegistry:
        """A registry holding only this collector (what an exposition's process part reads)."""
        registry = CollectorRegistry()
        registry.register(self)
        return registry
