"""Retries of retryable failures, within a budget (``service.retries``).

:class:`RetryFilter` sends a request, asks the response classifier about the outcome, and
while the outcome is a ``RETRYABLE_FAILURE`` sends it again, provided that

* the request body can be sent again (``request.body.replayable``: a streamed body never
  is; linkerd 1 lost such bodies on retry, we refuse instead), and
* the :class:`~l5d_twisted.resilience.budget.RetryBudget` has a token (every request
  deposits, every retry withdraws).

Between attempts it waits the next delay of the backoff (``clock.callLater``, cancelled if
the caller goes away).  A failed attempt's response body is discarded.  Each retry is sent
as a fresh copy of the request as it was before the first attempt, so headers that lower
layers add (``Via``, ``l5d-dst-client``) are not added twice.

When the budget or the body forbids a retry the last outcome is returned as is.

Stats (service scope): ``retries/total`` counter, ``retries/per_request`` stat,
``retries/budget_exhausted`` counter, ``retries/budget`` gauge.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from l5d_twisted.http.message import Request, Response
from l5d_twisted.request_context import Key
from l5d_twisted.resilience.attempts import AttemptLoop, discard
from l5d_twisted.resilience.backoff import Backoff
from l5d_twisted.resilience.budget import RetryBudget
from l5d_twisted.resilience.classifier import ResponseClass, ResponseClassifier
from l5d_twisted.service import Filter, Service
from l5d_twisted.telemetry.stats import StatsReceiver

__all__ = ["RetryBudget", "RetryFilter"]

_RETRYABLE = ResponseClass.RETRYABLE_FAILURE


class RetryFilter(Filter[Request, Response]):
    __slots__ = (
        "classifier",
        "budget",
        "backoff",
        "_clock",
        "_rng",
        "_total",
        "_per_request",
        "_exhausted",
        "_gauge",
    )

    def __init__(
        self,
        classifier: ResponseClassifier,
        budget: RetryBudget,
        backoff: Backoff,
        clock: Any,
        stats: StatsReceiver,
        rng: random.Random | None = None,
    ) -> None:
        self.classifier = classifier
        self.budget = budget
        self.backoff = backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._total = stats.counter("retries", "total")
        self._per_request = stats.stat("retries", "per_request")
        self._exhausted = stats.counter("retries", "budget_exhausted")
        self._gauge = stats.gauge("retries", "budget", fn=budget.balance_gauge)

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        self.budget.deposit()
        # The request as it is before any layer below touches it, for retries.
        headers = request.headers.copy() if request.body.replayable else None
        try:
            d = service(request)
        except Exception as e:
            d = fail(e)
        # Fast path: one callback; the retry machinery is only built for a retryable failure
        # (returning its Deferred from the callback chains it, cancellation included).
        return d.addBoth(self._first_outcome, request, service, headers, dict(request.ctx))

    def _first_outcome(
        self,
        outcome: Any,
        request: Request,
        service: Service[Request, Response],
        headers: Any,
        ctx: dict[Key[Any], Any],
    ) -> Any:
        if headers is not None:
            value: Any = outcome.value if isinstance(outcome, Failure) else outcome
            # a cancelled attempt means the caller gave up: never retried
            if (
                not isinstance(value, CancelledError)
                and self.classifier.classify(request, value) is _RETRYABLE
            ):
                if self.budget.try_withdraw():
                    discard(value)
                    attempts = _Attempts(self, request, service, headers, ctx)
                    attempts.retry()
                    return attempts.result
                self._exhausted.incr()
        self._per_request.add(0)
        return outcome

    def close(self) -> None:
        """Stop reporting the budget gauge (the service this filter guards went away)."""
        self._gauge.remove()


def _copy_request(original: Request, headers: Any, ctx: dict[Key[Any], Any]) -> Request:
    copy = Request(original.method, original.uri, headers.copy(), original.body, original.version)
    copy.ctx.update(ctx)
    return copy


class _Attempts(AttemptLoop):
    """One request's retries (the first attempt was sent by the filter)."""

    __slots__ = ("f", "request", "timer", "retries", "delays", "_headers", "_ctx")

    def __init__(
        self,
        f: RetryFilter,
        request: Request,
        service: Service[Request, Response],
        headers: Any,
        ctx: dict[Key[Any], Any],
    ) -> None:
        super().__init__(service)
        self.f = f
        self.request = request
        self.timer: Any = None
        self.retries = 0
        self.delays: Iterator[float] | None = None
        self._headers = headers  # the original request's, for the copies sent as retries
        self._ctx = ctx

    def retry(self) -> None:
        """The first attempt failed retryably and a retry was withdrawn from the budget."""
        self._schedule_retry()

    def _next_request(self) -> Request:
        return _copy_request(self.request, self._headers, self._ctx)

    def _on_outcome(self, outcome: Any) -> None:
        value: Any = outcome.value if isinstance(outcome, Failure) else outcome
        f = self.f
        if f.classifier.classify(self.request, value) is _RETRYABLE:
            if f.budget.try_withdraw():
                discard(value)
                self._schedule_retry()
                return
            f._exhausted.incr()
        f._per_request.add(self.retries)
        self._settle(outcome)

    def _schedule_retry(self) -> None:
        f = self.f
        self.retries += 1
        f._total.incr()
        if self.delays is None:
            self.delays = f.backoff.delays(f._rng)
        delay = next(self.delays, 0.0)
        if delay > 0:
            self.timer = f._clock.callLater(delay, self._fire_timer)
        else:
            self._send_again()

    def _fire_timer(self) -> None:
        self.timer = None
        self._send_again()

    def _cancel(self, d: Deferred[Response]) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        super()._cancel(d)
