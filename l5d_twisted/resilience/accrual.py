"""Failure accrual: stop sending to an endpoint that keeps failing, probe it back later.

:class:`FailureAccrualService` wraps one endpoint.  Each outcome is classified by the
response classifier and reported to an :class:`AccrualPolicy` (``client.failureAccrual``:
consecutive failures, success rate, ...).  When the policy answers a failure with a
duration, the endpoint is *marked dead* for that long: its ``status`` becomes BUSY and the
balancer sends elsewhere (unless every endpoint is dead; then it fails open).  The request
whose failure marked it dead is answered as usual, never failed by the marking.

After the duration the endpoint lets exactly one *probe* through: its status is OPEN until
a request arrives, then BUSY while that request is in flight.  A successful probe revives
it (the policy's backoff starts over); a failed one marks it dead again for the policy's
next, longer, backoff.  Any success, even of a request sent while dead (fail-open), revives.
Outcomes of requests that were cancelled by the caller, or that the client broke
(``errors.ClientFault``: a malformed or abandoned request body), are not the endpoint's
fault and are not counted.

Stats (client scope): ``failure_accrual/removals``, ``revivals``, ``probes`` counters and
``removed_for_ms`` (a counter of the milliseconds endpoints were marked dead for).

What counts as a failure is linkerd 1's rule: the response classifier of the request's
*service* (``service.responseClassifier``, carried in the request context, as linkerd 1's
``ResponseClassifierCtx``), so with the default ``io.l5d.http.nonRetryable5XX`` every 5XX
response counts, also a 5XX an app returns because *its* dependency failed.  A service
whose 5XX responses must not eject its instances says so with its classifier (e.g.
``io.l5d.http.allSuccessful`` for that prefix); docs/operations.md tells the whole story.

Per endpoint, and outside the metrics tree (no scope per address: pod churn would grow
it), the service counts ``requests``, ``success``, ``failures`` and the latency of
classified outcomes (``latency_ms_sum`` over ``latency_count``): the admin dashboard's
per-endpoint table reads them (:mod:`l5d_twisted.admin.endpoints`).  Each request's
context gets :data:`ENDPOINT`, the address that answered it (the last attempt's), which
the recent-requests page shows.

Registered factory (``FAILURE_ACCRUAL``): ``factory(config) -> AccrualPolicy``, a fresh
policy per endpoint.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.errors import ClientFault
from l5d_twisted.request_context import Key
from l5d_twisted.resilience.classifier import ResponseClass, ResponseClassifier
from l5d_twisted.service import Service, Status
from l5d_twisted.telemetry.stats import StatsReceiver

log = Logger()

_SUCCESS = ResponseClass.SUCCESS

# The endpoint ("ip:port") an attempt of this request was sent to; the last one answered.
ENDPOINT: Key[str] = Key("endpoint")


class AccrualPolicy(Protocol):
    """Decides, from an endpoint's outcomes, when and for how long it is dead."""

    def record_success(self, now: float) -> None: ...

    def mark_dead_on_failure(self, now: float) -> float | None:
        """Record a failure; return seconds to mark the endpoint dead for, or None."""
        ...

    def revived(self, now: float) -> None:
        """The endpoint came back: start the backoff over."""
        ...


class AccrualState(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    PROBE_OPEN = "probe_open"  # the next request is the probe
    PROBING = "probing"  # the probe is in flight


class FailureAccrualService(Service[Any, Any]):
    __slots__ = (
        "endpoint",
        "policy",
        "classifier",
        "_clock",
        "label",
        "state",
        "_timer",
        "_removals",
        "_revivals",
        "_probes",
        "_removed_for_ms",
        "requests",
        "success",
        "failures",
        "latency_ms_sum",
        "latency_count",
        "__weakref__",
    )

    def __init__(
        self,
        endpoint: Service[Any, Any],
        policy: AccrualPolicy,
        classifier: ResponseClassifier,
        clock: Any,
        stats: StatsReceiver,
        label: str = "",
        stats_scope: str = "failure_accrual",
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.classifier = classifier
        self._clock = clock
        self.label = label
        self.state = AccrualState.ALIVE
        self._timer: Any = None
        scope = stats.scope(stats_scope)
        self._removals = scope.counter("removals")
        self._revivals = scope.counter("revivals")
        self._probes = scope.counter("probes")
        self._removed_for_ms = scope.counter("removed_for_ms")
        # Per-endpoint figures for the admin dashboard (see the module doc).
        self.requests = 0
        self.success = 0
        self.failures = 0
        self.latency_ms_sum = 0.0
        self.latency_count = 0

    @property
    def status(self) -> Status:
        inner = self.endpoint.status
        if inner is not Status.OPEN:
            return inner
        state = self.state
        if state is AccrualState.ALIVE or state is AccrualState.PROBE_OPEN:
            return Status.OPEN
        return Status.BUSY

    def __call__(self, request: Any) -> Deferred[Any]:
        if self.state is AccrualState.PROBE_OPEN:
            self.state = AccrualState.PROBING
            self._probes.incr()
        self.requests += 1
        ctx = getattr(request, "ctx", None)
        if ctx is not None:
            ctx[ENDPOINT] = self.label
        start = self._clock.seconds()
        try:
            d = self.endpoint(request)
        except Exception as e:
            d = fail(e)
        d.addBoth(self._observe, request, start)
        return d

    def _observe(self, outcome: Any, request: Any, start: float) -> Any:
        value: Any = outcome.value if isinstance(outcome, Failure) else outcome
        if isinstance(value, (CancelledError, ClientFault)):
            if self.state is AccrualState.PROBING:
                self.state = AccrualState.PROBE_OPEN  # the probe told us nothing: probe again
            return outcome
        try:
            success = self.classifier.classify(request, value) is _SUCCESS
        except Exception:
            log.failure("response classifier failed; counting the outcome as a failure")
            success = False
        now = self._clock.seconds()
        self.latency_ms_sum += (now - start) * 1000.0
        self.latency_count += 1
        if success:
            self.success += 1
            self.policy.record_success(now)
            if self.state is not AccrualState.ALIVE:
                self._revive(now)
        else:
            self.failures += 1
            self._failed(now)
        return outcome

    def _revive(self, now: float) -> None:
        self._cancel_timer()
        self.state = AccrualState.ALIVE
        self._revivals.incr()
        self.policy.revived(now)
        log.info("endpoint {label} revived", label=self.label)

    def _failed(self, now: float) -> None:
        state = self.state
        if state is not AccrualState.ALIVE and state is not AccrualState.PROBING:
            return  # already dead: stragglers and fail-open requests change nothing
        duration = self.policy.mark_dead_on_failure(now)
        if duration is not None:
            self._mark_dead(duration)
        elif state is AccrualState.PROBING:
            self.state = AccrualState.PROBE_OPEN

    def _mark_dead(self, duration: float) -> None:
        self._cancel_timer()
        self.state = AccrualState.DEAD
        self._removals.incr()
        self._removed_for_ms.incr(int(duration * 1000))
        self._timer = self._clock.callLater(duration, self._open_probe)
        log.info(
            "endpoint {label} marked dead for {ms} ms", label=self.label, ms=int(duration * 1000)
        )

    def _open_probe(self) -> None:
        self._timer = None
        if self.state is AccrualState.DEAD:
            self.state = AccrualState.PROBE_OPEN

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def close(self) -> Deferred[None]:
        self._cancel_timer()
        return self.endpoint.close()

    @property
    def pending(self) -> int:
        return int(getattr(self.endpoint, "pending", 0))
