"""The stats API every layer records into (Finagle's StatsReceiver).

Names are tree paths, as in linkerd 1's metrics.json: a router's service stats are
recorded under ``rt/<router>/service/<svc>/...`` by ``stats.scope("rt", router,
"service", svc)``.  Exposition (Prometheus labels, JSON) is the telemetry package's job;
recording must stay cheap: ``incr`` and ``add`` are a few attribute operations.

* ``counter(*name).incr(n=1)``: a monotonically growing count.
* ``stat(*name).add(value)``: a histogram (latencies in ms, sizes).
* ``gauge(*name, fn=...)``: a value read by ``fn()`` at exposition; ``.remove()`` ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Counter(Protocol):
    def incr(self, n: int = 1) -> None: ...


class Stat(Protocol):
    def add(self, value: float) -> None: ...


class Gauge(Protocol):
    def remove(self) -> None: ...


class StatsReceiver(Protocol):
    def counter(self, *name: str) -> Counter: ...

    def stat(self, *name: str) -> Stat: ...

    def gauge(self, *name: str, fn: Callable[[], float]) -> Gauge: ...

    def scope(self, *name: str) -> StatsReceiver: ...


class _NullMetric:
    __slots__ = ()

    def incr(self, n: int = 1) -> None:
        pass

    def add(self, value: float) -> None:
        pass

    def remove(self) -> None:
        pass


_NULL_METRIC = _NullMetric()


class NullStatsReceiver:
    """Records nothing; for tests and for layers built without telemetry."""

    def counter(self, *name: str) -> Counter:
        return _NULL_METRIC

    def stat(self, *name: str) -> Stat:
        return _NULL_METRIC

    def gauge(self, *name: str, fn: Callable[[], float]) -> Gauge:
        return _NULL_METRIC

    def scope(self, *name: str) -> StatsReceiver:
        return self


NULL_STATS: StatsReceiver = NullStatsReceiver()
