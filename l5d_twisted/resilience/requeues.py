"""Requeues: re-send at once what provably never reached a server (linkerd's "requeues").

A failure that is a :class:`~l5d_twisted.errors.MeshError` with ``retryable`` set (e.g.
``ConnectionFailed``: nothing was written) is sent again through the balancer, which may
pick another endpoint, without waiting and whatever the method or the body, since the
server never saw it.  Requeues draw on their own :class:`RetryBudget` (per client) and
stop after ``max_requeues``.  ``NoHostsAvailable`` and ``BindingTimeout`` are not requeued:
sending again cannot find hosts that are not there.  Nor is a request whose streamed body
was already (partly) consumed, e.g. by a TLS connection that failed its handshake after
the body began to flow: those bytes are gone, and the stream cannot be read twice.

Stats (client scope): ``retries/requeues`` and ``retries/budget_exhausted`` counters.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from l5d_twisted.errors import UNROUTABLE, MeshError
from l5d_twisted.resilience.attempts import AttemptLoop
from l5d_twisted.resilience.budget import RetryBudget
from l5d_twisted.service import Filter, Service
from l5d_twisted.telemetry.stats import StatsReceiver

_NOT_REQUEUED = UNROUTABLE


def requeueable(error: BaseException) -> bool:
    return isinstance(error, MeshError) and error.retryable and not isinstance(error, _NOT_REQUEUED)


def _can_resend(request: Any, failure: Failure) -> bool:
    """Only asked after a failure, so the happy path pays nothing."""
    return (
        failure.value is not None
        and requeueable(failure.value)
        and not getattr(request.body, "consumed", False)
    )


class RequeueFilter(Filter[Any, Any]):
    __slots__ = ("budget", "max_requeues", "_requeues", "_exhausted")

    def __init__(self, budget: RetryBudget, stats: StatsReceiver, max_requeues: int = 25) -> None:
        self.budget = budget
        self.max_requeues = max_requeues
        self._requeues = stats.counter("retries", "requeues")
        self._exhausted = stats.counter("retries", "budget_exhausted")

    def apply(self, request: Any, service: Service[Any, Any]) -> Deferred[Any]:
        self.budget.deposit()
        try:
            d = service(request)
        except Exception as e:
            d = fail(e)
        # Fast path: only a failure builds the requeue machinery (its Deferred is chained).
        return d.addErrback(self._first_failure, request, service)

    def _first_failure(self, failure: Failure, request: Any, service: Service[Any, Any]) -> Any:
        if _can_resend(request, failure):
            if self.max_requeues > 0 and self.budget.try_withdraw():
                self._requeues.incr()
                requeuing = _Requeuing(self, request, service)
                requeuing.requeues = 1
                requeuing._send_again()
                return requeuing.result
            self._exhausted.incr()
        return failure


class _Requeuing(AttemptLoop):
    """One request's requeues (the first attempt was sent by the filter)."""

    __slots__ = ("f", "request", "requeues")

    def __init__(self, f: RequeueFilter, request: Any, service: Service[Any, Any]) -> None:
        super().__init__(service)
        self.f = f
        self.request = request
        self.requeues = 0

    def _next_request(self) -> Any:
        return self.request  # never reached a server: the very same request goes again

    def _on_outcome(self, outcome: Any) -> None:
        f = self.f
        if isinstance(outcome, Failure) and _can_resend(self.request, outcome):
            if self.requeues < f.max_requeues and f.budget.try_withdraw():
                self.requeues += 1
                f._requeues.incr()
                self._send_again()
                return
            f._exhausted.incr()
        self._settle(outcome)
