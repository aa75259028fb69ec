"""Observable values: how live discovery flows from namers to balancers.

A :class:`Var` holds a value that may change.  Observers are called at once with the
current value and again after every change.  Derived vars (``map``, ``flat_map``,
``collect``) are lazy, like Finagle's: they observe their sources only while someone
observes them, so a route cache that drops a bound tree stops all the work behind it.

An :class:`Activity` is a ``Var`` of :data:`State`: :class:`Pending`, :class:`Ok` (a value)
or :class:`Failed` (an exception); namers and the interpreter produce activities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class Closable:
    """Handle returned by ``observe``; ``close()`` stops the observation (idempotent)."""

    __slots__ = ("_close",)

    def __init__(self, close: Callable[[], None]) -> None:
        self._close: Callable[[], None] | None = close

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            close()


class Var(Generic[T]):
    """A value that can change; ``Var(v)`` is a source var updated with :meth:`update`."""

    def __init__(self, value: T) -> None:
        self._value = value
        self._observers: dict[int, Callable[[T], None]] = {}
        self._next_id = 0
        self._version = 0

    def sample(self) -> T:
        return self._value

    def update(self, value: T) -> None:
        """Set a new value and notify observers (no-op if equal to the current value)."""
        if value == self._value:
            return
        self._value = value
        self._version += 1
        version = self._version
        for key, fn in list(self._observers.items()):
            if self._version != version:
                break  # a nested update already delivered a newer value
            if key in self._observers:  # not closed by an earlier observer of this update
                fn(value)

    def observe(self, fn: Callable[[T], None]) -> Closable:
        key = self._next_id
        self._next_id += 1
        first = not self._observers
        self._observers[key] = fn

        def close() -> None:
            if self._observers.pop(key, None) is not None and not self._observers:
                self._on_last_observer_gone()

        try:
            if first:
                self._on_first_observer()
            fn(self.sample())
        except BaseException:
            # The caller gets no handle to close: unsubscribe here, or whatever feeds this
            # var (a namer's poller, upstream vars) would stay subscribed for ever.
            close()
            raise
        return Closable(close)

    @property
    def observed(self) -> bool:
        return bool(self._observers)

    # Hooks for derived vars.
    def _on_first_observer(self) -> None:
        pass

    def _on_last_observer_gone(self) -> None:
        pass

    def map(self, f: Callable[[T], U]) -> Var[U]:
        return _Derived(lambda emit: self.observe(lambda v: emit(f(v))), lambda: f(self.sample()))

    def flat_map(self, f: Callable[[T], Var[U]]) -> Var[U]:
        def subscribe(emit: Callable[[U], None]) -> Closable:
            inner: list[Closable] = []
            # Which outer value is current: an inner var switched away from (even in the
            # middle of its own update, or re-entrantly) must not emit any more.
            generation = [0]

            def on_outer(value: T) -> None:
                generation[0] += 1
                mine = generation[0]
                for c in inner:
                    c.close()
                inner.clear()

                def on_inner(v: U) -> None:
                    if generation[0] == mine:
                        emit(v)

                subscription = f(value).observe(on_inner)
                if generation[0] == mine:
                    inner.append(subscription)
                else:  # the outer changed while we subscribed: this inner is already stale
                    subscription.close()

            outer = self.observe(on_outer)

            def close() -> None:
                outer.close()
                for c in inner:
                    c.close()
                inner.clear()

            return Closable(close)

        return _Derived(subscribe, lambda: f(self.sample()).sample())

    @staticmethod
    def collect(vars_: Sequence[Var[Any]]) -> Var[tuple[Any, ...]]:
        """A var of the tuple of the given vars' values."""
        if not vars_:
            return Var(())

        def subscribe(emit: Callable[[tuple[Any, ...]], None]) -> Closable:
            values: list[Any] = [_UNSET] * len(vars_)
            closables: list[Closable] = []

            def observer(i: int) -> Callable[[Any], None]:
                def on_value(v: Any) -> None:
                    values[i] = v
                    if all(x is not _UNSET for x in values):
                        emit(tuple(values))

                return on_value

            def close() -> None:
                for c in closables:
                    c.close()

            try:
                for i, var in enumerate(vars_):
                    closables.append(var.observe(observer(i)))
            except BaseException:
                close()  # the sources observed before the one that failed
                raise
            return Closable(close)

        return _Derived(subscribe, lambda: tuple(v.sample() for v in vars_))


_UNSET: Any = object()


class _Derived(Var[T]):
    """A var computed from others; subscribes upstream only while observed."""

    def __init__(
        self,
        subscribe: Callable[[Callable[[T], None]], Closable],
        compute: Callable[[], T],
    ) -> None:
        super().__init__(_UNSET)
        self._subscribe = subscribe
        self._compute = compute
        self._upstream: Closable | None = None

    def sample(self) -> T:
        if self._upstream is None:
            return self._compute()
        return self._value

    def _on_first_observer(self) -> None:
        self._upstream = self._subscribe(self.update)

    def _on_last_observer_gone(self) -> None:
        upstream, self._upstream = self._upstream, None
        self._value = _UNSET
        if upstream is not None:
            upstream.close()

    def update(self, value: T) -> None:
        if self._value is _UNSET:
            self._value = value
            return  # the first value is delivered by observe() itself
        super().update(value)


class Pending:
    """Not known yet (e.g. the first list from Kubernetes has not come back)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pending)

    def __hash__(self) -> int:
        return hash(Pending)

    def __repr__(self) -> str:
        return "Pending"


PENDING = Pending()


@dataclass(frozen=True)
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True)
class Failed:
    error: BaseException

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failed) and (
            other.error is self.error or repr(other.error) == repr(self.error)
        )

    def __hash__(self) -> int:
        return hash(repr(self.error))


State = Pending | Ok[Any] | Failed
Activity = Var[State]
"""An activity is a var of states; see the module doc."""


def activity_map(act: Var[State], f: Callable[[Any], Any]) -> Var[State]:
    """Apply ``f`` to an activity's Ok value; Pending and Failed pass through."""

    def step(state: State) -> State:
        if isinstance(state, Ok):
            try:
                return Ok(f(state.value))
            except Exception as e:  # a bad value becomes a failed state, never a crash
                return Failed(e)
        return state

    return act.map(step)
