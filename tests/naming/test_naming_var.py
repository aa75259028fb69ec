"""Var edge cases binding relies on: no stale values after an observer is closed mid-update."""

from __future__ import annotations

from typing import Any

from l5d_twisted.naming.var import Var


def test_flat_map_never_emits_from_an_inner_var_it_switched_away_from() -> None:
    # The outer and the inner var are the same source: when it changes, the flat_map
    # switches to another inner var before the source reaches the old inner observer.
    source: Var[int] = Var(0)
    other: Var[int] = Var(100)
    derived = source.flat_map(lambda v: source if v == 0 else other)
    seen: list[Any] = []
    derived.observe(seen.append)
    source.update(1)
    assert seen[-1] == 100
    assert derived.sample() == 100


def test_observer_closed_during_an_update_is_not_called() -> None:
    source: Var[int] = Var(0)
    calls: list[str] = []
    handles: dict[str, Any] = {}

    def first(v: int) -> None:
        calls.append(f"first {v}")
        if v == 1:
            handles["second"].close()

    handles["first"] = source.observe(first)
    handles["second"] = source.observe(lambda v: calls.append(f"second {v}"))
    source.update(1)
    assert calls == ["first 0", "second 0", "first 1"]


def test_flat_map_survives_reentrant_outer_changes() -> None:
    outer: Var[int] = Var(0)
    inners = {0: Var("a"), 1: Var("b")}

    def pick(v: int) -> Var[str]:
        if v == 0:
            outer.update(1)  # the inner's first observation changes the outer at once
        return inners[v]

    derived = outer.flat_map(pick)
    seen: list[str] = []
    derived.observe(seen.append)
    assert seen[-1] == "b"
    inners[0].update("stale")
    assert seen[-1] == "b" and not inners[0].observed


def test_an_observer_that_raises_on_its_first_value_leaves_nothing_observed() -> None:
    # E.g. a route whose first state handler fails: the exception reaches the caller, who
    # gets no handle to close, so nothing upstream (a namer's poller) may stay subscribed.
    def boom(_value: Any) -> None:
        raise RuntimeError("observer failed")

    a: Var[int] = Var(1)
    b: Var[int] = Var(2)
    derived: list[Var[Any]] = [
        a,
        a.map(lambda v: v + 1),
        a.flat_map(lambda v: b.map(lambda w: v + w)),
        Var.collect([a, b]),
        Var.collect([a, a.map(lambda v: 1 // (v - 1))]),  # the second source fails to compute
    ]
    for var in derived:
        try:
            var.observe(boom)
        except (RuntimeError, ZeroDivisionError):
            pass
        else:
            raise AssertionError("the observer's exception was swallowed")
        assert not var.observed and not a.observed and not b.observed, var
    # Still usable afterwards.
    seen: list[Any] = []
    handle = derived[2].observe(seen.append)
    b.update(5)
    assert seen == [3, 6]
    handle.close()
    assert not a.observed and not b.observed


def test_one_two_and_three_observers_in_order_and_closing_any_of_them() -> None:
    """One observer is kept in slots, a second in a tuple beside it, from a third a dict
    (issue 17): each state delivers in subscription order and closes cleanly."""
    var: Var[int] = Var(0)
    seen: list[str] = []
    a = var.observe(lambda v: seen.append(f"a{v}"))
    b = var.observe(lambda v: seen.append(f"b{v}"))
    seen.clear()
    var.update(1)
    assert seen == ["a1", "b1"]
    a.close()  # the second takes the first's slots
    var.update(2)
    assert seen == ["a1", "b1", "b2"]
    c = var.observe(lambda v: seen.append(f"c{v}"))
    d = var.observe(lambda v: seen.append(f"d{v}"))  # three: a dict
    seen.clear()
    var.update(3)
    assert seen == ["b3", "c3", "d3"]
    for handle in (b, c, d):
        handle.close()
    assert not var.observed
    seen.clear()
    var.update(4)
    assert seen == []


def test_a_first_observer_closing_itself_still_lets_the_second_see_the_update() -> None:
    var: Var[int] = Var(0)
    seen: list[int] = []
    handles: list[Any] = []

    def first(v: int) -> None:
        if v == 1:
            handles[0].close()

    handles.append(var.observe(first))
    var.observe(seen.append)
    var.update(1)
    assert seen == [0, 1]
    assert var.observed


def test_a_first_observer_closing_the_second_during_an_update_stops_it() -> None:
    var: Var[int] = Var(0)
    seen: list[int] = []
    handles: list[Any] = []

    def first(v: int) -> None:
        if v == 1:
            handles[0].close()

    var.observe(first)
    handles.append(var.observe(seen.append))
    var.update(1)
    assert seen == [0]
