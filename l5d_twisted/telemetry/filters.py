"""``StatsFilter``: the per-interface request stats linkerd 1 shows.

Put one in front of each interface with the scope it reports under
(``rt/<router>/service/<svc>``, ``rt/<router>/client/<id>``,
``rt/<router>/server/<ip>/<port>``).  Per request it records:

* ``requests`` (counted when the request enters), ``pending`` (a gauge of requests in
  flight);
* ``success`` or ``failures``, decided by the ``ResponseClassifier``; a failure that is an
  exception also counts ``failures/<kind>`` (``MeshError.kind``, else the exception's
  class name);
* ``request_latency_ms``: from the request entering to the response *head* arriving (the
  Deferred fires on the head; a streamed body may take longer and is not included);
* ``client_errors``, instead of ``success`` or ``failures``, for a failure the client caused
  (``errors.ClientFault``: a malformed, abandoned or too slow request body) and for a
  request its caller cancelled (the client went away, or a layer above gave up and counts
  that as its own failure), so a client cannot lower a service's success rate; failure
  accrual ignores both the same way.  A cancellation counts as status 499 (nginx's "client
  closed request"): nothing was answered;
* ``status/<code>`` and ``status/<N>XX``.  An exception counts as the status the mesh
  answers it with (``MeshError.status``, else 502), so error rates include mesh-generated
  errors; pass ``error_status=False`` to count only real responses.
"""

from __future__ import annotations

import weakref
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.errors import ClientFault, MeshError
from l5d_twisted.http.message import Request, Response
from l5d_twisted.resilience.classifier import ResponseClass, ResponseClassifier
from l5d_twisted.service import Filter, Service
from l5d_twisted.telemetry.metrics import MetricsTree, Name, ScopedStats
from l5d_twisted.telemetry.stats import Counter, StatsReceiver

log = Logger()

_SUCCESS = ResponseClass.SUCCESS


def failure_kind(error: BaseException) -> str:
    if isinstance(error, MeshError):
        return error.kind
    return type(error).__name__


class _Pending:
    """The requests in flight of every :class:`StatsFilter` reporting under one scope, and
    that scope's ``pending`` gauge.

    One object per scope, registered once (its gauge holds it weakly, see
    :class:`.metrics.GaugeMetric`): a registration per filter was ~90 bytes, two filters per
    routed name, and thousands of names share the ``<overflow>`` scope (issue 17).  The
    filters hold it; the last one freed takes the registration with it.  A filter counts a
    request in at ``apply`` and out when its outcome arrives (the outcome's callback holds
    the filter, so no filter is freed with requests of its own still counted).
    """

    __slots__ = ("n", "entry", "__weakref__")

    def __init__(self) -> None:
        self.n = 0
        self.entry: Any = None  # the registration (its ``metric``: where it counts)

    def read(self) -> float:
        return float(self.n)


# the shared counts, by (tree, scope); an entry lives while a filter holds its count
_SHARED: weakref.WeakValueDictionary[tuple[MetricsTree, Name], _Pending] = (
    weakref.WeakValueDictionary()
)


def _pending_of(stats: StatsReceiver) -> _Pending:
    """The in-flight count of the scope ``stats`` reports under, registered as its gauge."""
    if type(stats) is not ScopedStats:  # a receiver of another kind: a count of its own
        pending = _Pending()
        pending.entry = stats.gauge("pending", fn=pending.read)
        return pending
    key = (stats.tree, stats.prefix)
    found = _SHARED.get(key)
    if found is None:
        found = _SHARED[key] = _Pending()
    pending = found
    entry = pending.entry
    # registered in the scope's current gauge (a scope that expired and came back has a
    # new one; registering the same owner again there replaces, never double counts)
    if (
        entry is None
        or entry.metric is None
        or entry.metric is not stats.tree.get(*stats.prefix, "pending")
    ):
        pending.entry = stats.gauge("pending", fn=pending.read)
    return pending


class StatsFilter(Filter[Request, Response]):
    # (slots, a first status without a dict, no dict of failure kinds until one: a routed
    # name has two of these; issue 17)
    __slots__ = (
        "_stats",
        "_classifier",
        "_clock",
        "_error_status",
        "_requests",
        "_success",
        "_failures",
        "_latency",
        "_status1",
        "_counters1",
        "_status",
        "_failure_kinds",
        "_client_errors",
        "_pending",
        "__weakref__",
    )

    def __init__(
        self,
        stats: StatsReceiver,
        classifier: ResponseClassifier,
        clock: Any,
        error_status: bool = True,
    ) -> None:
        self._stats = stats
        self._classifier = classifier
        self._clock = clock
        self._error_status = error_status
        self._requests = stats.counter("requests")
        self._success = stats.counter("success")
        self._failures = stats.counter("failures")
        self._latency = stats.stat("request_latency_ms")
        # the counters of the first status seen, then of others in a dict of their own
        self._status1 = -1
        self._counters1: Any = None
        self._status: dict[int, tuple[Counter, Counter]] = _NONE
        self._failure_kinds: dict[str, Counter] = _NONE
        self._client_errors: Counter | None = None  # made at the first one
        # shared by the filters of this scope (see _Pending); its gauge holds it weakly, so
        # no cycle keeps an expired name's metrics for a full GC (issue 17)
        self._pending = _pending_of(stats)

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        self._requests.incr()
        self._pending.n += 1
        start = self._clock.seconds()
        try:
            d = service(request)
        except Exception as e:  # a service that raises instead of failing its Deferred
            d = Deferred()
            d.errback(Failure(e))
        # addBoth, not addCallbacks: Twisted's addCallbacks costs ~0.3 us more per call
        d.addBoth(self._on_outcome, request, start)
        return d

    def _on_outcome(self, response: Any, request: Request, start: float) -> Any:
        if isinstance(response, Failure):
            return self._on_error(response, request, start)
        # The common path, kept to one Python frame: it runs three times per routed request
        # (server, service and client layers).
        self._pending.n -= 1
        self._latency.add((self._clock.seconds() - start) * 1000.0)
        status = response.status
        if status == self._status1:
            counters = self._counters1
        else:
            counters = self._status.get(status)
            if counters is None:
                counters = self._status_counters(status)
        counters[0].incr()
        counters[1].incr()
        try:
            success = self._classifier.classify(request, response) is _SUCCESS
        except Exception:
            log.failure("response classifier failed; counting a failure")
            success = False
        if success:
            self._success.incr()
        else:
            self._failures.incr()
        return response

    def _on_error(self, failure: Failure, request: Request, start: float) -> Failure:
        self._pending.n -= 1
        self._latency.add((self._clock.seconds() - start) * 1000.0)
        error = failure.value
        if self._error_status:
            self._count_status(
                error.status
                if isinstance(error, MeshError)
                else 499
                if isinstance(error, CancelledError)
                else 502
            )
        if isinstance(error, (ClientFault, CancelledError)):
            if self._client_errors is None:
                self._client_errors = self._stats.counter("client_errors")
            self._client_errors.incr()
        elif isinstance(error, BaseException) and self._classify(request, error).is_success:
            self._success.incr()
        else:
            self._failures.incr()
            kind = failure_kind(error) if isinstance(error, BaseException) else "Unknown"
            kinds = self._failure_kinds
            counter = kinds.get(kind)
            if counter is None:
                if kinds is _NONE:
                    kinds = self._failure_kinds = {}
                counter = kinds[kind] = self._stats.counter("failures", kind)
            counter.incr()
        return failure

    def _classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass:
        try:
            return self._classifier.classify(request, outcome)
        except Exception:
            log.failure("response classifier failed; counting a failure")
            return ResponseClass.NON_RETRYABLE_FAILURE

    def _count_status(self, status: int) -> None:
        if status == self._status1:
            counters = self._counters1
        else:
            counters = self._status.get(status)
            if counters is None:
                counters = self._status_counters(status)
        counters[0].incr()
        counters[1].incr()

    def _status_counters(self, status: int) -> tuple[Counter, Counter]:
        counters = (
            self._stats.counter("status", str(status)),
            self._stats.counter("status", f"{status // 100}XX"),
        )
        if self._counters1 is None:
            self._status1 = status
            self._counters1 = counters
        else:
            if self._status is _NONE:
                self._status = {}
            self._status[status] = counters
        return counters


_NONE: dict[Any, Any] = {}  # shared and never written: no statuses or failure kinds yet
