"""The metrics tree: where every layer records, and what exposition reads.

``MetricsTree(clock)`` implements the :mod:`~l5d_twisted.telemetry.stats` API.  Its
``.stats`` is the root :class:`StatsReceiver`; ``stats.scope("rt", "outgoing", "service",
"svc/hello").counter("requests")`` is the metric linkerd 1 calls
``rt/outgoing/service/svc/hello/requests``.  Every segment loses one leading ``/``, so a
router may pass ids as they print (``"/svc/hello"`` -> ``svc/hello``); a segment may itself
contain ``/`` (a service or client id is one segment, which is what lets exposition turn
it into one Prometheus label).

Recording is cheap: ``counter.incr(n)`` is one attribute update, ``stat.add(v)`` a bucket
increment plus a few comparisons (see :mod:`.histogram`); nothing reads the clock.

**Idle expiry.**  linkerd 1 learnt that per-service and per-client metrics explode with
pod churn.  Metrics are kept in *groups*: one per ``rt/<r>/service/<svc>``,
``rt/<r>/client/<id>`` and ``rt/<r>/server/<ip>/<port>`` scope, plus one permanent group
for everything else.  Every tick (a ``LoopingCall`` on the clock given, every TTL/10
between 0.5 s and 30 s unless ``tick_s`` fixes it) the tree compares each group's
counters and histogram counts with the last tick; a group unchanged for ``expiry_ttl_s``
(default 600 s; the ``io.l5d.prometheus`` telemeter's ``metricsExpiryTtlSecs`` knob
changes it, 0 disables expiry) and with nothing ``pending`` leaves the tree and all
exposition.  Its metric objects live on while someone (a router) holds them: the
group becomes *dormant*, referenced weakly, and the first change seen to it (checked at
each tick and each read) puts it back, with its counters continuing where they were.  A
dormant group nobody references is garbage collected.  Ticks also rotate histogram
windows, every ``window_s`` (30 s).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeAlias, TypeVar

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from l5d_twisted.telemetry.histogram import Histogram
from l5d_twisted.telemetry.stats import Counter, Gauge, Stat, StatsReceiver

log = Logger()

Name: TypeAlias = tuple[str, ...]

DEFAULT_EXPIRY_TTL_S = 600.0
DEFAULT_WINDOW_S = 30.0


def _tick_for(ttl_s: float) -> float:
    """Check often enough that a metric outlives its TTL by at most ~10%."""
    if ttl_s <= 0:
        return DEFAULT_WINDOW_S
    return min(DEFAULT_WINDOW_S, max(0.5, ttl_s / 10.0))


class CounterMetric:
    """Implements ``Counter``.  ``value`` only grows."""

    __slots__ = ("value", "group", "__weakref__")

    def __init__(self, group: object = None) -> None:
        self.value = 0
        self.group = group

    def incr(self, n: int = 1) -> None:
        self.value += n

    @property
    def activity(self) -> int:
        return self.value


class GaugeMetric:
    """Implements ``Gauge``: a function read at exposition time."""

    __slots__ = ("fn", "group", "name", "__weakref__")

    def __init__(self, fn: Callable[[], float], group: _Group | None, name: Name) -> None:
        self.fn = fn
        self.group = group
        self.name = name

    def read(self) -> float:
        try:
            return float(self.fn())
        except Exception:
            # A broken gauge must not break exposition of everything else.
            log.failure("gauge {name} failed", name="/".join(self.name))
            return float("nan")

    def remove(self) -> None:
        group = self.group
        if group is None:
            return
        for metrics in (group.metrics, group.dormant):
            if metrics is not None and metrics.get(self.name) is self:
                del metrics[self.name]

    activity = 0


Metric: TypeAlias = CounterMetric | Histogram | GaugeMetric
_M = TypeVar("_M", CounterMetric, Histogram)
_T = TypeVar("_T")


class _Group:
    """The metrics of one expirable scope (or the permanent rest).

    A dormant group holds its metrics weakly (``dormant``), so that once no layer holds
    any of them the metrics and the group are freed by reference counting: metrics hold
    their group, and a group holding them strongly made a cycle, left for a full GC.
    """

    __slots__ = ("key", "metrics", "dormant", "signature", "last_active", "__weakref__")

    def __init__(self, key: Name, now: float) -> None:
        self.key = key
        self.metrics: dict[Name, Metric] = {}
        self.dormant: weakref.WeakValueDictionary[Name, Metric] | None = None
        self.signature = 0
        self.last_active = now

    def current_signature(self) -> int:
        metrics = self.metrics if self.dormant is None else self.dormant
        return sum(m.activity for m in metrics.values())

    def sleep(self) -> None:
        self.dormant = weakref.WeakValueDictionary(self.metrics)
        self.metrics = {}

    def wake(self) -> None:
        if self.dormant is not None:
            self.metrics, self.dormant = dict(self.dormant), None

    def has_pending(self) -> bool:
        """Requests in flight (a long stream updates no counter, yet is not idle)."""
        for name, metric in self.metrics.items():
            if isinstance(metric, GaugeMetric) and name[-1] == "pending" and metric.read() > 0:
                return True
        return False


class MetricGroup(Protocol):
    """A group of metrics as :meth:`MetricsTree.metric_groups` lists them."""

    key: Name
    metrics: dict[Name, Metric]


def group_key(name: Name) -> Name:
    """The expirable scope a metric belongs to, or ``()`` for the permanent group."""
    if len(name) >= 5 and name[0] == "rt":
        kind = name[2]
        if kind in ("service", "client"):
            return name[:4]
        if kind == "server" and len(name) >= 6:
            return name[:5]
    return ()


def _normalise(segments: tuple[str, ...]) -> Name:
    out = []
    for segment in segments:
        segment = str(segment)
        if segment.startswith("/"):
            segment = segment[1:]
        if segment:
            out.append(segment)
    return tuple(out)


class MetricsTree:
    def __init__(
        self,
        clock: Any,
        expiry_ttl_s: float = DEFAULT_EXPIRY_TTL_S,
        tick_s: float | None = None,
        window_s: float = DEFAULT_WINDOW_S,
        start: bool = True,
    ) -> None:
        self.clock = clock
        self.expiry_ttl_s = expiry_ttl_s
        self._fixed_tick_s = tick_s
        self.tick_s = tick_s if tick_s is not None else _tick_for(expiry_ttl_s)
        self.window_s = window_s
        self._last_rotation = clock.seconds()
        self._groups: dict[Name, _Group] = {(): _Group((), clock.seconds())}
        self._dormant: weakref.WeakValueDictionary[Name, _Group] = weakref.WeakValueDictionary()
        # Live service/client scopes per ``(rt, <router>, service|client)``, kept as groups
        # come and go so that :mod:`.scope_limit` can cap them without a scan.
        self._live_scopes: dict[Name, int] = {}
        self.stats: ScopedStats = ScopedStats(self, ())
        self._ticker: LoopingCall | None = None
        self.expired_total = 0
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._ticker is not None:
            return
        self._ticker = LoopingCall(self._tick_logged)
        self._ticker.clock = self.clock
        self._ticker.start(self.tick_s, now=False)

    def _tick_logged(self) -> None:
        # A LoopingCall stops at the first exception: expiry and histogram windows must
        # not stop for good because of one bad tick.
        try:
            self.tick()
        except Exception:
            log.failure("metrics tick failed")

    def stop(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None

    def set_expiry_ttl(self, seconds: float) -> None:
        """Idle time after which service/client/server metrics leave (0 = never)."""
        self.expiry_ttl_s = seconds
        if self._fixed_tick_s is None:
            tick_s = _tick_for(seconds)
            if tick_s != self.tick_s:
                self.tick_s = tick_s
                if self._ticker is not None:
                    self.stop()
                    self.start()

    # -- recording (the StatsReceiver implementation calls these) --------------------

    def _group(self, name: Name) -> _Group:
        key = group_key(name)
        group = self._groups.get(key)
        if group is None:
            group = self._dormant.pop(key, None)
            if group is None:
                group = _Group(key, self.clock.seconds())
            else:
                group.last_active = self.clock.seconds()
            self._add_live(group)
        return group

    def _add_live(self, group: _Group) -> None:
        group.wake()
        self._groups[group.key] = group
        if len(group.key) == 4:  # rt/<r>/service/<s> or rt/<r>/client/<id>
            kind = group.key[:3]
            self._live_scopes[kind] = self._live_scopes.get(kind, 0) + 1

    def _remove_live(self, group: _Group) -> None:
        del self._groups[group.key]
        if len(group.key) == 4:
            kind = group.key[:3]
            left = self._live_scopes[kind] - 1
            if left:
                self._live_scopes[kind] = left
            else:
                del self._live_scopes[kind]

    def counter(self, name: Name) -> Counter:
        return self._get_or_create(name, CounterMetric)

    def stat(self, name: Name) -> Stat:
        return self._get_or_create(name, Histogram)

    def _get_or_create(self, name: Name, kind: type[_M]) -> _M:
        """The metric of that name, made on first use; the same handle ever after."""
        group = self._group(name)
        metric = group.metrics.get(name)
        if isinstance(metric, kind):
            return metric
        created = kind(group)
        if metric is None:
            group.metrics[name] = created
        else:
            # The caller still gets a working (unexported) metric rather than an error.
            log.warn("metric {name} already exists as another type", name="/".join(name))
        return created

    def gauge(self, name: Name, fn: Callable[[], float]) -> Gauge:
        group = self._group(name)
        metric = group.metrics.get(name)
        gauge = GaugeMetric(fn, group, name)
        if metric is None or isinstance(metric, GaugeMetric):
            # A gauge registered again replaces the old one (a rebuilt layer).
            group.metrics[name] = gauge
        else:
            log.warn("metric {name} already exists as another type", name="/".join(name))
        return gauge

    # -- reading ----------------------------------------------------------------------

    def metrics(self) -> Iterator[tuple[Name, Metric]]:
        """Every live metric with its full name (order: by group, then registration)."""
        self._revive_dormant()
        for group in list(self._groups.values()):
            yield from list(group.metrics.items())

    def metric_groups(self) -> list[MetricGroup]:
        """Every live group (``.key``: ``()`` for the permanent one; ``.metrics``), in the
        order :meth:`metrics` reads them.  The dicts are the live ones: read each in one
        go.  (Exposition caches rendered text per group; see :mod:`.prometheus`.  A list
        of the groups themselves: 10,000 (key, metrics) pairs were milliseconds.)"""
        self._revive_dormant()
        return list(self._groups.values())

    def get(self, *name: str) -> Metric | None:
        full = _normalise(name)
        group = self._groups.get(group_key(full))
        return None if group is None else group.metrics.get(full)

    def group_keys(self) -> list[Name]:
        return [k for k in self._groups if k]

    def scopes(self) -> list[tuple[Name, dict[Name, Metric]]]:
        """Every live expirable scope (see :func:`group_key`) with its metrics by full name.

        A reader may go through them in steps (the dashboard sampler does); a scope's dict
        is the live one, so read each in one go.
        """
        self._revive_dormant()
        return [(key, group.metrics) for key, group in self._groups.items() if key]

    # -- scopes (for :mod:`.scope_limit`) ---------------------------------------------

    def live_scopes(self, kind: Name) -> int:
        """How many ``kind + (name,)`` scopes are live (``kind``: ``("rt", r, "service")``)."""
        return self._live_scopes.get(kind, 0)

    def has_scope(self, key: Name) -> bool:
        """Whether the scope ``key`` is live, or expired but still held (it may come back)."""
        return key in self._groups or key in self._dormant

    def is_live(self, key: Name) -> bool:
        """Whether the scope ``key`` is live (exported)."""
        return key in self._groups

    def claim_scope(self, key: Name) -> None:
        """Make the (empty) group of scope ``key`` now, before any of its metrics.

        So a scope counts from the moment it is handed out, even if its layer registers
        metrics only on its first request; an empty scope expires like any idle one.
        """
        if group_key(key + ("_",)) != key:
            raise ValueError(f"{'/'.join(key)} is not a service or client scope")
        self._group(key + ("_",))

    def closing(self, key: Name, close: Callable[[], _T]) -> _T:
        """``close()`` a layer whose metrics are the scope ``key``, its own updates unseen.

        A route or client closing records a few last changes (closed connections, removed
        endpoints); counted as activity they kept an idle name's expired scope exported
        for another TTL (or brought it back from dormancy), and the scope kept its slot.
        What changed before the close still counts as activity.
        """
        group = self._groups.get(key)
        if group is None:
            group = self._dormant.get(key)
        if group is None:
            return close()
        signature = group.current_signature()
        if signature != group.signature:
            group.signature = signature
            group.last_active = self.clock.seconds()
        try:
            return close()
        finally:
            group.signature = group.current_signature()

    # -- maintenance ------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock.seconds()
        self._revive_dormant()
        # A little slack: ticks of a LoopingCall land at multiples of tick_s.
        rotate = now - self._last_rotation >= self.window_s - 1e-6
        if rotate:
            self._last_rotation = now
        for group in list(self._groups.values()):
            if rotate:
                for metric in group.metrics.values():
                    if isinstance(metric, Histogram):
                        metric.rotate()
            signature = group.current_signature()
            if signature != group.signature:
                group.signature = signature
                group.last_active = now
            elif (
                group.key
                and self.expiry_ttl_s > 0
                and now - group.last_active >= self.expiry_ttl_s
                and not group.has_pending()
            ):
                self._remove_live(group)
                self._dormant[group.key] = group
                group.sleep()
                self.expired_total += 1
                log.debug("metrics of {scope} expired", scope="/".join(group.key))

    def _revive_dormant(self) -> None:
        if not self._dormant:
            return
        now = self.clock.seconds()
        for key, group in list(self._dormant.items()):
            signature = group.current_signature()
            if signature < group.signature:
                # metrics freed while dormant (a closed layer's): not a use, since
                # counts only grow
                group.signature = signature
            elif signature != group.signature and key not in self._groups:
                group.signature = signature
                group.last_active = now
                del self._dormant[key]
                self._add_live(group)


class ScopedStats:
    """A :class:`StatsReceiver` recording into a :class:`MetricsTree` under a prefix."""

    __slots__ = ("tree", "prefix")

    def __init__(self, tree: MetricsTree, prefix: Name) -> None:
        self.tree = tree
        self.prefix = prefix

    def counter(self, *name: str) -> Counter:
        return self.tree.counter(self.prefix + _normalise(name))

    def stat(self, *name: str) -> Stat:
        return self.tree.stat(self.prefix + _normalise(name))

    def gauge(self, *name: str, fn: Callable[[], float]) -> Gauge:
        return self.tree.gauge(self.prefix + _normalise(name), fn)

    def scope(self, *name: str) -> StatsReceiver:
        return ScopedStats(self.tree, self.prefix + _normalise(name))

    def __repr__(self) -> str:
        return f"ScopedStats({'/'.join(self.prefix)!r})"


def tree_of(stats: StatsReceiver) -> MetricsTree:
    """The tree behind a receiver (telemeters are handed ``ctx.stats = tree.stats``)."""
    tree = getattr(stats, "tree", None)
    if not isinstance(tree, MetricsTree):
        raise TypeError(
            "telemeters need the mesh's MetricsTree: build them with "
            "PluginContext(stats=metrics_tree.stats)"
        )
    return tree
