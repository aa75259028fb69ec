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

Those series draw the charts.  Every *figure* (a router's top line, each service, client
and endpoint row) is over one window, :data:`WINDOW_S` (30 s, ``window_s`` in the JSON):
a row's rates are its counters' deltas over the samples of the last 30 s, and the router's
top line is the sum of its *service* rows (``current``): its rps the sum of theirs, its
success rate their successes over their decided requests (a weighted mean), so the top
line and the rows always agree.  linkerd 1's top line summed the router's *servers*; the
same requests but for those no service was identified for.  Either way a request counts
once per router it passes (per hop): the demo's ``curl hello`` is hello's request and
hello's call to world, 2 requests on ``outgoing`` and 2 on ``incoming``.

Per service and client rows report the same figures plus the
resilience figures of their scope (issue 7): a service's ``retries/total`` as
``retries_rps`` and its ``retries/budget_exhausted`` count; a client's
``loadbalancer/{size,available}`` gauges, ``failure_accrual/removals`` and
``retries/requeues`` counts (``null`` where the scope has no such metric, e.g. no
balancer yet).  A client row lists its ``endpoints`` (:mod:`.endpoints`, at most
:data:`MAX_ENDPOINTS` each, worst first; ``endpoints_total`` says how many there were):
address, state (ok / ejected / probing / draining / unavailable), requests, rps, success
rate and mean latency over the same window, read from the routers given (``routers``).
``to_json()`` is what ``/admin/dashboard.json`` serves: the figures of the last complete
sample, made once per sample (a request only adds ``now``).

A sample reads every service and client scope, which under a flood of new names (issue
10's mixed attack: ~1,600 live scopes, or 5,000 services with their clients) held the
reactor 110-450 ms every 5 s, and each dashboard.json request 340-400 ms more.  Given a
``Cooperator`` (the admin server passes :func:`sampler_cooperator`: like the metrics
renders', see :mod:`l5d_twisted.telemetry.render`, but with short slices and a gap after
each), a sample runs as small steps (:data:`STEP_SCOPES` scopes read, or
:data:`STEP_ROWS` rows computed, per step) between the reactor's other work; a tick that
finds the previous sample still running is skipped.  Without one (unit tests) a sample
runs at once, with the same code and the same figures.  Counters are read
a step at a time, so one sample is not an instant snapshot; each point is stamped with the
sample's start.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import CooperativeTask, Cooperator, LoopingCall, TaskStopped
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.admin.endpoints import EndpointReading, read_client, router_clients
from l5d_twisted.telemetry.histogram import Histogram, Summary, SummaryMerge, merged_summary
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree

log = Logger()

WINDOW_S = 30.0  # the one window of every figure (not the charts: one point per sample)
TABLE_RATE_WINDOW_S = WINDOW_S
MAX_ENDPOINTS = 64  # endpoint rows per client (a client's endpoints come from discovery)
MAX_GONE = 4096  # expired entities whose last counts are remembered (bounded under churn)
STEP_SCOPES = 25  # scopes read per step (~16 metrics each)
STEP_ROWS = 50  # entities (points, latency merges or table rows) per step
# The admin server's sampler cooperator (sampler_cooperator): steps for SAMPLE_SLICE_S of
# wall time, then SAMPLE_GAP_S for the reactor alone.  A request needs a few reactor turns,
# each delayed by a slice while a sample runs: back-to-back 10 ms slices, as metrics
# renders use, put ~35 ms answers every 5 s in the mixed attack's probe, 2 ms slices still
# 26-40 ms.  A sample is not waited for, so it may take the longer wall time.
SAMPLE_SLICE_S = 0.002
SAMPLE_GAP_S = 0.005
# The admin server's sampler samples while /admin/dashboard.json was asked within this
# (the page polls every few seconds; a background tab's timers may be throttled to one a
# minute, hence two minutes).
WATCH_S = 120.0


def sampler_cooperator(
    reactor: Any, slice_s: float = SAMPLE_SLICE_S, gap_s: float = SAMPLE_GAP_S
) -> Cooperator:
    """A cooperator that runs steps for ``slice_s``, then leaves the reactor ``gap_s``."""

    def slice_over() -> Callable[[], bool]:
        end = time.monotonic() + slice_s
        return lambda: time.monotonic() >= end

    return Cooperator(
        terminationPredicateFactory=slice_over,
        scheduler=lambda call: reactor.callLater(gap_s, call),
    )


_Key = tuple[str, str, str]  # (router, "service" | "client", name)
_EndpointKey = tuple[str, str, str]  # (router, client name, address)
_EndpointPoint = tuple[float, int, int, int, float, int]  # t, requests, success, failures, ms, n
_Endpoints = dict[tuple[str, str], tuple[list[EndpointReading], int]]  # (router, client)


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
    # What the rates were computed from: the counters' deltas over window_s.
    window_s: float | None = None
    requests: int = 0
    success: int = 0
    failures: int = 0


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
    return _Rates(
        requests / dt,
        success / decided if decided else None,
        retries / dt,
        dt,
        requests,
        success,
        failures,
    )


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
        cooperator: Cooperator | None = None,
        routers: Callable[[], Iterable[Any]] = lambda: (),
        watch_s: float | None = None,
    ) -> None:
        self.tree = tree
        self.watch_s = watch_s  # None: always sample; else only while watched (module doc)
        self._last_watch: float | None = None
        self._started = False
        self._warming = 0  # samples still needed after a (re)start before rates show
        self.pauses = 0  # times sampling paused because nobody watched
        self.clock = clock
        self.router_labels = router_labels
        self.routers = routers  # router objects, read for their clients' endpoints
        # (router, client, address) -> that endpoint's points over the last window
        self._endpoint_points: dict[_EndpointKey, collections.deque[_EndpointPoint]] = {}
        self._endpoint_maxlen = int(WINDOW_S / interval_s) + 2
        self.interval_s = interval_s
        self.cooperator = cooperator
        self._maxlen = int(history_s / interval_s) + 1
        # (router, kind, name) -> counter history; kind is "service" or "client"
        self._entities: dict[_Key, _History] = {}
        # The last point of entities that left the tree (expired), newest last: an expired
        # scope that comes back continues its counters, and this is their baseline.
        self._gone: collections.OrderedDict[_Key, _Point] = collections.OrderedDict()
        # router -> series of (t, rps, success_rate, p50, p95, p99)
        self._series: dict[str, collections.deque[tuple[float, Any, Any, Any, Any, Any]]] = {}
        self._router_requests: dict[str, int] = {}  # router -> its services' requests now
        self._latency: dict[str, dict[str, float | None]] = {}  # router -> its services' now
        self._last_sample: float | None = None
        self._loop: LoopingCall | None = None
        self._task: CooperativeTask[Any] | None = None  # a stepped sample under way
        self.skipped = 0  # ticks skipped because the previous sample was still running
        # What to_json() serves: made at the end of each sample, all but "now".
        self._json: dict[str, Any] = {
            "interval_s": interval_s,
            "window_s": WINDOW_S,
            "routers": [],
        }

    def start(self) -> None:
        self._started = True
        if self._loop is None and self._watched():
            self._run()

    def _run(self) -> None:
        self._warming = 2
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval_s, now=True)

    def _watched(self) -> bool:
        if self.watch_s is None:
            return True
        last = self._last_watch
        return last is not None and self.clock.seconds() - last <= self.watch_s

    @property
    def paused(self) -> bool:
        """Started, but not sampling: nobody watched within ``watch_s``."""
        return self._started and self._loop is None

    def watch(self) -> None:
        """A dashboard asked for the figures: sample from now on, resuming if paused."""
        self._last_watch = self.clock.seconds()
        if self.paused:
            self._resume()

    def _pause(self) -> None:
        self.pauses += 1
        self._halt()

    def _resume(self) -> None:
        # Counters read before the pause are no baseline: a rate over the pause would be an
        # average over it.  The charts keep their points (within history_s).
        self._entities.clear()
        self._gone.clear()
        self._endpoint_points.clear()
        self._router_requests.clear()
        self._latency.clear()
        self._last_sample = None
        cutoff = self.clock.seconds() - self._maxlen * self.interval_s
        for series in self._series.values():
            while series and series[0][0] < cutoff:
                series.popleft()
        # Until the first sample: the charts, no rows (the last ones are stale).
        for _ in self._json_steps([]):
            pass
        self._run()

    @property
    def sampling(self) -> bool:
        """Whether a stepped sample is under way."""
        return self._task is not None

    def _tick(self) -> None:
        if not self._watched():
            self._pause()
            return
        if self.cooperator is None:
            self._sample_logged()
            return
        if self._task is not None:
            self.skipped += 1
            return
        task = self._task = self.cooperator.cooperate(self._sample_steps(self.clock.seconds()))

        def failed(failure: Failure) -> None:
            if not isinstance(failure.value, TaskStopped):
                log.failure("dashboard sampling failed", failure)

        def done(_: object) -> None:
            if self._task is task:
                self._task = None

        task.whenDone().addErrback(failed).addBoth(done)

    def _sample_logged(self) -> None:
        # A LoopingCall stops at the first exception: one bad sample must not freeze the
        # dashboard for good.
        try:
            self.sample()
        except Exception:
            log.failure("dashboard sampling failed")

    def stop(self) -> None:
        self._started = False
        self._halt()

    def _halt(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        task, self._task = self._task, None
        if task is not None:
            try:
                task.stop()
            except Exception:  # already finished
                pass

    # -- sampling ---------------------------------------------------------------------

    def sample(self) -> None:
        """One whole sample, at once."""
        now = self.clock.seconds()
        for _ in self._sample_steps(now):
            pass

    def _sample_steps(self, now: float) -> Iterator[None]:
        """One sample as steps for a cooperator, its points stamped ``now`` (its tick)."""
        entities: dict[_Key, _Entity] = {}
        endpoints: _Endpoints = {}
        yield from self._read_steps(entities)
        yield from self._read_endpoint_steps(endpoints)
        yield from self._apply_steps(now, entities, endpoints)

    def _read_endpoint_steps(self, endpoints: _Endpoints) -> Iterator[None]:
        """Read each client's endpoints (STEP_SCOPES clients per step) into ``endpoints``."""
        try:
            routers = list(self.routers())
        except Exception:
            log.failure("reading the routers for their endpoints failed")
            return
        n = 0
        for router in routers:
            label = str(getattr(router, "label", ""))
            for name, client in router_clients(router):
                endpoints[(label, name)] = read_client(client, MAX_ENDPOINTS)
                n += 1
                if n % STEP_SCOPES == 0:
                    yield None
        yield None

    def _read_steps(self, entities: dict[_Key, _Entity]) -> Iterator[None]:
        """Read every service and client scope into ``entities``, STEP_SCOPES per step."""
        scopes = [
            (key, metrics)
            for key, metrics in self.tree.scopes()
            if len(key) == 4 and key[0] == "rt" and key[2] in ("service", "client")
        ]
        yield None
        for start in range(0, len(scopes), STEP_SCOPES):
            for scope, metrics in scopes[start : start + STEP_SCOPES]:
                key = (scope[1], scope[2], scope[3])
                for name, metric in list(metrics.items()):
                    below = name[4:]
                    if isinstance(metric, CounterMetric) and below in _COUNTS:
                        setattr(entities.setdefault(key, _Entity()), _COUNTS[below], metric.value)
                    elif isinstance(metric, GaugeMetric) and below in _GAUGES:
                        setattr(
                            entities.setdefault(key, _Entity()),
                            _GAUGES[below],
                            _whole(metric.read()),
                        )
                    elif isinstance(metric, Histogram) and below == ("request_latency_ms",):
                        entities.setdefault(key, _Entity()).latency.append(metric)
            yield None

    def _apply_steps(
        self, now: float, entities: dict[_Key, _Entity], endpoints: _Endpoints | None = None
    ) -> Iterator[None]:
        """Add what was read as this sample's points, then make what to_json() serves."""
        endpoints = endpoints if endpoints is not None else {}
        yield from self._apply_endpoints(now, endpoints)
        for key in [key for key in self._entities if key not in entities]:
            points = self._entities.pop(key).points
            if points:
                self._gone[key] = points[-1]
        while len(self._gone) > MAX_GONE:
            self._gone.popitem(last=False)
        yield None
        # A router's figures over this interval: the sum of its services' own deltas, so
        # a service whose metrics expired (it left the tree, with all it ever counted)
        # does not read as a drop in traffic.
        router_deltas: dict[str, list[int]] = {}
        items = list(entities.items())
        for start in range(0, len(items), STEP_ROWS):
            for key, entity in items[start : start + STEP_ROWS]:
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
            yield None
        dt = now - self._last_sample if self._last_sample is not None else 0.0
        self._last_sample = now

        routers = set(self.router_labels()) | {key[0] for key in entities}
        for router in sorted(routers):
            services = [e for (r, kind, _), e in items if r == router and kind == "service"]
            first_sample = router not in self._router_requests
            self._router_requests[router] = sum(e.requests for e in services)
            series = self._series.get(router)
            if series is None:
                series = self._series[router] = collections.deque(maxlen=self._maxlen)
            if first_sample:
                continue  # rates need two samples
            rates = _rates_of(dt, tuple(router_deltas.get(router, (0, 0, 0, 0))))
            merge = SummaryMerge()
            for start in range(0, len(services), STEP_ROWS):
                for entity in services[start : start + STEP_ROWS]:
                    for histogram in entity.latency:
                        merge.add(histogram)
                yield None
            latency = _latency(merge.summary())
            self._latency[router] = latency
            if rates.rps == 0:
                latency = {"p50": None, "p95": None, "p99": None}
            series.append(
                (
                    now,
                    _round(rates.rps, 3),
                    _round(rates.success_rate),
                    latency["p50"],
                    latency["p95"],
                    latency["p99"],
                )
            )
        for router in list(self._series):
            if router not in routers:
                del self._series[router]
                self._router_requests.pop(router, None)
                self._latency.pop(router, None)
        yield from self._json_steps(items, endpoints)

    def _apply_endpoints(self, now: float, endpoints: _Endpoints) -> Iterator[None]:
        """Add this sample's endpoint points; forget endpoints no longer read."""
        seen: set[_EndpointKey] = set()
        done = 0
        for (router, client), (readings, _) in endpoints.items():
            done += len(readings)
            if done >= STEP_ROWS:
                done = 0
                yield None
            for e in readings:
                key = (router, client, e.address)
                seen.add(key)
                points = self._endpoint_points.get(key)
                if points is None:
                    points = self._endpoint_points[key] = collections.deque(
                        maxlen=self._endpoint_maxlen
                    )
                points.append(
                    (now, e.requests, e.success, e.failures, e.latency_ms_sum, e.latency_count)
                )
        for key in [key for key in self._endpoint_points if key not in seen]:
            del self._endpoint_points[key]

    def _endpoint_row(self, router: str, client: str, e: EndpointReading) -> dict[str, Any]:
        points = self._endpoint_points.get((router, client, e.address))
        row: dict[str, Any] = {
            "address": e.address,
            "state": e.state,
            "requests": e.requests,
            "pending": e.pending,
            "window_s": None,
            "window_requests": 0,
            "window_success": 0,
            "window_failures": 0,
            "rps": None,
            "success_rate": None,
            "mean_ms": None,
        }
        if not points or len(points) < 2:
            return row
        newest = points[-1]
        oldest = points[-2]
        for point in reversed(points):
            if newest[0] - point[0] > WINDOW_S:
                break
            oldest = point
        dt = newest[0] - oldest[0]
        if dt <= 0:
            return row
        requests, success, failures = (max(0, newest[i] - oldest[i]) for i in (1, 2, 3))
        decided = success + failures
        count = newest[5] - oldest[5]
        row.update(
            window_s=round(dt, 3),
            window_requests=requests,
            window_success=success,
            window_failures=failures,
            rps=_round(requests / dt, 3),
            success_rate=_round(success / decided if decided else None),
            mean_ms=round((newest[4] - oldest[4]) / count, 3) if count > 0 else None,
        )
        return row

    def _endpoint_rows(self, router: str, client: str, endpoints: _Endpoints) -> dict[str, Any]:
        readings, total = endpoints.get((router, client), ([], 0))
        rows = [self._endpoint_row(router, client, e) for e in readings]
        # Trouble first (not ok), then the worst success rate, then the address.
        rows.sort(key=lambda r: (r["state"] == "ok", *_row_order(r)[:2], r["address"]))
        return {"endpoints": rows, "endpoints_total": total}

    def _json_steps(
        self, items: list[tuple[_Key, _Entity]], endpoints: _Endpoints | None = None
    ) -> Iterator[None]:
        """Make what to_json() serves from this sample; it replaces the last one at the end."""
        endpoints = endpoints if endpoints is not None else {}
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for start in range(0, len(items), STEP_ROWS):
            for key, entity in items[start : start + STEP_ROWS]:
                row = self._row(key, entity)
                if key[1] == "client":
                    row.update(self._endpoint_rows(key[0], key[2], endpoints))
                rows.setdefault((key[0], key[1]), []).append(row)
            yield None
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
            services, clients = rows.get((router, "service"), []), rows.get((router, "client"), [])
            # Worst success rate first; unknown rates last, then busiest first.
            services.sort(key=_row_order)
            clients.sort(key=_row_order)
            current = _top_line(services, self._latency.get(router))
            current["requests"] = self._router_requests.get(router, 0)
            routers.append(
                {
                    "label": router,
                    "series": series,
                    "current": current,
                    "services": services,
                    "clients": clients,
                }
            )
            yield None
        self._json = {"interval_s": self.interval_s, "window_s": WINDOW_S, "routers": routers}
        if self._last_sample is not None:  # a sample, not _resume's empty tables
            self._warming = max(0, self._warming - 1)

    def _row(self, key: _Key, entity: _Entity) -> dict[str, Any]:
        history = self._entities.get(key)
        rates = history.rate(WINDOW_S) if history else _Rates()
        row: dict[str, Any] = {
            "name": key[2],
            "requests": entity.requests,
            "failures": entity.failures,
            "rps": _round(rates.rps, 3),
            "success_rate": _round(rates.success_rate),
            "window_s": _round(rates.window_s, 3),
            "window_requests": rates.requests,
            "window_success": rates.success,
            "window_failures": rates.failures,
        }
        if key[1] == "service":
            row["retries_rps"] = _round(rates.retries_rps, 3)
            row["budget_exhausted"] = entity.budget_exhausted
        else:
            row["lb_size"] = entity.lb_size
            row["lb_available"] = entity.lb_available
            row["removals"] = entity.removals
            row["requeues"] = entity.requeues
        row.update(_latency(merged_summary(entity.latency)))
        return row

    def to_json(self) -> dict[str, Any]:
        """The last complete sample's figures (see the module docstring)."""
        return {
            "interval_s": self._json["interval_s"],
            "window_s": self._json["window_s"],
            "now": round(self.clock.seconds(), 3),
            "warming_up": self._warming > 0,
            "routers": self._json["routers"],
        }


def _top_line(
    services: list[dict[str, Any]], latency: dict[str, float | None] | None
) -> dict[str, Any]:
    """A router's figures over the window: the sum of its service rows (module doc)."""
    requests = sum(r["window_requests"] for r in services)
    success = sum(r["window_success"] for r in services)
    failures = sum(r["window_failures"] for r in services)
    rates = [r["rps"] for r in services if r["rps"] is not None]
    decided = success + failures
    windows = [r["window_s"] for r in services if r["window_s"] is not None]
    top: dict[str, Any] = {
        "rps": round(sum(rates), 3) if rates else None,
        "success_rate": _round(success / decided if decided else None),
        "window_s": max(windows) if windows else None,
        "window_requests": requests,
        "window_success": success,
        "window_failures": failures,
        "p50": None,
        "p95": None,
        "p99": None,
    }
    if requests and latency is not None:
        top.update(latency)
    return top


def _row_order(row: dict[str, Any]) -> tuple[bool, float, float]:
    return (row["success_rate"] is None, row["success_rate"] or 0.0, -(row["rps"] or 0.0))
