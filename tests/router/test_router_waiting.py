"""BindingWaiters: requests held while a binding is pending."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, succeed
from twisted.internet.task import Clock

from l5d_twisted.errors import BindingTimeout
from l5d_twisted.router.waiting import BindingWaiters


def outcomes(d: Any) -> list[Any]:
    got: list[Any] = []
    d.addBoth(got.append)
    return got


def test_release_runs_the_request_and_cancels_its_timer() -> None:
    clock = Clock()
    waiters = BindingWaiters(clock, 5.0, lambda: "binding /svc/a")
    got = outcomes(waiters.wait_then(lambda: succeed("routed")))
    waiters.release_all()
    assert got == ["routed"]
    assert clock.getDelayedCalls() == []


def test_timeout_fails_with_binding_timeout() -> None:
    clock = Clock()
    waiters = BindingWaiters(clock, 5.0, lambda: "binding /svc/a")
    got = outcomes(waiters.wait_then(lambda: succeed("routed")))
    clock.advance(5.0)
    assert got[0].check(BindingTimeout) and "binding /svc/a" in got[0].value.message


def test_a_cancelled_wait_frees_its_timer_and_place_at_once() -> None:
    clock = Clock()
    waiters = BindingWaiters(clock, 5.0, lambda: "binding /svc/a")
    called: list[bool] = []
    d = waiters.wait_then(lambda: succeed(called.append(True)))
    got = outcomes(d)
    d.cancel()
    assert got[0].check(CancelledError)
    assert clock.getDelayedCalls() == []  # no timer left behind for the binding timeout
    waiters.release_all()
    assert called == []  # the request that gave up is not routed later
