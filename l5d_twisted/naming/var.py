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

    def __init__(self, close: Callable[[], None] | None) -> None:
        self._close: Callable[[], None] | None = close

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            close()


NOOP_CLOSABLE = Closable(None)
"""Closes nothing (shared: a constant var's observation, for one)."""


class _Observation(Closable):
    """One observer of a var: closing it unsubscribes (a slotted handle instead of a
    closure, cell and ``Closable`` per observation: a routed name holds several)."""

    __slots__ = ("_var", "_key")

    def __init__(self, var: Var[Any], key: int) -> None:
        self._var: Var[Any] | None = var
        self._key = key

    def close(self) -> None:
        var, self._var = self._var, None
        if var is not None:
            var._unobserve(self._key)


class Var(Generic[T]):
    """A value that can change; ``Var(v)`` is a source var updated with :meth:`update`."""

    # (slots: a routed name holds several vars; subclasses elsewhere may add a __dict__)
    __slots__ = ("_value", "_fn1", "_key1", "_observers", "_next_id", "_version", "__weakref__")

    def __init__(self, value: T) -> None:
        self._value = value
        # One observer (most vars have one) is kept in two slots; a second one in a
        # ``(key, fn)`` tuple beside it (a routed name's address set is watched by its
        # route and its client); from a third one on, all are in a dict, in subscription
        # order, until none is left (a dict is ~230 bytes, a tuple 56, and a routed name
        # holds several observed vars; issue 17).
        self._fn1: Callable[[T], None] | None = None
        self._key1 = -1
        # None; the second observer (``_fn1`` the first); or all of them (``_fn1`` None)
        self._observers: tuple[int, Callable[[T], None]] | dict[int, Callable[[T], None]] | None = (
            None
        )
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
        observers = self._observers
        if observers is None:
            fn1 = self._fn1
            if fn1 is not None:
                fn1(value)
            return
        version = self._version
        if type(observers) is tuple:
            key2, fn2 = observers
            fn1 = self._fn1
            if fn1 is not None:
                fn1(value)
                if self._version != version:
                    return  # a nested update already delivered a newer value
            # (still subscribed: in its tuple, or moved to the first slots when the first
            # observer closed meanwhile)
            if self._observers is observers or (self._key1 == key2 and self._fn1 is fn2):
                fn2(value)
            return
        assert isinstance(observers, dict)
        for key, fn in list(observers.items()):
            if self._version != version:
                break  # a nested update already delivered a newer value
            if key in observers:  # not closed by an earlier observer of this update
                fn(value)

    def observe(self, fn: Callable[[T], None]) -> Closable:
        key = self._next_id
        self._next_id += 1
        observers = self._observers
        first = False
        if observers is None:
            if self._fn1 is None:
                first = True
                self._fn1 = fn
                self._key1 = key
            else:  # a second observer: beside the first
                self._observers = (key, fn)
        elif type(observers) is tuple:  # a third: all in a dict from now on
            assert self._fn1 is not None
            self._observers = {self._key1: self._fn1, observers[0]: observers[1], key: fn}
            self._fn1 = None
            self._key1 = -1
        else:
            assert isinstance(observers, dict)
            observers[key] = fn
        try:
            if first:
                self._on_first_observer()
            fn(self.sample())
        except BaseException:
            # The caller gets no handle to close: unsubscribe here, or whatever feeds this
            # var (a namer's poller, upstream vars) would stay subscribed for ever.
            self._unobserve(key)
            raise
        return _Observation(self, key)

    def _unobserve(self, key: int) -> None:
        observers = self._observers
        if observers is None:
            if self._fn1 is not None and self._key1 == key:
                self._fn1 = None
                self._key1 = -1
                self._on_last_observer_gone()
        elif type(observers) is tuple:
            if observers[0] == key:
                self._observers = None
            elif self._key1 == key:  # the first goes: the second takes its slots
                self._key1, self._fn1 = observers
                self._observers = None
        else:
            assert isinstance(observers, dict)
            if observers.pop(key, None) is not None and not observers:
                self._observers = None
                self._on_last_observer_gone()

    @property
    def observed(self) -> bool:
        return self._fn1 is not None or self._observers is not None

    # Hooks for derived vars.
    def _on_first_observer(self) -> None:
        pass

    def _on_last_observer_gone(self) -> None:
        pass

    def map(self, f: Callable[[T], U]) -> Var[U]:
        return _Mapped(self, f)

    def flat_map(self, f: Callable[[T], Var[U]]) -> Var[U]:
        return _FlatMapped(self, f)

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
    """A var computed from others; subscribes upstream only while observed.

    Made from a ``subscribe(emit) -> Closable`` and a ``compute()`` function, or a
    subclass overriding :meth:`_subscribe` and :meth:`_compute` (``map`` and ``flat_map``:
    no closures per derived var).
    """

    __slots__ = ("_subscribe_fn", "_compute_fn", "_upstream")

    def __init__(
        self,
        subscribe: Callable[[Callable[[T], None]], Closable] | None = None,
        compute: Callable[[], T] | None = None,
    ) -> None:
        super().__init__(_UNSET)
        self._subscribe_fn = subscribe
        self._compute_fn = compute
        self._upstream: Closable | None = None

    def _subscribe(self, emit: Callable[[T], None]) -> Closable:
        assert self._subscribe_fn is not None
        return self._subscribe_fn(emit)

    def _compute(self) -> T:
        assert self._compute_fn is not None
        return self._compute_fn()

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


class _Mapped(_Derived[U]):
    """``source.map(f)``."""

    __slots__ = ("_source", "_f")

    def __init__(self, source: Var[Any], f: Callable[[Any], U]) -> None:
        super().__init__()
        self._source = source
        self._f = f

    def _subscribe(self, emit: Callable[[U], None]) -> Closable:
        return self._source.observe(self._on_source)

    def _on_source(self, value: Any) -> None:
        self.update(self._f(value))

    def _compute(self) -> U:
        return self._f(self._source.sample())


class _FlatMapped(_Derived[U]):
    """``source.flat_map(f)``: the value of the var ``f`` makes of the source's value."""

    __slots__ = ("_source", "_f")

    def __init__(self, source: Var[Any], f: Callable[[Any], Var[U]]) -> None:
        super().__init__()
        self._source = source
        self._f = f

    def _subscribe(self, emit: Callable[[U], None]) -> Closable:
        return _FlatMapObservation(self)

    def _compute(self) -> U:
        return self._f(self._source.sample()).sample()


class _FlatMapObservation(Closable):
    """A flat-mapped var's subscription: the outer source, and the inner var of its
    current value."""

    __slots__ = ("_var", "_inner", "_generation", "_outer")

    def __init__(self, var: _FlatMapped[Any]) -> None:
        self._var = var  # emits with var.update
        self._inner: Closable | None = None
        # Which outer value is current: an inner var switched away from (even in the
        # middle of its own update, or re-entrantly) must not emit any more.
        self._generation = 0
        self._outer: Closable | None = None
        self._outer = var._source.observe(self._on_outer)

    def _on_outer(self, value: Any) -> None:
        self._generation += 1
        mine = self._generation
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.close()
        subscription = self._var._f(value).observe(_InnerObserver(self, mine))
        if self._generation == mine:
            self._inner = subscription
        else:  # the outer changed while we subscribed: this inner is already stale
            subscription.close()

    def close(self) -> None:
        outer, self._outer = self._outer, None
        if outer is not None:
            outer.close()
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.close()


class _InnerObserver:
    """Passes an inner var's values on while its outer value is still the current one."""

    __slots__ = ("_sub", "_mine")

    def __init__(self, sub: _FlatMapObservation, mine: int) -> None:
        self._sub = sub
        self._mine = mine

    def __call__(self, value: Any) -> None:
        sub = self._sub
        if sub._generation == self._mine:
            sub._var.update(value)


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


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
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
