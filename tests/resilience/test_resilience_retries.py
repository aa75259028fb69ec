from __future__ import annotations

import random
from typing import Any

from resilience_fakes import (
    RecordingStats,
    ScriptedService,
    StreamBody,
    TrackedBody,
    request,
    response,
)
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from l5d_twisted import errors
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.naming.path import Path
from l5d_twisted.request_context import DST
from l5d_twisted.resilience.backoff import ConstantBackoff
from l5d_twisted.resilience.budget import RetryBudget
from l5d_twisted.resilience.classifiers import non_retryable_5xx, retryable_read_5xx
from l5d_twisted.resilience.requeues import RequeueFilter
from l5d_twisted.resilience.retries import RetryFilter


def retry_filter(
    clock: Clock,
    stats: RecordingStats,
    budget: RetryBudget | None = None,
    backoff: float = 0.0,
    classifier: Any = None,
) -> RetryFilter:
    budget = budget or RetryBudget(10, 0.2, 10, clock)
    return RetryFilter(
        classifier or retryable_read_5xx(),
        budget,
        ConstantBackoff(backoff),
        clock,
        stats,
        random.Random(1),
    )


def outcome_of(d: Deferred[Any]) -> Any:
    got: list[Any] = []
    d.addBoth(got.append)
    return got[0] if got else None


def test_retries_retryable_failure_until_success() -> None:
    clock, stats = Clock(), RecordingStats()
    bodies = [TrackedBody(b"bad"), TrackedBody(b"bad")]
    svc = ScriptedService(
        response(503, body=bodies[0]), response(503, body=bodies[1]), response(200)
    )
    result = outcome_of(retry_filter(clock, stats).and_then(svc)(request(b"GET")))
    assert result.status == 200
    assert len(svc.requests) == 3
    assert all(b.discarded for b in bodies)  # failed attempts' bodies were dropped
    assert stats.counters["retries/total"] == 2
    assert stats.stats["retries/per_request"] == [2]


def test_non_retryable_not_retried() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(response(503))
    result = outcome_of(retry_filter(clock, stats).and_then(svc)(request(b"POST")))
    assert result.status == 503 and len(svc.requests) == 1
    assert stats.stats["retries/per_request"] == [0]
    svc = ScriptedService(response(503))
    result = outcome_of(
        retry_filter(clock, stats, classifier=non_retryable_5xx()).and_then(svc)(request(b"GET"))
    )
    assert len(svc.requests) == 1


def test_retryable_exception_is_retried_for_any_method() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(errors.ConnectionFailed("refused"), response(200))
    result = outcome_of(
        retry_filter(clock, stats, classifier=non_retryable_5xx()).and_then(svc)(request(b"POST"))
    )
    assert result.status == 200 and len(svc.requests) == 2


def test_streamed_body_never_retried() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(response(503), response(200))
    result = outcome_of(
        retry_filter(clock, stats).and_then(svc)(request(b"GET", body=StreamBody()))
    )
    assert result.status == 503 and len(svc.requests) == 1
    assert stats.counters["retries/budget_exhausted"] == 0


def test_budget_bounds_retries_and_is_reported() -> None:
    clock, stats = Clock(), RecordingStats()
    budget = RetryBudget(min_retries_per_sec=0.5, percent_can_retry=0.0, ttl_secs=10, clock=clock)
    f = retry_filter(clock, stats, budget=budget)
    assert stats.gauge_value("retries/budget") == 5
    svc = ScriptedService(response(503))
    result = outcome_of(f.and_then(svc)(request(b"GET")))
    assert result.status == 503
    assert len(svc.requests) == 6  # 1 + the 5 reserve tokens
    assert stats.counters["retries/budget_exhausted"] == 1
    assert stats.gauge_value("retries/budget") == 0


def test_many_synchronous_retries_do_not_recurse() -> None:
    clock, stats = Clock(), RecordingStats()
    budget = RetryBudget(
        min_retries_per_sec=0, percent_can_retry=5000 / 1000, ttl_secs=10, clock=clock
    )
    for _ in range(1000):
        budget.deposit()
    svc = ScriptedService(response(503))
    result = outcome_of(retry_filter(clock, stats, budget=budget).and_then(svc)(request(b"GET")))
    assert result.status == 503
    assert len(svc.requests) > 3000


def test_backoff_waits_on_the_clock_and_is_cancellable() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(response(503), response(200))
    got: list[Any] = []
    retry_filter(clock, stats, backoff=0.5).and_then(svc)(request(b"GET")).addBoth(got.append)
    assert not got and len(svc.requests) == 1
    clock.advance(0.5)
    assert got[0].status == 200
    # cancel while waiting for the backoff
    svc = ScriptedService(response(503), response(200))
    d = retry_filter(clock, stats, backoff=0.5).and_then(svc)(request(b"GET"))
    d.cancel()
    assert outcome_of(d).check(CancelledError)
    assert not clock.getDelayedCalls()
    clock.advance(1)
    assert len(svc.requests) == 1


def test_cancel_propagates_to_the_attempt_in_flight() -> None:
    clock, stats = Clock(), RecordingStats()
    cancelled: list[bool] = []
    inner: Deferred[Any] = Deferred(lambda _: cancelled.append(True))
    svc = ScriptedService(inner)
    d = retry_filter(clock, stats).and_then(svc)(request(b"GET"))
    d.cancel()
    assert cancelled == [True]
    assert outcome_of(d).check(CancelledError)


def test_each_retry_is_a_fresh_copy_of_the_original_request() -> None:
    clock, stats = Clock(), RecordingStats()
    seen: list[list[tuple[bytes, bytes]]] = []

    class Mutating(ScriptedService):
        def __call__(self, req: Any) -> Any:
            req.headers.add(b"via", b"1.1 linkerd")
            seen.append(list(req.headers.items()))
            return super().__call__(req)

    body = BufferedBody(b"payload")
    svc = Mutating(response(503), response(200))
    req = request(b"GET", headers=[(b"host", b"hello")], body=body)
    req.ctx[DST] = Path.read("/svc/hello")
    outcome_of(retry_filter(clock, stats).and_then(svc)(req))
    assert seen[1] == [(b"host", b"hello"), (b"via", b"1.1 linkerd")]
    assert svc.requests[1].body is body and svc.requests[1].ctx[DST] == Path.read("/svc/hello")


def test_requeue_connection_failures_immediately() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(
        errors.ConnectionFailed("refused"), errors.ConnectionFailed("refused"), response(200)
    )
    f = RequeueFilter(RetryBudget(10, 0.2, 10, clock), stats)
    result = outcome_of(f.and_then(svc)(request(b"POST", body=StreamBody())))
    assert result.status == 200
    assert stats.counters["retries/requeues"] == 2


def test_requeue_not_for_responses_resets_or_no_hosts() -> None:
    clock, stats = Clock(), RecordingStats()
    f = RequeueFilter(RetryBudget(10, 0.2, 10, clock), stats)
    for outcome in [
        response(503),
        errors.ConnectionReset("reset"),
        errors.NoHostsAvailable("none"),
    ]:
        svc = ScriptedService(outcome, response(200))
        outcome_of(f.and_then(svc)(request()))
        assert len(svc.requests) == 1
    assert stats.counters["retries/requeues"] == 0


def test_requeue_limits() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(errors.ConnectionFailed("refused"))
    f = RequeueFilter(RetryBudget(100, 0.2, 10, clock), stats, max_requeues=25)
    result = outcome_of(f.and_then(svc)(request()))
    assert result.check(errors.ConnectionFailed)
    assert len(svc.requests) == 26
    assert stats.counters["retries/budget_exhausted"] == 1
    svc = ScriptedService(errors.ConnectionFailed("refused"))
    f = RequeueFilter(RetryBudget(0.3, 0.0, 10, clock), stats)
    outcome_of(f.and_then(svc)(request()))
    assert len(svc.requests) == 4  # budget of 3


def test_requeue_never_resends_a_stream_that_began_to_flow() -> None:
    # A TLS handshake failure is retryable (the server never saw the request) but the
    # streamed body may already have been handed to that connection: it cannot be read again.
    from l5d_twisted.http.stream import StreamBody as RealStream

    clock, stats = Clock(), RecordingStats()
    body = RealStream(None, None)

    def consume_then_fail() -> BaseException:
        body.discard()  # what the failed connection's body pipe does
        return errors.ConnectionFailed("TLS with 10.0.0.1:443 failed")

    svc = ScriptedService(consume_then_fail, response(200))
    f = RequeueFilter(RetryBudget(10, 0.2, 10, clock), stats)
    result = outcome_of(f.and_then(svc)(request(b"POST", body=body)))
    assert result.check(errors.ConnectionFailed)
    assert len(svc.requests) == 1
    assert stats.counters["retries/requeues"] == 0


def test_an_unroutable_get_is_answered_at_once_not_retried() -> None:
    clock, stats = Clock(), RecordingStats()
    svc = ScriptedService(errors.BindingTimeout("timed out binding /svc/x"), response(200))
    result = outcome_of(retry_filter(clock, stats, backoff=1.0).and_then(svc)(request(b"GET")))
    assert result.check(errors.BindingTimeout)
    assert len(svc.requests) == 1 and stats.counters["retries/total"] == 0
