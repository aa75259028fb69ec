from __future__ import annotations

from typing import Any

import pytest
from resilience_fakes import FakeEndpoint, ScriptedService, TrackedBody, request, response
from twisted.internet.task import Clock

from l5d_twisted import errors
from l5d_twisted.request_context import DEADLINE
from l5d_twisted.resilience.deadline import DeadlineFilter, parse_deadlines
from l5d_twisted.resilience.timeouts import TimeoutFilter

S = 1_000_000_000


def outcome_of(d: Any) -> Any:
    got: list[Any] = []
    d.addBoth(got.append)
    return got[0] if got else None


def test_timeout_fires_and_cancels_inner() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    d = TimeoutFilter(0.25, clock).and_then(ep)(request())
    clock.advance(0.24)
    assert not d.called
    clock.advance(0.01)
    failure = outcome_of(d)
    assert failure.check(errors.RequestTimeout)
    assert failure.value.status == 503
    assert "250 ms" in failure.value.message
    assert ep.calls[0][1].called  # the inner call was cancelled
    assert not clock.getDelayedCalls()


def test_answer_in_time_passes_and_cancels_timer() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    d = TimeoutFilter(1, clock).and_then(ep)(request())
    ep.answer_all(response(200))
    assert outcome_of(d).status == 200
    assert not clock.getDelayedCalls()


def test_late_answer_is_discarded() -> None:
    clock = Clock()

    class Stubborn(FakeEndpoint):
        def __call__(self, req: Any) -> Any:
            from twisted.internet.defer import Deferred

            d: Deferred[Any] = Deferred(lambda _: None)  # ignores cancel... then errbacks
            self.calls.append((req, d))
            return d

    ep = Stubborn()
    d = TimeoutFilter(1, clock).and_then(ep)(request())
    clock.advance(1)
    assert outcome_of(d).check(errors.RequestTimeout)


def test_synchronous_answer_needs_no_timer() -> None:
    clock = Clock()
    d = TimeoutFilter(1, clock).and_then(ScriptedService(response(204)))(request())
    assert outcome_of(d).status == 204 and not clock.getDelayedCalls()


def test_parse_deadlines_strictest_wins_and_malformed_ignored() -> None:
    assert parse_deadlines([b"1 500", b"2 300, 3 400"]) == 300
    assert parse_deadlines([b"garbage", b"1 2 3", b"x 5", b"1 -4", b"7 900"]) == 900
    assert parse_deadlines([b"", b" , "]) is None


def deadline_header(req: Any) -> list[bytes]:
    return list(req.headers.get_all(b"l5d-ctx-deadline"))


def test_deadline_from_header_reencoded_and_enforced() -> None:
    clock = Clock()
    clock.advance(100)
    ep = FakeEndpoint()
    req = request(
        headers=[
            (b"l5d-ctx-deadline", b"%d %d" % (99 * S, 102 * S)),
            (b"L5d-Ctx-Deadline", b"%d %d" % (99 * S, 101 * S)),
        ]
    )
    d = DeadlineFilter(clock, None).and_then(ep)(req)
    forwarded = ep.calls[0][0]
    assert deadline_header(forwarded) == [b"%d %d" % (100 * S, 101 * S)]
    assert forwarded.ctx[DEADLINE] == 101
    clock.advance(1)
    assert outcome_of(d).check(errors.DeadlineExceeded)


def test_total_timeout_stricter_than_header() -> None:
    clock = Clock()
    clock.advance(100)
    ep = FakeEndpoint()
    req = request(headers=[(b"l5d-ctx-deadline", b"%d %d" % (99 * S, 110 * S))])
    d = DeadlineFilter(clock, 2.0).and_then(ep)(req)
    assert deadline_header(ep.calls[0][0]) == [b"%d %d" % (100 * S, 102 * S)]
    clock.advance(2)
    failure = outcome_of(d)
    assert failure.check(errors.RequestTimeout) and failure.value.status == 503


def test_total_timeout_alone_sets_header() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    d = DeadlineFilter(clock, 0.5).and_then(ep)(request())
    assert deadline_header(ep.calls[0][0]) == [b"0 %d" % (S // 2)]
    ep.answer_all(response(200))
    assert outcome_of(d).status == 200


def test_past_deadline_answers_at_once_without_calling() -> None:
    clock = Clock()
    clock.advance(100)
    ep = FakeEndpoint()
    req = request(headers=[(b"l5d-ctx-deadline", b"%d %d" % (90 * S, 99 * S))])
    failure = outcome_of(DeadlineFilter(clock, 5).and_then(ep)(req))
    assert failure.check(errors.DeadlineExceeded) and failure.value.status == 503
    assert not ep.calls


def test_no_deadline_no_timeout_passes_through_untouched() -> None:
    clock = Clock()
    ep = FakeEndpoint()
    req = request(headers=[(b"l5d-ctx-deadline", b"nonsense")])
    d = DeadlineFilter(clock, None).and_then(ep)(req)
    assert ep.calls[0][0] is req and deadline_header(req) == [b"nonsense"]
    assert not clock.getDelayedCalls()
    body = TrackedBody(b"x")
    ep.answer_all(response(200, body=body))
    assert outcome_of(d).body is body


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_timeouts_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        TimeoutFilter(bad, Clock())
    with pytest.raises(ValueError):
        DeadlineFilter(Clock(), bad)
