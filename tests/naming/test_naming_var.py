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
