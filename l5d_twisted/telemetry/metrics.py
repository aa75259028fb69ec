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

import operator
import weakref
from collections.abc import Callable, Iterator
from types import MethodType
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


_deref = weakref.ref.__call__


def _freed(entry: WeakGauge) -> None:
    """A registration's owner was freed: it leaves its gauge (a weak reference's callback,
    so at once, by reference counting; no dead entries to sweep, no cycle left)."""
    metric = entry.metric
    if metric is not None:
        metric._discard(entry, explicit=False)


class WeakGauge(weakref.ref):
    """A gauge function that holds its owner weakly and is its own registration.

    Subclasses define ``__call__`` (the value, from ``_deref(self)``, the owner, or 0.0 once
    it is gone).  Registered with :meth:`MetricsTree.gauge`, it is the handle returned:
    it counts while its owner lives, until ``remove()``.  One object per registration
    (a weak reference with two slots), and no cycle through the owner: a layer holding
    its gauge does not keep itself alive.
    """

    __slots__ = ("metric",)

    def __new__(cls, owner: Any, *args: Any) -> WeakGauge:
        return weakref.ref.__new__(cls, owner, _freed)

    def __init__(self, owner: Any, *args: Any) -> None:
        # (weakref.ref's own __init__ only checks its arguments: __new__ made the reference)
        self.metric: GaugeMetric | None = None  # None: not (or no longer) registered

    def __call__(self) -> float:
        raise NotImplementedError

    def owner(self) -> Any:
        return _deref(self)

    def same_as(self, other: WeakGauge) -> bool:
        """Whether ``other`` is this registration made again (same owner, same function)."""
        return type(other) is type(self) and _deref(other) is _deref(self)

    def remove(self) -> None:
        metric = self.metric
        if metric is not None:
            metric._discard(self, explicit=True)


class _WeakMethod(WeakGauge):
    """``owner.method`` as a gauge, holding ``owner`` weakly (the tree makes one for a bound
    method whose object takes weak references: a balancer's ``size``, say)."""

    __slots__ = ("func",)

    def __init__(self, owner: Any, func: Callable[[Any], float]) -> None:
        super().__init__(owner)
        self.func = func

    def __call__(self) -> float:
        owner = _deref(self)
        return 0.0 if owner is None or self.metric is None else self.func(owner)

    def same_as(self, other: WeakGauge) -> bool:
        return super().same_as(other) and self.func is getattr(other, "func", None)


class _Held:
    """The handle of a gauge function the tree cannot watch (a lambda, a partial, a method
    of an object without weak references): the registration counts while this handle is
    held (by the layer that registered it) and until ``remove()``."""

    __slots__ = ("fn", "entry", "__weakref__")

    def __init__(self, fn: Callable[[], float]) -> None:
        self.fn = fn
        self.entry = _HeldRef(self)

    def remove(self) -> None:
        self.entry.remove()


class _HeldRef(WeakGauge):
    """A :class:`_Held` handle's entry in its gauge: a weak reference to the handle."""

    __slots__ = ()

    def __call__(self) -> float:
        held = _deref(self)
        return 0.0 if held is None or self.metric is None else held.fn()


_call: Callable[[Callable[[], float]], float] = operator.call


class GaugeMetric:
    """Implements ``Gauge``: the sum of its registrations' functions, read at exposition.

    Several layers may register one gauge name in one scope: the clients of a service's
    endpoints (``connections``), and above all the thousands of names that share the
    ``<overflow>`` scope (see :mod:`.scope_limit`), each with its ``pending`` and
    ``loadbalancer/size``.  The gauge exports the sum of those alive (a replacing gauge
    showed one name's value).  A registration is held weakly, so that a name that goes
    away takes its part with it:

    * a :class:`WeakGauge` (the stats filter's ``pending``) or a bound method of an
      object with weak references (held as a :class:`_WeakMethod`) counts while its owner
      lives; the same owner registering the same function again replaces its registration
      (a rebuilt layer is not counted twice);
    * any other function counts while the handle ``gauge()`` returned is held: keep it.
      The newest such registration of a name is held by the gauge too (until its scope
      expires), so a gauge registered and forgotten, as mesh-wide ones are, still works;
      registering another one of the same name lets an earlier forgotten one go.

    ``remove()`` on the last registration takes the gauge out of its scope (as before);
    registrations whose owners were freed leave it showing 0 until the scope expires.
    One registration is kept in ``_regs`` itself; from the second a list.  A registration
    that leaves a list is marked (its ``metric`` None: it reads 0) and the list is made
    again without the marked ones once they are half of it: O(1) per removal at 9,000
    names, where finding one in the list was O(n) (and an index kept per registration
    was an int object, 28 bytes, past 256).  A merged view's gauges are
    :class:`FixedGauge` objects.
    """

    __slots__ = ("name", "group", "_regs", "_gone", "_held", "__weakref__")

    def __init__(self, group: _Group | None, name: Name) -> None:
        self.name = name
        self.group = group
        self._regs: WeakGauge | list[WeakGauge] | None = None
        self._gone = 0  # marked registrations still in the list
        self._held: _Held | None = None

    def value(self) -> float:
        """The sum of the registrations (raises what a function raises)."""
        regs = self._regs
        if regs is None:
            return 0.0
        if type(regs) is list:
            return float(sum(map(_call, regs)))
        return float(regs())  # type: ignore[operator]

    def read(self) -> float:
        try:
            return self.value()
        except Exception:
            # A broken gauge must not break exposition of everything else.
            log.failure("gauge {name} failed", name="/".join(self.name))
            return float("nan")

    def registrations(self) -> int:
        regs = self._regs
        return 0 if regs is None else len(regs) - self._gone if type(regs) is list else 1

    def _add(self, entry: WeakGauge) -> None:
        owner = _deref(entry)
        if owner is not None and not isinstance(entry, _HeldRef):
            # the same owner's earlier registration of the same function: replaced. Its
            # weak references are few (a layer's own gauges), so this is no scan.
            for ref in weakref.getweakrefs(owner):
                if (
                    ref is not entry
                    and isinstance(ref, WeakGauge)
                    and ref.metric is self
                    and entry.same_as(ref)
                ):
                    self._discard(ref, explicit=False)
        entry.metric = self
        regs = self._regs
        if regs is None:
            self._regs = entry
        elif type(regs) is list:
            regs.append(entry)
        else:
            self._regs = [regs, entry]  # type: ignore[list-item]

    def _discard(self, entry: WeakGauge, explicit: bool) -> None:
        """Take ``entry`` out (``explicit``: its ``remove()``, else its owner was freed).

        Also called from a weak reference's callback, i.e. whenever a layer is freed (in
        a garbage collection too): no list is changed in place but by ``append``, so a
        read going through the list meanwhile is not disturbed."""
        if entry.metric is not self:
            return
        entry.metric = None
        held = self._held
        if held is not None and held.entry is entry:
            self._held = None
        regs = self._regs
        if regs is entry:
            self._regs = None
        elif type(regs) is list:
            self._gone += 1
            if self._gone * 2 > len(regs):
                live = [e for e in regs if e.metric is self]
                self._gone = 0
                self._regs = None if not live else live[0] if len(live) == 1 else live
        group = self.group
        if self._regs is None and explicit and group is not None:
            # the last one removed: the gauge leaves its scope, as one gauge did
            for metrics in (group.metrics, group.dormant):
                if metrics is not None and metrics.get(self.name) is self:
                    del metrics[self.name]

    activity = 0


class FixedGauge(GaugeMetric):
    """A gauge whose value is ``fn()``, registered nowhere (a merged view's, whose value
    came from the workers)."""

    __slots__ = ("fn",)

    def __init__(self, name: Name, fn: Callable[[], float]) -> None:
        super().__init__(None, name)
        self.fn = fn

    def value(self) -> float:
        return float(self.fn())


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
        for metric in self.metrics.values():
            if type(metric) is GaugeMetric and metric._held is not None:
                # a gauge holding its newest unwatchable registration made a cycle
                # (gauge, handle, entry): an expired scope must go by reference counting
                metric._held = None
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


# Groups a tick looks at per reactor turn.  A tick reads every group (the sum of its
# counters; every histogram when the windows rotate): 5.3-5.7 ms at 2,002 groups in one go,
# 7.9-13 ms with the rotation (bench/scrape/stall.py's 1,000-service tree), a stall every
# TTL/10 that grows with the scopes kept.  500 groups a turn measured 3.2-3.4 ms with the
# rotation; 200 about 1 ms, still the p99 of the requests that waited for it; 50 keeps a
# turn near 0.25 ms, for ~30 more turns per tick over 2,000 groups (~15 us each): names.py
# at 10,000 names, cold-bind p99 of round 1's first half 1.45-1.88 ms against 1.57-2.37
# with 200 (3 interleaved pairs, bench/README.md "Sixth pass").
TICK_GROUPS_PER_TURN = 50


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
        # receivers many layers share (the overflow scopes: one per name was 240 bytes)
        self._shared: dict[Name, ScopedStats] = {}
        self._ticker: LoopingCall | None = None
        self._tick_rest: Any = None  # the rest of a tick spread over reactor turns
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
        self._cancel_tick_rest()

    def _cancel_tick_rest(self) -> None:
        """Drop what is left of a tick spread over reactor turns."""
        rest, self._tick_rest = self._tick_rest, None
        if rest is not None and rest.active():
            rest.cancel()

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
        """Register ``fn`` under ``name``; the gauge shows the sum of its registrations
        (see :class:`GaugeMetric`: which are held, and how long).  The handle returned
        has ``remove()``."""
        group = self._group(name)
        metric = group.metrics.get(name)
        if metric is None:
            metric = group.metrics[name] = GaugeMetric(group, name)
        elif not isinstance(metric, GaugeMetric):
            log.warn("metric {name} already exists as another type", name="/".join(name))
            metric = None  # the caller still gets a working (unexported) handle
        handle: Gauge
        if isinstance(fn, WeakGauge) and (fn.metric is None or fn.metric is metric):
            if fn.metric is not None:
                return fn  # registered here already: not counted twice
            entry: WeakGauge = fn
            handle = fn
        else:  # (a WeakGauge registered in another gauge too is held as a function)
            owner = getattr(fn, "__self__", None)
            func = getattr(fn, "__func__", None)
            if (
                type(fn) is MethodType
                and func is not None
                and owner is not None
                and type(owner).__weakrefoffset__
            ):
                entry = handle = _WeakMethod(owner, func)
            else:
                held = _Held(fn)
                entry, handle = held.entry, held
                if metric is not None:
                    previous = metric._held
                    if previous is not None and previous.fn is fn:
                        previous.remove()  # the same function again: replaced
                    metric._held = held
        if metric is not None:
            metric._add(entry)
        return handle

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

    def shared_scope(self, prefix: Name) -> ScopedStats:
        """One receiver for ``prefix``, the same each time (a receiver is its tree and
        prefix, nothing else: the names of ``<overflow>`` can share one)."""
        found = self._shared.get(prefix)
        if found is None:
            found = self._shared[prefix] = ScopedStats(self, prefix)
        return found

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
        self._cancel_tick_rest()  # (a tick still spread over turns: this one covers every group)
        self._tick_groups(list(self._groups.values()), 0, now, rotate)

    def _tick_groups(self, groups: list[_Group], start: int, now: float, rotate: bool) -> None:
        """Ticks ``groups[start:]``, :data:`TICK_GROUPS_PER_TURN` per reactor turn."""
        self._tick_rest = None
        end = min(len(groups), start + TICK_GROUPS_PER_TURN)
        if end < len(groups):
            self._tick_rest = self.clock.callLater(0, self._tick_more, groups, end, now, rotate)
        live = self._groups
        for index in range(start, end):
            group = groups[index]
            if live.get(group.key) is not group:
                continue  # gone since the tick began
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

    def _tick_more(self, groups: list[_Group], start: int, now: float, rotate: bool) -> None:
        try:
            self._tick_groups(groups, start, now, rotate)
        except Exception:
            log.failure("metrics tick failed")

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
