"""Combinators over activities (``Var[State]``) used by binding.

Most delegation steps are pure dtab rewrites whose result is known at once; only namer
lookups change over time.  :class:`Const` marks a value that never changes so that the
combinators below can compute through it directly instead of stacking lazy derived vars:
binding a long dtab chain stays shallow and cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from l5d_twisted.naming.nametree import NEG
from l5d_twisted.naming.var import NOOP_CLOSABLE, PENDING, Closable, Failed, Ok, Pending, State, Var


class Const(Var[Any]):
    """A var whose value never changes."""

    __slots__ = ()

    def update(self, value: Any) -> None:  # pragma: no cover - misuse guard
        raise TypeError("Const vars cannot be updated")

    def observe(self, fn: Callable[[Any], None]) -> Closable:
        fn(self._value)
        return NOOP_CLOSABLE


def ok(value: Any) -> Const:
    return Const(Ok(value))


def failed(error: BaseException) -> Const:
    return Const(Failed(error))


def flat_map(act: Var[State], f: Callable[[Any], Var[State]]) -> Var[State]:
    """Bind ``f`` over the Ok value of ``act``; Pending and Failed pass through.

    ``f`` raising becomes a Failed state rather than an exception in an observer.
    """

    step = _OkStep(f)
    if isinstance(act, Const):
        return step(act.sample())
    return act.flat_map(step)


class _OkStep:
    """``f`` over an Ok value, a Failed state if it raises; other states as constants (a
    slotted callable, not a closure: a routed name holds one)."""

    __slots__ = ("_f",)

    def __init__(self, f: Callable[[Any], Var[State]]) -> None:
        self._f = f

    def __call__(self, state: State) -> Var[State]:
        if isinstance(state, Ok):
            try:
                return self._f(state.value)
            except Exception as e:
                return failed(e)
        return Const(state)


def collect_states(
    acts: Sequence[Var[State]], combine: Callable[[tuple[State, ...]], State]
) -> Var[State]:
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


def _is_neg(state: State) -> bool:
    return isinstance(state, Ok) and state.value is NEG


def first_not_neg(branches: Sequence[Callable[[], Var[State]]]) -> Var[State]:
    """Alternation: the state of the first branch that is not ``Ok(NEG)`` (``Ok(NEG)`` if
    all are).  A pending or failed branch stops the search, like a bound one.

    Each ``branches[i]()`` makes the i-th branch's activity; branches are made and observed
    only as far as the first non-negative one, so names after it are not watched.
    """
    for index, make in enumerate(branches):
        head = _made(make)
        if not isinstance(head, Const):
            return _FirstNotNeg(head, branches[index + 1 :])
        if not _is_neg(head.sample()):
            return head
    return Const(Ok(NEG))


def _made(make: Callable[[], Var[State]]) -> Var[State]:
    try:
        return make()
    except Exception as e:
        return failed(e)


class _FirstNotNeg(Var[State]):
    """:func:`first_not_neg` over live branches.

    It walks the branches in a loop rather than nesting one ``flat_map`` per branch: a
    dtab (or an ``l5d-dtab`` header) with hundreds of rules for one prefix would otherwise
    nest hundreds of vars deep and exhaust the stack when observed.
    """

    def __init__(self, head: Var[State], rest: Sequence[Callable[[], Var[State]]]) -> None:
        super().__init__(PENDING)
        self._rest = rest
        self._count = 1 + len(rest)
        self._made: list[Var[State]] = [head]  # the branches made so far, in order
        self._watching: list[Closable] = []  # observations of branches 0..k, in order
        self._states: list[State] = []  # their latest states
        self._starting = False
        self._settling = False
        self._dirty = False

    def _branch(self, index: int) -> Var[State]:
        while len(self._made) <= index:
            self._made.append(_made(self._rest[len(self._made) - 1]))
        return self._made[index]

    def sample(self) -> State:
        if self.observed:
            return self._value
        for index in range(self._count):
            state = self._branch(index).sample()
            if not _is_neg(state):
                return state
        return Ok(NEG)

    def _on_first_observer(self) -> None:
        self._starting = True  # observe() itself hands the first value to the observer
        try:
            self._settle()
        finally:
            self._starting = False

    def _on_last_observer_gone(self) -> None:
        for closable in self._watching:
            closable.close()
        self._watching.clear()
        self._states.clear()

    def _observer(self, index: int) -> Callable[[State], None]:
        def on_state(state: State) -> None:
            if index < len(self._states):  # else no longer watched
                self._states[index] = state
                self._settle()

        return on_state

    def _settle(self) -> None:
        if self._settling:  # a branch answered while we were subscribing to it
            self._dirty = True
            return
        self._settling = True
        try:
            while True:
                self._dirty = False
                result, chosen = self._walk()
                # Branches after the chosen one are not needed (until it turns negative).
                for closable in self._watching[chosen + 1 :]:
                    closable.close()
                del self._watching[chosen + 1 :]
                del self._states[chosen + 1 :]
                if not self._dirty:
                    break
        finally:
            self._settling = False
        if self._starting:
            self._value = result
        else:
            self.update(result)

    def _walk(self) -> tuple[State, int]:
        """The first non-negative state and its index, observing branches up to it."""
        index = 0
        while index < self._count:
            if index == len(self._watching):
                self._states.append(PENDING)  # until the observation delivers the state
                self._watching.append(self._branch(index).observe(self._observer(index)))
            state = self._states[index]
            if not _is_neg(state):
                return state, index
            index += 1
        return Ok(NEG), index
