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

Per service and client rows report the same figures, rates over the last ~30 s.  A sample
costs one walk of the tree; ``to_json()`` is what ``/admin/dashboard.json`` serves.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from l5d_twisted.telemetry.histogram import Histogram, Summary, merged_summary
from l5d_twisted.telemetry.metrics import CounterMetric, MetricsTree

log = Logger()

TABLE_RATE_WINDOW_S = 30.0


@dataclass
class _Entity:
    """Counters and latency of one service or client, as read in one sample."""

    requests: int = 0
    success: int = 0
    failures: int = 0
    latency: list[Histogram] = field(default_factory=list)


@dataclass
class _History:
    points: collections.deque[tuple[float, int, int, int]]

    def rate(self, window_s: float) -> tuple[float | None, float | None]:
        """(requests per second, success rate) over roughly the last ``window_s``."""
        if len(self.points) < 2:
            return None, None
        newest = self.points[-1]
        oldest = self.points[-2]
        for point in reversed(self.points):
            if newest[0] - point[0] > window_s:
                break
            oldest = point
        return _rates(oldest, newest)


def _rates(old: tuple[float, int, int, int], new: tuple[float, int, int, int]) -> tuple[float | None, float | None]:
    dt = new[0] - old[0]
    if dt <= 0:
        return None, None
    # Counters only grow, unless a scope was dropped and created anew: never negative.
    requests = max(0, new[1] - old[1])
    success = max(0, new[2] - old[2])
    failures = max(0, new[3] - old[3])
    decided = success + failures
    return requests / dt, (success / decided if decided else None)


def _latency(summary: Summary) -> dict[str, float | None]:
    if summary.window_count == 0:
        return {"p50": None, "p95": None, "p99": None}
    p = summary.percentiles
    return {"p50": round(p[0], 3), "p95": round(p[2], 3), "p99": round(p[3], 3)}


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
        # router -> series of (t, rps, success_rate, p50, p95, p99)
        self._series: dict[str, collections.deque[tuple[float, Any, Any, Any, Any, Any]]] = {}
        self._router_totals: dict[str, tuple[float, int, int, int]] = {}
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self.sample)
            self._loop.clock = self.clock
            self._loop.start(self.interval_s, now=True).addErrback(lambda f: log.failure("dashboard sampling failed", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _read_tree(self) -> dict[tuple[str, str, str], _Entity]:
        entities: dict[tuple[str, str, str], _Entity] = {}
        for name, metric in self.tree.metrics():
            if len(name) != 5 or name[0] != "rt" or name[2] not in ("service", "client"):
                continue
            key = (name[1], name[2], name[3])
            leaf = name[4]
            if isinstance(metric, CounterMetric) and leaf in ("requests", "success", "failures"):
                entity = entities.setdefault(key, _Entity())
                setattr(entity, leaf, metric.value)
            elif isinstance(metric, Histogram) and leaf == "request_latency_ms":
                entities.setdefault(key, _Entity()).latency.append(metric)
        return entities

    def sample(self) -> None:
        now = self.clock.seconds()
        entities = self._read_tree()
        for key in list(self._entities):
            if key not in entities:
                del self._entities[key]
        for key, entity in entities.items():
            history = self._entities.get(key)
            if history is None:
                history = self._entities[key] = _History(collections.deque(maxlen=self._maxlen))
            history.points.append((now, entity.requests, entity.success, entity.failures))
        self._latest = entities

        routers = set(self.router_labels()) | {key[0] for key in entities}
        for router in routers:
            services = [e for (r, kind, _), e in entities.items() if r == router and kind == "service"]
            totals = (
                now,
                sum(e.requests for e in services),
                sum(e.success for e in services),
                sum(e.failures for e in services),
            )
            previous = self._router_totals.get(router)
            self._router_totals[router] = totals
            series = self._series.get(router)
            if series is None:
                series = self._series[router] = collections.deque(maxlen=self._maxlen)
            if previous is None:
                continue  # rates need two samples
            rps, success_rate = _rates(previous, totals)
            latency = _latency(merged_summary([h for e in services for h in e.latency]))
            if rps == 0:
                latency = {"p50": None, "p95": None, "p99": None}
            series.append((now, _round(rps, 3), _round(success_rate), latency["p50"], latency["p95"], latency["p99"]))
        for router in list(self._series):
            if router not in routers:
                del self._series[router]
                self._router_totals.pop(router, None)

    def _rows(self, router: str, kind: str) -> list[dict[str, Any]]:
        rows = []
        for (r, k, name), entity in self._latest.items():
            if r != router or k != kind:
                continue
            history = self._entities.get((r, k, name))
            rps, success_rate = history.rate(TABLE_RATE_WINDOW_S) if history else (None, None)
            row: dict[str, Any] = {
                "name": name,
                "requests": entity.requests,
                "failures": entity.failures,
                "rps": _round(rps, 3),
                "success_rate": _round(success_rate),
            }
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
            totals = self._router_totals.get(router)
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
                        "requests": totals[1] if totals else 0,
                    },
                    "services": self._rows(router, "service"),
                    "clients": self._rows(router, "client"),
                }
            )
        return {"interval_s": self.interval_s, "now": round(self.clock.seconds(), 3), "routers": routers}
