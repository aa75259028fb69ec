"""Combinators over activities (``Var[State]``) used by binding.

Most delegation steps are pure dtab rewrites whose result is known at once; only namer
lookups change over time.  :class:`Const` marks a value that never changes so that the
combinators below can compute through it directly instead of stacking lazy derived vars:
binding a long dtab chain stays shallow and cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from l5d_twisted.naming.var import PENDING, Closable, Failed, Ok, Pending, State, Var


class Const(Var[Any]):
    """A var whose value never changes."""

    def update(self, value: Any) -> None:  # pragma: no cover - misuse guard
        raise TypeError("Const vars cannot be updated")

    def observe(self, fn: Callable[[Any], None]) -> Closable:
        fn(self._value)
        return Closable(lambda: None)


def ok(value: Any) -> Const:
    return Const(Ok(value))


def failed(error: BaseException) -> Const:
    return Const(Failed(error))


def flat_map(act: Var[State], f: Callable[[Any], Var[State]]) -> Var[State]:
    """Bind ``f`` over the Ok value of ``act``; Pending and Failed pass through.

    ``f`` raising becomes a Failed state rather than an exception in an observer.
    """

    def step(state: State) -> Var[State]:
        if isinstance(state, Ok):
            try:
                return f(state.value)
            except Exception as e:
                return failed(e)
        return Const(state)

    if isinstance(act, Const):
        return step(act.sample())
    return act.flat_map(step)


def collect_states(acts: Sequence[Var[State]], combine: Callable[[tuple[State, ...]], State]) -> Var[State]:
    """A var of ``combine(states)`` over the current states of ``acts``."""
    if all(isinstance(a, Const) for a in acts):
        return Const(combine(tuple(a.sample() for a in acts)))
    return Var.collect(list(acts)).map(combine)


def first_failure_or_pending(states: Sequence[State]) -> State | None:
    """The first Failed state, else Pending if any is pending, else None (all Ok)."""
    for state in states:
        if isinstance(state, Failed):
            return state
    for state in states:
        if isinstance(state, Pending):
            return PENDING
    return None
