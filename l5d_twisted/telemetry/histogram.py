"""Histograms with fixed log-linear buckets: cheap to add to, summarised at read time.

A value ``v > 0`` is written ``m * 2**e`` with ``m`` in ``[0.5, 1)`` (``math.frexp``); each
power-of-two range is split into :data:`SUB_BUCKETS` equal buckets, so a bucket's width is
at most 1/16 of its lower bound (reported values are within ~3% of the truth).  ``add``
does one C call, a dict increment and a handful of attribute operations; percentiles,
min, max and avg are computed only when someone reads them.

Two kinds of figures, on purpose:

* ``count`` and ``sum`` are cumulative since start, so Prometheus' ``rate()`` works on
  ``<name>_count`` / ``<name>_sum``;
* percentiles, ``min``, ``max`` and ``avg`` describe a recent window: the buckets of the
  current period plus the previous one (the tree rotates periods, default every 30 s, so a
  summary covers the last 30-60 s), like linkerd 1's latched histograms, so a latency
  spike shows up and also goes away.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

SUB_BUCKETS = 16
_epochs = itertools.count(1)
# Index of the bucket holding zero and negative values (below any frexp-derived index).
_ZERO_INDEX = -(10**9)

# The quantiles linkerd 1 reports, with their metrics.json suffixes and Prometheus labels.
QUANTILES: tuple[tuple[float, str, str], ...] = (
    (0.5, "p50", "0.5"),
    (0.9, "p90", "0.9"),
    (0.95, "p95", "0.95"),
    (0.99, "p99", "0.99"),
    (0.999, "p9990", "0.999"),
    (0.9999, "p9999", "0.9999"),
)


def bucket_index(value: float) -> int:
    if value <= 0.0:
        return _ZERO_INDEX
    mantissa, exponent = math.frexp(value)
    return exponent * SUB_BUCKETS + int((mantissa - 0.5) * (2 * SUB_BUCKETS))


def bucket_bounds(index: int) -> tuple[float, float]:
    """The ``[low, high)`` range of values a bucket holds."""
    if index == _ZERO_INDEX:
        return (0.0, 0.0)
    exponent, sub = divmod(index, SUB_BUCKETS)
    step = 1.0 / (2 * SUB_BUCKETS)
    low = math.ldexp(0.5 + sub * step, exponent)
    high = math.ldexp(0.5 + (sub + 1) * step, exponent)
    return (low, high)


def bucket_value(index: int) -> float:
    """The value a bucket stands for when reporting a percentile (its midpoint)."""
    low, high = bucket_bounds(index)
    return (low + high) / 2.0


@dataclass(slots=True)
class Summary:
    """What a histogram shows when read."""

    count: int  # cumulative
    sum: float  # cumulative
    window_count: int
    min: float
    max: float
    avg: float
    percentiles: tuple[float, ...]  # in the order of QUANTILES


class Histogram:
    """Implements the ``Stat`` protocol: ``add(value)``."""

    __slots__ = (
        "count",
        "sum",
        "_cur",
        "_cur_sum",
        "_cur_min",
        "_cur_max",
        "_prev",
        "_prev_sum",
        "_prev_min",
        "_prev_max",
        "group",
        "epoch",
        "__weakref__",
    )

    def __init__(self, group: object = None) -> None:
        self.count = 0
        self.sum = 0.0
        self._cur: dict[int, int] = {}
        self._cur_sum = 0.0
        self._cur_min = math.inf
        self._cur_max = -math.inf
        self._prev: dict[int, int] = {}
        self._prev_sum = 0.0
        self._prev_min = math.inf
        self._prev_max = -math.inf
        # The expiry group this histogram belongs to; held so the group lives while
        # anyone holds one of its metrics (see metrics.MetricsTree).
        self.group = group
        # Changes whenever the window changes other than by ``add`` (which changes
        # ``count``): unique across histograms, so (count, epoch) identifies what a
        # summary shows (exposition caches rendered text by it; see prometheus.py).
        self.epoch = next(_epochs)

    def add(self, value: float) -> None:
        # bucket_index() inlined: this is the hot path.
        if value > 0.0:
            try:
                mantissa, exponent = math.frexp(value)
                index = exponent * SUB_BUCKETS + int((mantissa - 0.5) * (2 * SUB_BUCKETS))
            except OverflowError:
                return  # infinity: not a measurement, and it would poison sum/avg
        elif value == value:
            index = _ZERO_INDEX
        else:
            return  # NaN
        self.count += 1
        self.sum += value
        self._cur_sum += value
        if value > self._cur_max:
            self._cur_max = value
        if value < self._cur_min:
            self._cur_min = value
        cur = self._cur
        cur[index] = cur.get(index, 0) + 1

    def rotate(self) -> None:
        """Start a new period; the previous one is forgotten (called by the tree)."""
        self._prev = self._cur
        self._prev_sum = self._cur_sum
        self._prev_min = self._cur_min
        self._prev_max = self._cur_max
        self._cur = {}
        self._cur_sum = 0.0
        self._cur_min = math.inf
        self._cur_max = -math.inf
        self.epoch = next(_epochs)

    def window(self) -> tuple[dict[int, int], float, float, float]:
        """The recent window: merged bucket counts, min, max and sum."""
        merged = dict(self._prev)
        for index, n in self._cur.items():
            merged[index] = merged.get(index, 0) + n
        low = min(self._prev_min, self._cur_min)
        high = max(self._prev_max, self._cur_max)
        return merged, low, high, self._prev_sum + self._cur_sum

    def summary(self) -> Summary:
        cur, prev = self._cur, self._prev
        if not prev or not cur:  # one period is empty: no merged copy needed
            merged = cur or prev
        else:
            merged = dict(prev)
            for index, n in cur.items():
                merged[index] = merged.get(index, 0) + n
        return summarize(
            merged,
            min(self._prev_min, self._cur_min),
            max(self._prev_max, self._cur_max),
            self._prev_sum + self._cur_sum,
            self.count,
            self.sum,
        )

    @property
    def activity(self) -> int:
        """Changes whenever something is added (for idle expiry)."""
        return self.count

    def state(self) -> HistogramState:
        """Everything it holds, copied (a worker's snapshot for the mesh's merged view)."""
        return (
            self.count,
            self.sum,
            dict(self._cur),
            self._cur_sum,
            self._cur_min,
            self._cur_max,
            dict(self._prev),
            self._prev_sum,
            self._prev_min,
            self._prev_max,
        )

    def load(self, state: HistogramState) -> None:
        """Become what ``state`` describes (see :func:`merge_states`)."""
        (
            self.count,
            self.sum,
            self._cur,
            self._cur_sum,
            self._cur_min,
            self._cur_max,
            self._prev,
            self._prev_sum,
            self._prev_min,
            self._prev_max,
        ) = state
        self.epoch = next(_epochs)


# count, sum, then (buckets, sum, min, max) of the current and the previous period.
HistogramState = tuple[
    int, float, dict[int, int], float, float, float, dict[int, int], float, float, float
]


def merge_states(states: list[HistogramState]) -> HistogramState:
    """Several histograms as one, exactly: bucket counts, counts and sums added, min of
    mins, max of maxes, period by period (workers' periods rotate at their own times)."""
    count, total = 0, 0.0
    cur: dict[int, int] = {}
    prev: dict[int, int] = {}
    cur_sum = prev_sum = 0.0
    cur_min = prev_min = math.inf
    cur_max = prev_max = -math.inf
    for c, s, c_b, c_s, c_lo, c_hi, p_b, p_s, p_lo, p_hi in states:
        count += c
        total += s
        for index, n in c_b.items():
            cur[index] = cur.get(index, 0) + n
        for index, n in p_b.items():
            prev[index] = prev.get(index, 0) + n
        cur_sum += c_s
        prev_sum += p_s
        cur_min, cur_max = min(cur_min, c_lo), max(cur_max, c_hi)
        prev_min, prev_max = min(prev_min, p_lo), max(prev_max, p_hi)
    return (count, total, cur, cur_sum, cur_min, cur_max, prev, prev_sum, prev_min, prev_max)


# The midpoint of every bucket met so far (bucket_value is two ldexp calls and a divmod;
# a summary needs up to seven): at most ~34,000 indexes exist (every float exponent).
_MIDPOINTS: dict[int, float] = {}
_RANKED = tuple(q for q, _, _ in QUANTILES)


def summarize(
    buckets: dict[int, int],
    low: float,
    high: float,
    window_sum: float,
    count: int = 0,
    total: float = 0.0,
) -> Summary:
    """Percentiles etc. of a window's buckets (``low``/``high``: the exact min and max)."""
    window_count = sum(buckets.values())
    if window_count == 0:
        return Summary(count, total, 0, 0.0, 0.0, 0.0, _ZEROS)
    # One walk up the buckets for all quantiles (they are in increasing order).
    ranks = [max(1, math.ceil(q * window_count)) for q in _RANKED]
    percentiles: list[float] = []
    rank = ranks[0]
    wanted = len(ranks)
    midpoints = _MIDPOINTS
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        while seen >= rank:
            value = midpoints.get(index)
            if value is None:
                value = midpoints[index] = bucket_value(index)
            # A bucket's midpoint may lie outside what was actually seen.
            percentiles.append(low if value < low else high if value > high else value)
            if len(percentiles) == wanted:
                break
            rank = ranks[len(percentiles)]
        else:
            continue
        break
    while len(percentiles) < wanted:  # not reached: the last bucket holds rank window_count
        percentiles.append(high)
    return Summary(
        count, total, window_count, low, high, window_sum / window_count, tuple(percentiles)
    )


_ZEROS = tuple(0.0 for _ in QUANTILES)


class SummaryMerge:
    """Several histograms' windows merged one ``add`` at a time (a caller may spread the
    adds over steps), then read as one :class:`Summary`."""

    __slots__ = ("buckets", "low", "high", "window_sum", "count", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.low, self.high, self.window_sum, self.count, self.total = (
            math.inf,
            -math.inf,
            0.0,
            0,
            0.0,
        )

    def add(self, histogram: Histogram) -> None:
        merged, h_low, h_high, h_sum = histogram.window()
        buckets = self.buckets
        for index, n in merged.items():
            buckets[index] = buckets.get(index, 0) + n
        self.low, self.high, self.window_sum = (
            min(self.low, h_low),
            max(self.high, h_high),
            self.window_sum + h_sum,
        )
        self.count += histogram.count
        self.total += histogram.sum

    def summary(self) -> Summary:
        return summarize(self.buckets, self.low, self.high, self.window_sum, self.count, self.total)


def merged_summary(histograms: list[Histogram]) -> Summary:
    """One summary over several histograms' windows (e.g. all services of a router)."""
    merge = SummaryMerge()
    for histogram in histograms:
        merge.add(histogram)
    return merge.summary()
