"""Timeouts from the configuration are one number object per distinct value, shared by
every route and client (issue 17: a float or large int per name otherwise)."""

from __future__ import annotations

from twisted.internet.task import Clock

from l5d_twisted.resilience.deadline import DeadlineFilter
from l5d_twisted.router.stacks import seconds


def test_seconds_of_one_value_is_one_object() -> None:
    a = seconds(int("1500"))
    b = seconds(int("1500"))
    assert a == 1.5 and a is b
    assert seconds(250) == 0.25


def test_deadline_filters_share_their_timeout_in_nanoseconds() -> None:
    one, two = DeadlineFilter(Clock(), 10.0), DeadlineFilter(Clock(), 10.0)
    assert one._total_ns == 10_000_000_000 and one._total_ns is two._total_ns
    assert DeadlineFilter(Clock(), None)._total_ns is None
