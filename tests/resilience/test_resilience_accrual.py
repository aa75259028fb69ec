from __future__ import annotations

from typing import Any

import pytest
from resilience_fakes import FakeEndpoint, RecordingStats, request, response
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from l5d_twisted import errors
from l5d_twisted.registry import FAILURE_ACCRUAL
from l5d_twisted.resilience.accrual import AccrualState, FailureAccrualService
from l5d_twisted.resilience.accrual_policies import (
    ConsecutiveFailuresPolicy,
    NoAccrualPolicy,
    SuccessRatePolicy,
    SuccessRateWindowedPolicy,
)
from l5d_twisted.resilience.backoff import ConstantBackoff
from l5d_twisted.resilience.classifiers import non_retryable_5xx
from l5d_twisted.service import Status


def make(policy: Any) -> tuple[FailureAccrualService, FakeEndpoint, Clock, RecordingStats]:
    clock = Clock()
    stats = RecordingStats()
    ep = FakeEndpoint()
    svc = FailureAccrualService(ep, policy, non_retryable_5xx(), clock, stats)
    return svc, ep, clock, stats


def call(svc: FailureAccrualService, ep: FakeEndpoint, outcome: Any) -> Any:
    got: list[Any] = []
    svc(request()).addBoth(got.append)
    d = ep.calls[-1][1]
    if isinstance(outcome, BaseException):
        d.errback(outcome)
    else:
        d.callback(outcome)
    return got[0]


def test_consecutive_failures_marks_dead_without_failing_the_request() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(3, ConstantBackoff(10)))
    for _ in range(2):
        assert call(svc, ep, response(500)).status == 500
    assert svc.status is Status.OPEN
    last = call(svc, ep, response(503))
    assert last.status == 503  # the request that tripped it is answered as usual
    assert svc.status is Status.BUSY
    assert stats.counters["failure_accrual/removals"] == 1
    assert stats.counters["failure_accrual/removed_for_ms"] == 10000


def test_success_resets_the_count() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(3, ConstantBackoff(10)))
    for outcome in [response(500), response(500), response(200), response(500), response(500)]:
        call(svc, ep, outcome)
    assert svc.status is Status.OPEN


def test_exactly_one_probe_then_revive() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(1, ConstantBackoff(5)))
    call(svc, ep, errors.ConnectionReset("reset"))
    assert svc.status is Status.BUSY
    clock.advance(4.9)
    assert svc.status is Status.BUSY
    clock.advance(0.1)
    assert svc.status is Status.OPEN  # probe window
    svc(request())
    assert svc.state is AccrualState.PROBING
    assert svc.status is Status.BUSY  # only one probe at a time
    assert stats.counters["failure_accrual/probes"] == 1
    ep.calls[-1][1].callback(response(200))
    assert svc.state is AccrualState.ALIVE and svc.status is Status.OPEN
    assert stats.counters["failure_accrual/revivals"] == 1


def test_failed_probe_marks_dead_with_next_backoff() -> None:
    class Growing(ConstantBackoff):
        def delays(self, rng: Any) -> Any:
            return iter([1.0, 2.0, 4.0, 8.0])

    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(1, Growing(0)))
    call(svc, ep, response(500))
    clock.advance(1)
    assert svc.status is Status.OPEN
    call(svc, ep, response(500))  # the probe fails
    assert svc.status is Status.BUSY
    clock.advance(1.9)
    assert svc.status is Status.BUSY
    clock.advance(0.1)
    assert svc.status is Status.OPEN
    assert stats.counters["failure_accrual/removed_for_ms"] == 3000
    call(svc, ep, response(200))
    # revived: the backoff starts over
    call(svc, ep, response(500))
    assert stats.counters["failure_accrual/removed_for_ms"] == 4000


def test_requests_while_dead_fail_open_and_a_success_revives() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(1, ConstantBackoff(60)))
    call(svc, ep, response(500))
    call(svc, ep, response(500))  # sent anyway (balancer failed open): no change
    assert stats.counters["failure_accrual/removals"] == 1
    call(svc, ep, response(200))
    assert svc.status is Status.OPEN
    assert not clock.getDelayedCalls()  # the probe timer was cancelled


def test_cancelled_probe_reopens_the_probe() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(1, ConstantBackoff(1)))
    call(svc, ep, response(500))
    clock.advance(1)
    d = svc(request())
    d.addErrback(lambda f: f.trap(CancelledError))
    d.cancel()
    assert svc.status is Status.OPEN and svc.state is AccrualState.PROBE_OPEN


def test_inner_status_wins_and_close_cancels_timer() -> None:
    svc, ep, clock, stats = make(ConsecutiveFailuresPolicy(1, ConstantBackoff(1)))
    ep.state = Status.BUSY
    assert svc.status is Status.BUSY
    ep.state = Status.OPEN
    call(svc, ep, response(500))
    svc.close()
    assert ep.closed and not clock.getDelayedCalls()


def test_success_rate_policy() -> None:
    policy = SuccessRatePolicy(0.8, 10, ConstantBackoff(7))
    # fewer than `requests` outcomes: never dead
    for _ in range(5):
        assert policy.mark_dead_on_failure(0) is None
    policy = SuccessRatePolicy(0.8, 10, ConstantBackoff(7))
    for _ in range(20):
        policy.record_success(0)
    results = [policy.mark_dead_on_failure(0) for _ in range(3)]
    assert results[:2] == [None, None]  # 0.9^2 = 0.81
    assert results[2] == 7  # 0.729 < 0.8


def test_success_rate_catches_a_40_percent_failing_endpoint() -> None:
    import random

    rng = random.Random(5)
    svc, ep, clock, stats = make(SuccessRatePolicy(0.9, 20, ConstantBackoff(30)))
    for _ in range(100):
        if svc.status is Status.OPEN:
            call(svc, ep, response(500) if rng.random() < 0.4 else response(200))
    assert stats.counters["failure_accrual/removals"] == 1
    assert svc.status is Status.BUSY


def test_success_rate_windowed_policy() -> None:
    policy = SuccessRateWindowedPolicy(0.5, 10, ConstantBackoff(3))
    assert policy.mark_dead_on_failure(0.0) is None  # observed for less than a window
    for t in range(1, 10):
        policy.record_success(float(t))
    assert policy.mark_dead_on_failure(10.0) is None  # 9/11 succeeded
    for _ in range(10):
        result = policy.mark_dead_on_failure(10.5)
    assert result == 3
    # old outcomes leave the window
    policy2 = SuccessRateWindowedPolicy(0.5, 10, ConstantBackoff(3))
    for _ in range(10):
        policy2.mark_dead_on_failure(0.0)
    for t in range(11, 15):
        policy2.record_success(float(t))
    assert policy2.mark_dead_on_failure(15.0) is None  # 4/5: the early failures expired


def test_none_never_marks_dead() -> None:
    svc, ep, clock, stats = make(NoAccrualPolicy())
    for _ in range(100):
        call(svc, ep, response(500))
    assert svc.status is Status.OPEN


@pytest.mark.parametrize(
    "kind",
    ["io.l5d.consecutiveFailures", "io.l5d.successRate", "io.l5d.successRateWindowed", "none"],
)
def test_registered_with_defaults(kind: str) -> None:
    plugin = FAILURE_ACCRUAL.get(kind)
    policy = plugin.factory(plugin.config_type())
    assert hasattr(policy, "mark_dead_on_failure")


def test_default_backoff_is_jittered_5s_to_300s() -> None:
    plugin = FAILURE_ACCRUAL.get("io.l5d.consecutiveFailures")
    config = plugin.config_type()
    assert config.backoff.kind == "jittered"
    assert (config.backoff.config.min_ms, config.backoff.config.max_ms) == (5000, 300000)
    policy = plugin.factory(config)
    delays = []
    for _ in range(5):
        delays.append(policy.mark_dead_on_failure(0))
    assert delays[:4] == [None] * 4 and delays[4] == 5.0
    assert all(5.0 <= (policy.mark_dead_on_failure(0) or 0) <= 300.0 for _ in range(50))


def test_fail_fast_only_connection_failures_count() -> None:
    from l5d_twisted.resilience.fail_fast import fail_fast_service

    clock, stats, ep = Clock(), RecordingStats(), FakeEndpoint()
    svc = fail_fast_service(ep, clock, stats)
    call(svc, ep, response(500))
    call(svc, ep, errors.ConnectionReset("reset"))
    assert svc.status is Status.OPEN
    failure = call(svc, ep, errors.ConnectionFailed("refused"))
    assert failure.check(errors.ConnectionFailed)  # answered as usual
    assert svc.status is Status.BUSY
    assert (
        stats.counters["failfast/removals"] == 1
        and stats.counters["failfast/removed_for_ms"] == 1000
    )
    clock.advance(1)
    call(svc, ep, response(503))  # the probe reached the server: reachable again
    assert svc.status is Status.OPEN and stats.counters["failfast/revivals"] == 1
