"""The stacks a router builds its layers from, by role, and how plugins edit them.

Four layers; the last three are cached bottom-up as in linkerd 1:

* **server** (per listening server): ``stats`` (``rt/<router>/server/<ip>/<port>``) -> the
  router;
* **service** (per logical name, e.g. ``/svc/hello``): ``stats`` -> ``deadline``
  (totalTimeoutMs and l5d-ctx-deadline) -> ``retries`` -> the binding service.
* **client** (per bound name, e.g. ``/#/io.l5d.fs/world``): ``stats`` -> ``requeues`` ->
  the balancer.
* **endpoint** (per address): ``failureAccrual`` -> ``failFast`` -> ``attemptTimeout`` -> the
  protocol's endpoint (a pooled connection).

``stack.make(params, leaf)`` receives typed :class:`~l5d_twisted.service.Params`; the keys
are the attributes of :class:`StackParams`.  A protocol supplies its :class:`RouterStacks`
(``DEFAULT_STACKS`` for http); a plugin (telemeter, ...) contributes :class:`StackEdit` values
(insert a module before or after a named role of one layer), which the mesh applies with
:meth:`RouterStacks.edited`, so neither touches the router.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BACKOFFS, FAILURE_ACCRUAL
from l5d_twisted.resilience.accrual import FailureAccrualService
from l5d_twisted.resilience.classifier import ResponseClassifier
from l5d_twisted.resilience.deadline import DeadlineFilter
from l5d_twisted.resilience.fail_fast import fail_fast_service
from l5d_twisted.resilience.requeues import RequeueFilter
from l5d_twisted.resilience.retries import RetryBudget, RetryFilter
from l5d_twisted.resilience.timeouts import TimeoutFilter
from l5d_twisted.service import Module, Param, Params, Service, Stack
from l5d_twisted.telemetry.filters import StatsFilter
from l5d_twisted.telemetry.stats import StatsReceiver

HttpService = Service[Request, Response]
HttpModule = Module[Request, Response]
HttpStack = Stack[Request, Response]


class StackParams:
    """The typed keys of the params every module is handed."""

    REACTOR: Param[Any] = Param("reactor")  # the reactor, or a Clock in tests
    STATS: Param[StatsReceiver] = Param("stats")  # scoped to this layer
    CLASSIFIER: Param[ResponseClassifier] = Param("classifier")
    RNG: Param[random.Random] = Param("rng")
    SERVICE: Param[ServiceParams] = Param("service_params")  # service layer
    CLIENT: Param[ClientParams] = Param("client_params")  # client and endpoint layers
    REQUEUE_BUDGET: Param[RetryBudget] = Param("requeue_budget")  # client layer
    ADDRESS: Param[Address | None] = Param("address", None)  # endpoint layer


@functools.lru_cache(maxsize=1024)  # (values come from the configuration: a handful)
def seconds(ms: float) -> float:
    """``ms / 1000``, one float object per distinct value: a configured timeout divided per
    route or client was a float (32 bytes) per name, kept by its filter (issue 17)."""
    return ms / 1000.0


def _stats(params: Params, next_: HttpService) -> HttpService:
    return StatsFilter(
        params[StackParams.STATS], params[StackParams.CLASSIFIER], params[StackParams.REACTOR]
    ).and_then(next_)


def _deadline(params: Params, next_: HttpService) -> HttpService:
    total_ms = params[StackParams.SERVICE].total_timeout_ms
    total = seconds(total_ms) if total_ms else None
    return DeadlineFilter(params[StackParams.REACTOR], total).and_then(next_)


def _retries(params: Params, next_: HttpService) -> HttpService:
    service = params[StackParams.SERVICE]
    retries = service.retries
    budget = RetryBudget(
        retries.budget.min_retries_per_sec,
        retries.budget.percent_can_retry,
        retries.budget.ttl_secs,
        params[StackParams.REACTOR],
    )
    backoff_plugin = BACKOFFS.get(retries.backoff.kind)
    backoff = backoff_plugin.factory(retries.backoff.config)
    return RetryFilter(
        params[StackParams.CLASSIFIER],
        budget,
        backoff,
        params[StackParams.REACTOR],
        params[StackParams.STATS],
        params[StackParams.RNG],
    ).and_then(next_)


def _requeues(params: Params, next_: HttpService) -> HttpService:
    return RequeueFilter(params[StackParams.REQUEUE_BUDGET], params[StackParams.STATS]).and_then(
        next_
    )


def _failure_accrual(params: Params, next_: HttpService) -> HttpService:
    spec = params[StackParams.CLIENT].failure_accrual
    policy = FAILURE_ACCRUAL.get(spec.kind).factory(spec.config)
    address = params[StackParams.ADDRESS]
    label = (
        address.show() if address is not None else ""
    )  # names the endpoint in mark-dead/revive logs
    return FailureAccrualService(
        next_,
        policy,
        params[StackParams.CLASSIFIER],
        params[StackParams.REACTOR],
        params[StackParams.STATS],
        label=label,
    )


def _fail_fast(params: Params, next_: HttpService) -> HttpService:
    """client.failFast: out at the first connection failure, probed back after a backoff."""
    if not params[StackParams.CLIENT].fail_fast:
        return next_
    address = params[StackParams.ADDRESS]
    label = address.show() if address is not None else ""
    return fail_fast_service(
        next_,
        params[StackParams.REACTOR],
        params[StackParams.STATS],
        params[StackParams.RNG],
        label=label,
    )


def _attempt_timeout(params: Params, next_: HttpService) -> HttpService:
    timeout_ms = params[StackParams.CLIENT].request_attempt_timeout_ms
    if not timeout_ms:
        return next_
    return TimeoutFilter(timeout_ms / 1000.0, params[StackParams.REACTOR]).and_then(next_)


Layer = Literal["server", "service", "client", "endpoint"]


@dataclass(frozen=True)
class StackEdit:
    """A plugin's module, inserted into one layer before or after a named role."""

    layer: Layer
    module: HttpModule
    before: str | None = None
    after: str | None = None

    def __post_init__(self) -> None:
        if (self.before is None) == (self.after is None):
            raise ValueError(
                f"stack edit {self.module.role!r}: give exactly one of before= or after="
            )

    def apply(self, stack: HttpStack) -> HttpStack:
        if self.before is not None:
            return stack.insert_before(self.before, self.module)
        assert self.after is not None
        return stack.insert_after(self.after, self.module)


@dataclass(frozen=True)
class RouterStacks:
    server: HttpStack
    service: HttpStack
    client: HttpStack
    endpoint: HttpStack

    def edited(self, edits: Iterable[StackEdit]) -> RouterStacks:
        """These stacks with ``edits`` applied in order (a missing role raises KeyError)."""
        stacks = {
            "server": self.server,
            "service": self.service,
            "client": self.client,
            "endpoint": self.endpoint,
        }
        for edit in edits:
            stacks[edit.layer] = edit.apply(stacks[edit.layer])
        return RouterStacks(**stacks)


DEFAULT_STACKS = RouterStacks(
    server=Stack((Module("stats", _stats, "requests, success, failures, latency per server"),)),
    service=Stack(
        (
            Module("stats", _stats, "requests, success, failures, latency per logical name"),
            Module("deadline", _deadline, "totalTimeoutMs and l5d-ctx-deadline"),
            Module("retries", _retries, "retries of retryable failures within a budget"),
        )
    ),
    client=Stack(
        (
            Module("stats", _stats, "requests, success, failures, latency per bound name"),
            Module("requeues", _requeues, "re-send what never reached a server"),
        )
    ),
    endpoint=Stack(
        (
            Module(
                "failureAccrual", _failure_accrual, "mark failing endpoints dead, probe them back"
            ),
            Module("failFast", _fail_fast, "client.failFast: out at the first connection failure"),
            Module("attemptTimeout", _attempt_timeout, "requestAttemptTimeoutMs"),
        )
    ),
)
