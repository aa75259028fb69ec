"""The dashboard's figures, sampled server-side so a reload keeps the last 10 minutes.

Every ``interval_s`` (default 5 s, a ``LoopingCall`` on the clock given) the sampler reads
the ``requests``/``success``/``failures`` counters and ``request_latency_ms`` histograms of
every ``rt/<router>/service/<svc>`` and ``rt/<router>/client/<id>`` scope and keeps a ring
buffer per router (``history_s``, default 600 s):

* ``rps``: logical requests per second over the last interval (sum of the router's
  services);
* ``success_rate``: successes / (successes + failures) over the last interval (``null``
  when there were none);
* ``p50``/``p95``/``p99``: latency in ms over all the router's services, from the
  histograms' recent window (30-60 s, see telemetry.histogram).

Per service and client rows report the same figures, rates over the last ~30 s, plus the
resilience figures of their scope (issue 7): a service's ``retries/total`` as
``retries_rps`` and its ``retries/budget_exhausted`` count; a client's
``loadbalancer/{size,available}`` gauges, ``failure_accrual/removals`` and
``retries/requeues`` counts (``null`` where the scope has no such metric, e.g. no
balancer yet).  A sample costs one walk of the tree; ``to_json()`` is what
``/admin/dashboard.json`` serves.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from l5d_twisted.telemetry.histogram import Histogram, Summary, merged_summary
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree

log = Logger()

TABLE_RATE_WINDOW_S = 30.0
MAX_GONE = 4096  # expired entities whose last counts are remembered (bounded under churn)


# (t, requests, success, failures, retries): what rates are computed from.
_Point = tuple[float, int, int, int, int]


# The counters and gauges a row reports as read, by their name below the scope; rates are
# derived from the counters ``requests``/``success``/``failures``/``retries/total``.
_COUNTS: dict[tuple[str, ...], str] = {
    ("requests",): "requests",
    ("success",): "success",
    ("failures",): "failures",
    ("retries", "total"): "retries",
    ("retries", "budget_exhausted"): "budget_exhausted",
    ("retries", "requeues"): "requeues",
    ("failure_accrual", "removals"): "removals",
}
_GAUGES: dict[tuple[str, ...], str] = {
    ("loadbalancer", "size"): "lb_size",
    ("loadbalancer", "available"): "lb_available",
}


@dataclass
class _Entity:
    """Counters, gauges and latency of one service or client, as read in one sample."""

    requests: int = 0
    success: int = 0
    failures: int = 0
    retries: int = 0
    # None: the scope has no such metric (a row shows "–", not a misleading 0).
    budget_exhausted: int | None = None
    requeues: int | None = None
    removals: int | None = None
    lb_size: int | None = None
    lb_available: int | None = None
    latency: list[Histogram] = field(default_factory=list)

    def point(self, now: float) -> _Point:
        return (now, self.requests, self.success, self.failures, self.retries)


@dataclass
class _Rates:
    rps: float | None = None
    success_rate: float | None = None
    retries_rps: float | None = None


@dataclass
class _History:
    points: collections.deque[_Point]

    def rate(self, window_s: float) -> _Rates:
        """Rates over roughly the last ``window_s``."""
        if len(self.points) < 2:
            return _Rates()
        newest = self.points[-1]
        oldest = self.points[-2]
        for point in reversed(self.points):
            if newest[0] - point[0] > window_s:
                break
            oldest = point
        return _rates(oldest, newest)


def _deltas(old: _Point | None, new: _Point) -> tuple[int, ...]:
    """(requests, success, failures, retries) counted between two points."""
    if old is None:
        return new[1:]
    # Counters only grow, unless a scope was dropped and created anew: never negative.
    return tuple(max(0, n - o) for n, o in zip(new[1:], old[1:]))


def _rates_of(dt: float, deltas: tuple[int, ...]) -> _Rates:
    if dt <= 0:
        return _Rates()
    requests, success, failures, retries = deltas
    decided = success + failures
    return _Rates(requests / dt, success / decided if decided else None, retries / dt)


def _rates(old: _Point, new: _Point) -> _Rates:
    return _rates_of(new[0] - old[0], _deltas(old, new))


def _latency(summary: Summary) -> dict[str, float | None]:
    if summary.window_count == 0:
        return {"p50": None, "p95": None, "p99": None}
    p = summary.percentiles
    return {"p50": round(p[0], 3), "p95": round(p[2], 3), "p99": round(p[3], 3)}


def _whole(value: float) -> int | None:
    """A count read from a gauge; a broken gauge reads NaN, which JSON cannot carry."""
    return round(value) if math.isfinite(value) else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class DashboardSampler:
    def __init__(
        self,
        tree: MetricsTree,
        clock: Any,
        router_labels: Callable[[], Iterable[str]] = lambda: (),
        interval_s: float = 5.0,
        history_s: float = 600.0,
    ) -> None:
        self.tree = tree
        self.clock = clock
        self.router_labels = router_labels
        self.interval_s = interval_s
        self._maxlen = int(history_s / interval_s) + 1
        # (router, kind, name) -> counter history; kind is "service" or "client"
        self._entities: dict[tuple[str, str, str], _History] = {}
        self._latest: dict[tuple[str, str, str], _Entity] = {}
        # The last point of entities that left the tree (expired), newest last: an expired
        # scope that comes back continues its counters, and this is their baseline.
        self._gone: collections.OrderedDict[tuple[str, str, str], _Point] = collections.OrderedDict()
        # router -> series of (t, rps, success_rate, p50, p95, p99)
        self._series: dict[str, collections.deque[tuple[float, Any, Any, Any, Any, Any]]] = {}
        self._router_requests: dict[str, int] = {}  # router -> its services' requests now
        self._last_sample: float | None = None
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self._sample_logged)
            self._loop.clock = self.clock
            self._loop.start(self.interval_s, now=True)

    def _sample_logged(self) -> None:
        # A LoopingCall stops at the first exception: one bad sample must not freeze the
        # dashboard for good.
        try:
            self.sample()
        except Exception:
            log.failure("dashboard sampling failed")

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _read_tree(self) -> dict[tuple[str, str, str], _Entity]:
        entities: dict[tuple[str, str, str], _Entity] = {}
        for name, metric in self.tree.metrics():
            if len(name) not in (5, 6) or name[0] != "rt" or name[2] not in ("service", "client"):
                continue
            key = (name[1], name[2], name[3])
            below = name[4:]
            if isinstance(metric, CounterMetric) and below in _COUNTS:
                setattr(entities.setdefault(key, _Entity()), _COUNTS[below], metric.value)
            elif isinstance(metric, GaugeMetric) and below in _GAUGES:
                setattr(entities.setdefault(key, _Entity()), _GAUGES[below], _whole(metric.read()))
            elif isinstance(metric, Histogram) and below == ("request_latency_ms",):
                entities.setdefault(key, _Entity()).latency.append(metric)
        return entities

    def sample(self) -> None:
        now = self.clock.seconds()
        entities = self._read_tree()
        for key in list(self._entities):
            if key not in entities:
                points = self._entities.pop(key).points
                if points:
                    self._gone[key] = points[-1]
        while len(self._gone) > MAX_GONE:
            self._gone.popitem(last=False)
        # A router's figures over this interval: the sum of its services' own deltas, so
        # a service whose metrics expired (it left the tree, with all it ever counted)
        # does not read as a drop in traffic.
        router_deltas: dict[str, list[int]] = {}
        for key, entity in entities.items():
            history = self._entities.get(key)
            if history is None:
                history = self._entities[key] = _History(collections.deque(maxlen=self._maxlen))
                baseline = self._gone.pop(key, None)
            else:
                baseline = history.points[-1]
            point = entity.point(now)
            if key[1] == "service":
                sums = router_deltas.setdefault(key[0], [0, 0, 0, 0])
                for i, delta in enumerate(_deltas(baseline, point)):
                    sums[i] += delta
            history.points.append(point)
        self._latest = entities
        dt = now - self._last_sample if self._last_sample is not None else 0.0
        self._last_sample = now

        routers = set(self.router_labels()) | {key[0] for key in entities}
        for router in routers:
            services = [e for (r, kind, _), e in entities.items() if r == router and kind == "service"]
            first_sample = router not in self._router_requests
            self._router_requests[router] = sum(e.requests for e in services)
            series = self._series.get(router)
            if series is None:
                series = self._series[router] = collections.deque(maxlen=self._maxlen)
            if first_sample:
                continue  # rates need two samples
            rates = _rates_of(dt, tuple(router_deltas.get(router, (0, 0, 0, 0))))
            latency = _latency(merged_summary([h for e in services for h in e.latency]))
            if rates.rps == 0:
                latency = {"p50": None, "p95": None, "p99": None}
            series.append((now, _round(rates.rps, 3), _round(rates.success_rate), latency["p50"], latency["p95"], latency["p99"]))
        for router in list(self._series):
            if router not in routers:
                del self._series[router]
                self._router_requests.pop(router, None)

    def _rows(self, router: str, kind: str) -> list[dict[str, Any]]:
        rows = []
        for (r, k, name), entity in self._latest.items():
            if r != router or k != kind:
                continue
            history = self._entities.get((r, k, name))
            rates = history.rate(TABLE_RATE_WINDOW_S) if history else _Rates()
            row: dict[str, Any] = {
                "name": name,
                "requests": entity.requests,
                "failures": entity.failures,
                "rps": _round(rates.rps, 3),
                "success_rate": _round(rates.success_rate),
            }
            if kind == "service":
                row["retries_rps"] = _round(rates.retries_rps, 3)
                row["budget_exhausted"] = entity.budget_exhausted
            else:
                row["lb_size"] = entity.lb_size
                row["lb_available"] = entity.lb_available
                row["removals"] = entity.removals
                row["requeues"] = entity.requeues
            row.update(_latency(merged_summary(entity.latency)))
            rows.append(row)
        # Worst success rate first; unknown rates last, then busiest first.
        rows.sort(key=lambda r: (r["success_rate"] is None, r["success_rate"] or 0.0, -(r["rps"] or 0.0)))
        return rows

    def to_json(self) -> dict[str, Any]:
        routers = []
        for router in sorted(self._series):
            points = list(self._series[router])
            series = {
                "t": [round(p[0], 3) for p in points],
                "rps": [p[1] for p in points],
                "success_rate": [p[2] for p in points],
                "p50": [p[3] for p in points],
                "p95": [p[4] for p in points],
                "p99": [p[5] for p in points],
            }
            last = points[-1] if points else (None, None, None, None, None, None)
            routers.append(
                {
                    "label": router,
                    "series": series,
                    "current": {
                        "rps": last[1],
                        "success_rate": last[2],
                        "p50": last[3],
                        "p95": last[4],
                        "p99": last[5],
                        "requests": self._router_requests.get(router, 0),
                    },
                    "services": self._rows(router, "service"),
                    "clients": self._rows(router, "client"),
                }
            )
        return {"interval_s": self.interval_s, "now": round(self.clock.seconds(), 3), "routers": routers}
