"""``client.failFast``: take an endpoint out at its first connection failure.

Finagle's FailFast: when connecting to an endpoint fails, nothing else is likely to get
through soon, so the endpoint is marked down at once (status BUSY, the balancer sends
elsewhere) and one request is let through after a jittered backoff (1 s, growing up to
30 s) to see whether it accepts connections again.  Only ``errors.ConnectionFailed`` counts;
responses of any status and other errors show the endpoint is reachable.

It is failure accrual with a policy of "one connection failure", so it is built from the
same :class:`FailureAccrualService`; stats go to ``failfast/{removals,revivals,probes,
removed_for_ms}``.
"""

from __future__ import annotations

import random
from typing import Any

from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.message import Request, Response
from l5d_twisted.resilience.accrual import FailureAccrualService
from l5d_twisted.resilience.accrual_policies import ConsecutiveFailuresPolicy
from l5d_twisted.resilience.backoff import DecorrelatedJitterBackoff
from l5d_twisted.resilience.classifier import ResponseClass
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver

FAIL_FAST_BACKOFF = DecorrelatedJitterBackoff(1.0, 30.0)


class ConnectionFailureClassifier:
    """Only a failure to connect is a failure."""

    def classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass:
        if isinstance(outcome, ConnectionFailed):
            return ResponseClass.RETRYABLE_FAILURE
        return ResponseClass.SUCCESS


def fail_fast_service(
    endpoint: Service[Any, Any],
    clock: Any,
    stats: StatsReceiver,
    rng: random.Random | None = None,
    label: str = "",
) -> FailureAccrualService:
    policy = ConsecutiveFailuresPolicy(1, FAIL_FAST_BACKOFF, rng)
    return FailureAccrualService(
        endpoint,
        policy,
        ConnectionFailureClassifier(),
        clock,
        stats,
        label=label,
        stats_scope="failfast",
    )
