"""linkerd 1's config keys for balancers, accrual, backoffs and classifiers decode into our plugins."""

from __future__ import annotations

import random

import pytest
from twisted.internet.task import Clock

from l5d_twisted.balancers.aperture import ApertureBalancer
from l5d_twisted.balancers.base import BalancerContext
from l5d_twisted.balancers.ewma import EwmaBalancer
from l5d_twisted.balancers.p2c import P2CBalancer
from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import BACKOFFS, BALANCERS, CLASSIFIERS, FAILURE_ACCRUAL
from l5d_twisted.resilience.accrual_policies import SuccessRatePolicy, SuccessRateWindowedPolicy

CONFIG = """
routers:
- protocol: http
  client:
    kind: io.l5d.static
    configs:
    - prefix: /#/io.l5d.fs/a
      loadBalancer: {kind: p2c, maxEffort: 9}
      failureAccrual:
        kind: io.l5d.successRate
        successRate: 0.95
        requests: 50
        backoff: {kind: constant, ms: 1500}
    - prefix: /#/io.l5d.fs/b
      loadBalancer: {kind: ewma, decayTimeMs: 2000, maxEffort: 3}
      failureAccrual: {kind: io.l5d.successRateWindowed, successRate: 0.5, window: 7}
    - prefix: /#/io.l5d.fs/c
      loadBalancer: {kind: aperture, smoothWindowMs: 1000, lowLoad: 0.25, highLoad: 4, minAperture: 2}
      failureAccrual:
        kind: io.l5d.consecutiveFailures
        failures: 2
        backoff: {kind: jittered, minMs: 100, maxMs: 900}
  service:
    responseClassifier: {kind: io.l5d.http.retryableIdempotent5XX}
    retries:
      budget: {minRetriesPerSec: 3, percentCanRetry: 0.5, ttlSecs: 5}
      backoff: {kind: jittered, minMs: 10, maxMs: 100}
"""


def ctx() -> BalancerContext:
    return BalancerContext(Clock(), rng=random.Random(0))


def build_balancer(spec):  # type: ignore[no-untyped-def]
    return BALANCERS.get(spec.kind).factory(spec.config, ctx())


def test_linkerd_keys_decode_and_build() -> None:
    router = load_config(CONFIG).routers[0]
    a = router.client.params_for(Path.read("/#/io.l5d.fs/a"))
    b = router.client.params_for(Path.read("/#/io.l5d.fs/b"))
    c = router.client.params_for(Path.read("/#/io.l5d.fs/c"))

    lb = build_balancer(a.load_balancer)
    assert isinstance(lb, P2CBalancer) and lb.max_effort == 9
    lb = build_balancer(b.load_balancer)
    assert isinstance(lb, EwmaBalancer) and lb.decay_time_s == 2.0 and lb.max_effort == 3
    lb = build_balancer(c.load_balancer)
    assert isinstance(lb, ApertureBalancer)
    assert (lb.smooth_window_s, lb.low_load, lb.high_load, lb.min_aperture) == (1.0, 0.25, 4.0, 2)

    policy = FAILURE_ACCRUAL.get(a.failure_accrual.kind).factory(a.failure_accrual.config)
    assert isinstance(policy, SuccessRatePolicy) and (policy.success_rate, policy.requests) == (
        0.95,
        50,
    )
    assert policy._next_delay() == 1.5
    policy = FAILURE_ACCRUAL.get(b.failure_accrual.kind).factory(b.failure_accrual.config)
    assert isinstance(policy, SuccessRateWindowedPolicy) and policy.window_s == 7
    policy = FAILURE_ACCRUAL.get(c.failure_accrual.kind).factory(c.failure_accrual.config)
    assert [policy.mark_dead_on_failure(0) for _ in range(2)][1] == 0.1

    service = router.service.params_for(Path.read("/svc/x"))
    assert service.response_classifier.kind == "io.l5d.http.retryableIdempotent5XX"
    CLASSIFIERS.get(service.response_classifier.kind).factory(service.response_classifier.config)
    backoff = BACKOFFS.get(service.retries.backoff.kind).factory(service.retries.backoff.config)
    assert next(backoff.delays(random.Random(0))) == 0.01


def test_defaults_build() -> None:
    router = load_config("routers:\n- protocol: http\n").routers[0]
    params = router.client.params_for(Path.read("/#/io.l5d.fs/a"))
    assert isinstance(build_balancer(params.load_balancer), P2CBalancer)
    policy = FAILURE_ACCRUAL.get(params.failure_accrual.kind).factory(params.failure_accrual.config)
    assert [policy.mark_dead_on_failure(0) for _ in range(5)][-1] == 5.0


@pytest.mark.parametrize(
    "block, words",
    [
        ("loadBalancer: {kind: aperture, lowLoad: 3, highLoad: 1}", ["lowLoad"]),
        (
            "failureAccrual: {kind: io.l5d.consecutiveFailures, backoff: {kind: jittered, minMs: 10, maxMs: 5}}",
            ["maxMs"],
        ),
        ("loadBalancer: {kind: p2c, maxEffort: 0}", ["maxEffort"]),
        ("loadBalancer: {kind: leastConnections}", ["leastConnections"]),
    ],
)
def test_bad_values_are_config_errors(block: str, words: list[str]) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(f"routers:\n- protocol: http\n  client:\n    {block}\n")
    for word in words:
        assert word in str(info.value)
