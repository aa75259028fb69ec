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
import operator
from collections.abc import Generator, Iterator
from json.encoder import encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
from typing import Any

from l5d_twisted.telemetry.histogram import QUANTILES, Histogram
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricGroup, MetricsTree
from l5d_twisted.telemetry.render import CACHE_IDLE_S, IdleForget

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


# Work units per step of a cached render (see MetricsJsonExposition).
UNITS_PER_STEP = 600
_BLOCK_UNITS = 40  # a group's keys formatted and sorted again
BLOCKS_PER_PIECE = 200


class _Block:
    """One group's part of the text, and the values it shows (see :class:`_LineCache`'s
    slots in :mod:`.prometheus`: the same reading, a kind at a time)."""

    __slots__ = (
        "names",
        "kinds",
        "counters",
        "gauges",
        "histograms",
        "counter_values",
        "gauge_values",
        "counts",
        "epochs",
        "first",
        "last",
        "text",
        "piece",
    )

    names: tuple[tuple[str, ...], ...]
    kinds: tuple[int, ...]
    counters: Any
    gauges: Any
    histograms: Any
    counter_values: list[Any] | None
    gauge_values: list[float] | None
    counts: list[int] | None
    epochs: list[int] | None
    first: str  # the block's smallest and largest key
    last: str
    text: bytes  # its entries, sorted, joined by the separator
    piece: tuple[str, str, bytes, tuple[str, ...]] | None  # what a render sorts


class MetricsJsonExposition:
    """``/admin/metrics.json`` of a tree, reusing each group's text while its values are
    those it was made with (issue 17: 700,000 keys at 5,000 services with their clients,
    0.8 s of CPU a render when every key was formatted and merge-sorted each time).

    A service, client or server group's keys all begin with the group's own name, so,
    sorted, a group's entries are one run of the whole: each group's run is kept as one
    piece of text, and a render sorts the pieces by their first key and checks that no
    two overlap (they could if one scope's name continued another's, ``svc/a`` and
    ``svc/a/b``; the permanent group's metrics are single entries).  Where they do, or
    for a ``q`` filter, the render is :func:`metrics_json_steps`' merge.  The bytes are
    those of :func:`metrics_json` (tests compare them); groups gone from the tree leave
    the cache at the end of the next complete render.  With a ``reactor``, the cached
    text is dropped after ``cache_idle_s`` without a render (see
    :class:`.render.IdleForget`).
    """

    def __init__(
        self, tree: MetricsTree, reactor: Any = None, cache_idle_s: float = CACHE_IDLE_S
    ) -> None:
        self.tree = tree
        self.idle: IdleForget | None = (
            IdleForget(reactor, self.forget, cache_idle_s) if reactor is not None else None
        )
        self._blocks: dict[bool, dict[tuple[str, ...], _Block]] = {False: {}, True: {}}
        self._split: set[tuple[str, ...]] = set()  # groups rendered as single entries
        # the last order: the pieces' first and last keys as read, and how they sort
        self._order: tuple[list[str], list[str], Any] | None = None

    def forget(self) -> bool:
        """Drop the cached text (about 1.6x the body's size): a scraper went away.  (A
        render in progress keeps the dict it started with and puts it back at its end:
        that is a render, and the next check comes ``cache_idle_s`` after it.)"""
        self._blocks = {False: {}, True: {}}
        self._order = None
        return True

    def render_steps(
        self, out: list[bytes], query: str | None = None, pretty: bool = False
    ) -> Iterator[None]:
        groups = getattr(self.tree, "metric_groups", None)
        if self.idle is not None:
            self.idle.touch()
        if query or groups is None:
            yield from metrics_json_steps(self.tree, out, query, pretty)
            return
        start = len(out)
        if (yield from self._cached_steps(groups(), out, pretty)):
            return
        del out[start:]
        yield from metrics_json_steps(self.tree, out, query, pretty)

    def _cached_steps(
        self, groups: list[MetricGroup], out: list[bytes], pretty: bool
    ) -> Generator[None, None, bool]:
        separator, colon = (",\n  ", ": ") if pretty else (",", ":")
        cache = self._blocks[pretty]
        split = self._split
        fresh: dict[tuple[str, ...], _Block] = {}
        # (first key, last key, text, the group's key or () for single entries)
        pieces: list[tuple[str, str, bytes, tuple[str, ...]]] = []
        seen_split: set[tuple[str, ...]] = set()
        units = 0
        for each in groups:
            key, group = each.key, each.metrics
            if key in fresh:
                key = ("\0",) + key  # the same key twice (a merged tree's own groups)
            if not key or key in split:
                seen_split.add(key)
                # the permanent group (its keys spread over the whole range), or one
                # whose run overlapped another's: single entries
                units += _single_entries(group, colon, pieces)
                continue
            names = tuple(group)
            metrics = list(group.values())
            block = cache.get(key)
            if block is None or block.names != names:
                block = _new_block(names, metrics)
            try:
                units += _update(block, names, metrics, separator, colon)
            except AttributeError:  # a name now of another kind (see prometheus.py)
                block = _new_block(names, metrics)
                units += _update(block, names, metrics, separator, colon)
            fresh[key] = block
            if block.text:
                piece = block.piece
                if piece is None or piece[2] is not block.text or piece[3] != key:
                    # kept from render to render: 10,000 new tuples each time were work
                    # for the young collections
                    piece = block.piece = (block.first, block.last, block.text, key)
                pieces.append(piece)
            if units >= UNITS_PER_STEP:
                units = 0
                yield None
        # Sorted by first key: the order of the last render while the pieces' first and
        # last keys are those it had (sorting 10,000 pieces was a step of milliseconds).
        firsts = list(map(_first_of, pieces))
        lasts = list(map(_last_of, pieces))
        known = self._order
        if known is not None and firsts == known[0] and lasts == known[1]:
            pieces = list(known[2](pieces))
        else:
            yield None
            perm = sorted(range(len(pieces)), key=firsts.__getitem__)
            pick = _picker(perm)
            pieces = list(pick(pieces))
            self._order = None
            if not _sorted_apart(pick(firsts), pick(lasts)):
                # One scope's name continues another's (svc/a and svc/a/b): those
                # groups' entries interleave, so they go as single entries, now and from
                # now on.
                overlapping = _overlapping(pieces)
                if any(not k or k[0] == "\0" for k in overlapping):
                    return False  # a key read twice: merged entry by entry instead
                split.update(overlapping)
                seen_split.update(overlapping)
                pieces = [p for p in pieces if p[3] not in overlapping]
                for each in groups:
                    if each.key in overlapping and fresh.pop(each.key, None) is not None:
                        _single_entries(each.metrics, colon, pieces)
                yield None
                pieces.sort()
                if _overlapping(pieces):
                    return False
            else:
                self._order = (firsts, lasts, pick)
        self._blocks[pretty] = fresh
        self._split = {key for key in split if key in seen_split}
        yield None
        if not pieces:
            out.append(b"{}\n" if pretty else b"{}")
            return True
        sep = separator.encode()
        out.append(b"{\n  " if pretty else b"{")
        for start in range(0, len(pieces), BLOCKS_PER_PIECE):
            batch = pieces[start : start + BLOCKS_PER_PIECE]
            text = sep.join([p[2] for p in batch])
            out.append(sep + text if start else text)
            yield None
        out.append(b"\n}\n" if pretty else b"}")
        return True


_first_of = operator.itemgetter(0)
_last_of = operator.itemgetter(1)


def _sorted_apart(firsts: tuple[str, ...], lasts: tuple[str, ...]) -> bool:
    """Whether each piece ends before the next begins (a pass in C)."""
    return not any(map(operator.ge, lasts[:-1], firsts[1:]))


def _overlapping(pieces: list[tuple[str, str, bytes, tuple[str, ...]]]) -> set[tuple[str, ...]]:
    """The keys of the groups whose runs overlap another's (sorted ``pieces``); ``()``
    among them if a single entry does (a key read twice)."""
    found: set[tuple[str, ...]] = set()
    for i in range(1, len(pieces)):
        if pieces[i - 1][1] >= pieces[i][0]:
            found.add(pieces[i - 1][3])
            found.add(pieces[i][3])
    return found


def _single_entries(
    group: dict[Any, Any], colon: str, pieces: list[tuple[str, str, bytes, tuple[str, ...]]]
) -> int:
    entries: dict[str, Any] = {}
    for name, metric in list(group.items()):
        _add(entries, name, metric)
    for k, v in entries.items():
        pieces.append((k, k, _entry(k, v, colon).encode(), ()))
    return len(group) * 3 + len(entries)


def _entry(key: str, value: Any, colon: str) -> str:
    return encode_basestring_ascii(key) + colon + _json_value(value)


_KINDS: dict[tuple[int, ...], tuple[int, ...]] = {}


def _picker(indexes: list[int]) -> Any:
    from l5d_twisted.telemetry.prometheus import _picker as picker

    return picker(indexes)


def _new_block(names: tuple[tuple[str, ...], ...], metrics: list[Any]) -> _Block:
    from l5d_twisted.telemetry.prometheus import _GAUGE, _HISTOGRAM, _kind_of

    kinds = tuple(_kind_of(m) for m in metrics)
    kinds = _KINDS.setdefault(kinds, kinds)  # shared by the groups of one layout
    if len(_KINDS) > 10_000:
        _KINDS.clear()
    block = _Block()
    block.names = names
    block.kinds = kinds
    block.counters = _picker([i for i, k in enumerate(kinds) if k == 0])
    block.gauges = _picker([i for i, k in enumerate(kinds) if k == _GAUGE])
    block.histograms = _picker([i for i, k in enumerate(kinds) if k == _HISTOGRAM])
    block.counter_values = block.gauge_values = block.counts = block.epochs = None
    block.first = block.last = ""
    block.text = b""
    block.piece = None
    return block


_value_of = operator.attrgetter("value")
_count_of = operator.attrgetter("count")
_epoch_of = operator.attrgetter("epoch")


def _update(
    block: _Block,
    names: tuple[tuple[str, ...], ...],
    metrics: list[Any],
    separator: str,
    colon: str,
) -> int:
    """Make the block's text again if any of its values changed; the work, in units."""
    counters = block.counters(metrics)
    counter_values = list(map(_value_of, counters))
    gauges = block.gauges(metrics)
    try:
        gauge_values = [g.value() for g in gauges]  # what GaugeMetric.read does
    except Exception:
        gauge_values = [g.read() for g in gauges]  # which logs the broken one
    histograms = block.histograms(metrics)
    counts = list(map(_count_of, histograms))
    epochs = list(map(_epoch_of, histograms))
    if (
        counter_values == block.counter_values
        and gauge_values == block.gauge_values
        and counts == block.counts
        and epochs == block.epochs
    ):
        return len(metrics)
    block.counter_values, block.gauge_values = counter_values, gauge_values
    block.counts, block.epochs = counts, epochs
    # The entries in reading order (a name read twice: the later value wins), as _add
    # makes them, with the values just compared.
    entries: dict[str, Any] = {}
    c = g = h = 0
    for name, kind in zip(names, block.kinds):
        key = "/".join(name)
        if kind == 0:
            entries[key] = counter_values[c]
            c += 1
        elif kind == 1:
            value = gauge_values[g]
            entries[key] = value if math.isfinite(value) else None
            g += 1
        elif kind == 2:
            summary = histograms[h].summary()
            h += 1
            entries[key + ".count"] = summary.count
            entries[key + ".sum"] = summary.sum
            entries[key + ".avg"] = summary.avg
            entries[key + ".min"] = summary.min
            entries[key + ".max"] = summary.max
            for (_, suffix, _), value in zip(QUANTILES, summary.percentiles):
                entries[key + "." + suffix] = value
    if not entries:
        block.first = block.last = ""
        block.text = b""
        return len(metrics) + _BLOCK_UNITS
    keys = sorted(entries)
    block.first, block.last = keys[0], keys[-1]
    block.text = separator.join([_entry(k, entries[k], colon) for k in keys]).encode()
    return len(metrics) + _BLOCK_UNITS + len(keys)
