"""``/admin/metrics.json``: the tree flattened with linkerd 1's names.

Each metric is one key, its tree segments joined with ``/``
(``rt/outgoing/service/svc/hello/requests``).  Counters are integers, gauges floats;
a histogram becomes ``<name>.count .sum .avg .min .max .p50 .p90 .p95 .p99 .p9990
.p9999`` (``count``/``sum`` cumulative, the rest over the recent window, see
:mod:`.histogram`).
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
from typing import Any

from l5d_twisted.telemetry.histogram import QUANTILES, Histogram
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree

# A ``q`` longer than this is refused (400): metric names are far shorter, and a
# substring test of a huge ``q`` against every name is work for nothing.
MAX_QUERY_CHARS = 1024

# Work per step of an incremental render (see :mod:`.render`).
METRICS_PER_STEP = 50
KEYS_PER_STEP = 2000


def _add(out: dict[str, Any], name: tuple[str, ...], metric: object) -> None:
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


def flat_metrics(tree: MetricsTree, query: str | None = None) -> dict[str, Any]:
    """Name -> value, sorted by name; ``query`` keeps only names containing it."""
    out: dict[str, Any] = {}
    for name, metric in tree.metrics():
        _add(out, name, metric)
    if query:
        out = {k: v for k, v in out.items() if query in k}
    return dict(sorted(out.items()))


def metrics_json(tree: MetricsTree, query: str | None = None, pretty: bool = False) -> bytes:
    data = flat_metrics(tree, query)
    if pretty:
        return json.dumps(data, indent=2).encode() + b"\n"
    return json.dumps(data, separators=(",", ":")).encode()


def _json_value(value: Any) -> str:
    """``json.dumps(value)`` for the values metrics have, without its per-call cost."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)


def _drain(run: list[tuple[str, int, Any]]) -> Iterator[tuple[str, int, Any]]:
    """A run sorted in descending order, taken from its end: each item is freed once used."""
    while run:
        yield run.pop()


def metrics_json_steps(
    tree: MetricsTree, out: list[bytes], query: str | None = None, pretty: bool = False
) -> Iterator[None]:
    """Append :func:`metrics_json`'s bytes to ``out`` in pieces, yielding between steps.

    Same reading, filtering and order as :func:`metrics_json` (byte for byte for the same
    values).  No step touches the whole set: entries are sorted in runs as they are
    read, the runs merged a slice at a time, and each entry is freed once written (freeing
    700,000 entries at once is itself a stall of tens of milliseconds).  Entries carry
    their reading order so that, as in the dict :func:`flat_metrics` builds, the last
    value read for a repeated name wins.
    """
    runs: list[list[tuple[str, int, Any]]] = []
    run: dict[str, Any] = {}
    seq = 0

    def close_run() -> None:
        nonlocal run
        if run:
            # (name, reading order, value), descending: _drain pops the smallest first.
            runs.append(sorted(((k, seq, v) for k, v in run.items()), reverse=True))
            run = {}

    for i, (name, metric) in enumerate(tree.metrics(), 1):
        _add(run, name, metric)
        if i % METRICS_PER_STEP == 0:
            if query:
                run = {k: v for k, v in run.items() if query in k}
            if len(run) >= KEYS_PER_STEP:
                close_run()
                seq += 1
            yield None
    if query:
        run = {k: v for k, v in run.items() if query in k}
    close_run()
    if not runs:
        out.append(b"{}\n" if pretty else b"{}")
        return
    yield None
    separator, colon = (",\n  ", ": ") if pretty else (",", ":")
    out.append(b"{\n  " if pretty else b"{")
    merged = heapq.merge(*(_drain(r) for r in runs))
    pending: tuple[str, int, Any] | None = None
    piece: list[str] = []
    first = True
    for entry in merged:
        if pending is not None:
            if entry[0] == pending[0]:  # the same name read again: the later value wins
                pending = entry if entry[1] > pending[1] else pending
                continue
            if not first:
                piece.append(separator)
            first = False
            piece.append(encode_basestring_ascii(pending[0]) + colon + _json_value(pending[2]))
            if len(piece) >= KEYS_PER_STEP:
                out.append("".join(piece).encode())
                piece = []
                yield None
        pending = entry
    if pending is not None:
        if not first:
            piece.append(separator)
        piece.append(encode_basestring_ascii(pending[0]) + colon + _json_value(pending[2]))
    out.append(("".join(piece) + ("\n}\n" if pretty else "}")).encode())
