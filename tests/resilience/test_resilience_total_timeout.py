"""totalTimeoutMs timed by one queue per filter (``deadline._TotalTimer``), not a timer per call.

Calls start in order and share one timeout, so each must still fail at exactly its own
deadline, an answered call must never be failed later, no timer may outlive the last
pending call, and the queue must stay bounded by the calls in flight.
"""

from __future__ import annotations

from typing import Any

from resilience_fakes import FakeEndpoint, request, response
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from l5d_twisted import errors
from l5d_twisted.request_context import DEADLINE
from l5d_twisted.resilience.deadline import DeadlineFilter


def outcomes(d: Any) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_each_call_times_out_at_its_own_deadline_in_order() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    service = DeadlineFilter(clock, 1.0).and_then(ep)
    first = outcomes(service(request()))
    clock.advance(0.25)
    second = outcomes(service(request()))
    clock.advance(0.25)
    third = outcomes(service(request()))
    assert [r.ctx[DEADLINE] for r, _ in ep.calls] == [1.0, 1.25, 1.5]
    ep.calls[1][1].callback(response(200))  # the middle one is answered in time
    assert second[0].status == 200
    clock.advance(0.49)
    assert not first
    clock.advance(0.01)  # t = 1.0
    assert first[0].check(errors.RequestTimeout) and "1000 ms total timeout" in str(first[0].value)
    assert ep.calls[0][1].called  # the inner call was cancelled
    assert len(second) == 1 and not third
    clock.advance(0.49)
    assert not third
    clock.advance(0.01)  # t = 1.5
    assert third[0].check(errors.RequestTimeout) and third[0].value.status == 503
    assert not clock.getDelayedCalls()


def test_answered_calls_leave_no_timer_behind() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    service = DeadlineFilter(clock, 2.0).and_then(ep)
    got = [outcomes(service(request())) for _ in range(3)]
    assert len(clock.getDelayedCalls()) == 1  # one timer for all three
    ep.answer_all(response(200))
    assert [g[0].status for g in got] == [200, 200, 200]
    assert not clock.getDelayedCalls()
    clock.advance(5)
    assert [len(g) for g in got] == [1, 1, 1]
    # and the next call is timed afresh
    later = outcomes(service(request()))
    clock.advance(2)
    assert later[0].check(errors.RequestTimeout)


def test_a_cancelled_call_cancels_the_next_layer_and_never_times_out() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    service = DeadlineFilter(clock, 1.0).and_then(ep)
    d = service(request())
    other = outcomes(service(request()))
    got = outcomes(d)
    d.cancel()
    assert got[0].check(CancelledError)
    assert ep.calls[0][1].called
    clock.advance(1)
    assert len(got) == 1
    assert other[0].check(errors.RequestTimeout)
    assert not clock.getDelayedCalls()


def test_the_queue_stays_bounded_by_the_calls_in_flight() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    deadline = DeadlineFilter(clock, 10.0)
    service = deadline.and_then(ep)
    stuck = outcomes(service(request()))  # the oldest call stays pending throughout
    for _ in range(5000):
        service(request())
        ep.calls[-1][1].callback(response(200))
        clock.advance(0.001)
    assert deadline._total is not None
    assert len(deadline._total._queue) <= 66  # (compacted past twice the pending calls)
    clock.advance(10)
    assert stuck[0].check(errors.RequestTimeout)
    assert not clock.getDelayedCalls()


def test_a_request_deadline_header_still_uses_its_own_timer() -> None:
    clock = Clock()
    clock.advance(100)
    ep = FakeEndpoint()
    service = DeadlineFilter(clock, 5.0).and_then(ep)
    s = 1_000_000_000
    got = outcomes(service(request(headers=[(b"l5d-ctx-deadline", b"%d %d" % (99 * s, 101 * s))])))
    timed = outcomes(service(request()))
    clock.advance(1)
    assert got[0].check(errors.DeadlineExceeded)
    assert not timed
    clock.advance(4)
    assert timed[0].check(errors.RequestTimeout)
