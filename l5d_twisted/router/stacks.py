"""The default stacks a router builds its layers from, by role.

Three layers, cached bottom-up as in linkerd 1:

* **service** (per logical name, e.g. ``/svc/hello``): ``stats`` -> ``deadline``
  (totalTimeoutMs and l5d-ctx-deadline) -> ``retries`` -> the binding service.
* **client** (per bound name, e.g. ``/#/io.l5d.fs/world``): ``stats`` -> ``requeues`` ->
  the balancer.
* **endpoint** (per address): ``failureAccrual`` -> ``failFast`` -> ``attemptTimeout`` -> the pooled
  connection.

``stack.make(params, leaf)`` receives a params mapping; see :class:`StackParams` for the
keys.  Replace a role (``ROUTER_STACKS.service.replace("retries", ...)``) to change
behaviour without touching the router.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l5d_twisted.registry import BACKOFFS, FAILURE_ACCRUAL
from l5d_twisted.resilience.accrual import FailureAccrualService
from l5d_twisted.resilience.deadline import DeadlineFilter
from l5d_twisted.resilience.fail_fast import fail_fast_service
from l5d_twisted.resilience.requeues import RequeueFilter
from l5d_twisted.resilience.retries import RetryBudget, RetryFilter
from l5d_twisted.resilience.timeouts import TimeoutFilter
from l5d_twisted.service import Module, Service, Stack
from l5d_twisted.telemetry.filters import StatsFilter


@dataclass(frozen=True)
class StackParams:
    """Keys of the params mapping handed to every module."""

    REACTOR = "reactor"
    STATS = "stats"  # the StatsReceiver scoped to this layer
    CLASSIFIER = "classifier"
    RNG = "rng"
    SERVICE = "service_params"  # config ServiceParams (service layer)
    CLIENT = "client_params"  # config ClientParams (client and endpoint layers)
    REQUEUE_BUDGET = "requeue_budget"
    ADDRESS = "address"  # the endpoint's Address (endpoint layer)


def _stats(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    return StatsFilter(params[StackParams.STATS], params[StackParams.CLASSIFIER], params[StackParams.REACTOR]).and_then(next_)


def _deadline(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    total_ms = params[StackParams.SERVICE].total_timeout_ms
    total = total_ms / 1000.0 if total_ms else None
    return DeadlineFilter(params[StackParams.REACTOR], total).and_then(next_)


def _retries(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
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
        params[StackParams.CLASSIFIER], budget, backoff, params[StackParams.REACTOR], params[StackParams.STATS], params[StackParams.RNG]
    ).and_then(next_)


def _requeues(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    return RequeueFilter(params[StackParams.REQUEUE_BUDGET], params[StackParams.STATS]).and_then(next_)


def _failure_accrual(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    spec = params[StackParams.CLIENT].failure_accrual
    policy = FAILURE_ACCRUAL.get(spec.kind).factory(spec.config)
    address = params.get(StackParams.ADDRESS)
    label = address.show() if address is not None else ""  # names the endpoint in mark-dead/revive logs
    return FailureAccrualService(next_, policy, params[StackParams.CLASSIFIER], params[StackParams.REACTOR], params[StackParams.STATS], label=label)


def _fail_fast(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    """client.failFast: out at the first connection failure, probed back after a backoff."""
    if not params[StackParams.CLIENT].fail_fast:
        return next_
    address = params.get(StackParams.ADDRESS)
    label = address.show() if address is not None else ""
    return fail_fast_service(next_, params[StackParams.REACTOR], params[StackParams.STATS], params[StackParams.RNG], label=label)


def _attempt_timeout(params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]:
    timeout_ms = params[StackParams.CLIENT].request_attempt_timeout_ms
    if not timeout_ms:
        return next_
    return TimeoutFilter(timeout_ms / 1000.0, params[StackParams.REACTOR]).and_then(next_)


@dataclass(frozen=True)
class RouterStacks:
    service: Stack
    client: Stack
    endpoint: Stack


DEFAULT_STACKS = RouterStacks(
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
            Module("failureAccrual", _failure_accrual, "mark failing endpoints dead, probe them back"),
            Module("failFast", _fail_fast, "client.failFast: out at the first connection failure"),
            Module("attemptTimeout", _attempt_timeout, "requestAttemptTimeoutMs"),
        )
    ),
)
