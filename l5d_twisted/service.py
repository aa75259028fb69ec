"""Finagle's model in Python: services, filters and stacks.

* A **service** is an asynchronous function from request to response:
  ``service(request) -> Deferred[response]``, with ``close()`` and a ``status``.
* A **filter** wraps a service: ``filter.apply(request, service) -> Deferred[response]``.
  ``filter.and_then(service)`` is a service; ``f1.and_then(f2)`` is a filter.
* A **stack** is an immutable, ordered list of named modules (roles).  ``stack.make(params,
  leaf)`` folds the modules over a leaf service, outermost module first in the list.
  Features and tests change behaviour by replacing, inserting or removing a role, never by
  editing the code that builds clients.
* **Params** are what a stack is made with: typed keys (:class:`Param`, each with its
  default) mapped to values, as Finagle's ``Stack.Params``; ``params[STATS]`` is typed by the
  key.

Types survive composition: ``Filter[Req, Rep].and_then(Service[Req, Rep])`` is a
``Service[Req, Rep]`` and ``and_then`` of two filters is a ``Filter[Req, Rep]``.

Hot-path services return Deferreds directly; code off the hot path may be ``async def`` and
wrapped with ``Deferred.fromCoroutine``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload

from twisted.internet.defer import Deferred, succeed

Req = TypeVar("Req")
Rep = TypeVar("Rep")
T = TypeVar("T")


class Status(enum.Enum):
    OPEN = "open"  # ready to take requests
    BUSY = "busy"  # temporarily unable (e.g. marked dead by failure accrual)
    CLOSED = "closed"  # permanently unusable


class Service(Generic[Req, Rep]):
    """Base class; subclasses implement ``__call__``."""

    __slots__ = ()  # (so that slotted services have no __dict__)

    def __call__(self, request: Req) -> Deferred[Rep]:
        raise NotImplementedError

    @property
    def status(self) -> Status:
        return Status.OPEN

    def close(self) -> Deferred[None]:
        return succeed(None)


class FunctionService(Service[Req, Rep]):
    def __init__(self, fn: Callable[[Req], Deferred[Rep]]) -> None:
        self._fn = fn

    def __call__(self, request: Req) -> Deferred[Rep]:
        return self._fn(request)


class Filter(Generic[Req, Rep]):
    """Base class; subclasses implement ``apply``."""

    __slots__ = ()  # (so that slotted filters have no __dict__)

    def apply(self, request: Req, service: Service[Req, Rep]) -> Deferred[Rep]:
        raise NotImplementedError

    @overload
    def and_then(self, next_: Filter[Req, Rep]) -> Filter[Req, Rep]: ...

    @overload
    def and_then(self, next_: Service[Req, Rep]) -> Service[Req, Rep]: ...

    def and_then(
        self, next_: Filter[Req, Rep] | Service[Req, Rep]
    ) -> Filter[Req, Rep] | Service[Req, Rep]:
        if isinstance(next_, Filter):
            return _AndThenFilter(self, next_)
        return FilteredService(self, next_)


class _AndThenFilter(Filter[Req, Rep]):
    def __init__(self, outer: Filter[Req, Rep], inner: Filter[Req, Rep]) -> None:
        self.outer = outer
        self.inner = inner

    def apply(self, request: Req, service: Service[Req, Rep]) -> Deferred[Rep]:
        return self.outer.apply(request, FilteredService(self.inner, service))


class FilteredService(Service[Req, Rep]):
    # (no bound ``filter.apply`` kept: 64 bytes per layer per name, and calling through
    # the slot is as fast on CPython 3.11)
    __slots__ = ("filter", "service", "__weakref__")

    def __init__(self, filter_: Filter[Req, Rep], service: Service[Req, Rep]) -> None:
        self.filter = filter_
        self.service = service

    def __call__(self, request: Req) -> Deferred[Rep]:
        return self.filter.apply(request, self.service)

    @property
    def status(self) -> Status:
        return self.service.status

    def close(self) -> Deferred[None]:
        return self.service.close()


class _Missing(enum.Enum):
    MISSING = "missing"


class Param(Generic[T]):
    """A typed stack parameter: a name and, optionally, the value it has when unset.

    Keys compare by identity (two ``Param("stats")`` are two keys), so a plugin's params
    never collide with the core's.
    """

    __slots__ = ("name", "_default")

    def __init__(self, name: str, default: T | _Missing = _Missing.MISSING) -> None:
        self.name = name
        self._default = default

    def default(self) -> T:
        if isinstance(self._default, _Missing):
            raise KeyError(f"stack param {self.name!r} is not set and has no default")
        return self._default

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


class Params:
    """An immutable map of typed params (Finagle's ``Stack.Params``).

    ``params[KEY]`` is the value set for ``KEY`` or its default; ``params.plus(KEY, value)``
    is a new map.  Stacks are made per route, client and endpoint, never per request, so
    copying on ``plus`` costs nothing on the hot path.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[Param[Any], Any] | None = None) -> None:
        self._values: dict[Param[Any], Any] = dict(values) if values else {}

    def __getitem__(self, key: Param[T]) -> T:
        try:
            value: T = self._values[key]
        except KeyError:
            return key.default()
        return value

    def __contains__(self, key: Param[Any]) -> bool:
        return key in self._values

    def plus(self, key: Param[T], value: T) -> Params:
        values = dict(self._values)
        values[key] = value
        return Params(values)

    def plus_all(self, other: Params) -> Params:
        return Params({**self._values, **other._values})

    def __repr__(self) -> str:
        return "Params(" + ", ".join(f"{k.name}={v!r}" for k, v in self._values.items()) + ")"


class ModuleMaker(Protocol[Req, Rep]):
    def __call__(self, params: Params, next_: Service[Req, Rep], /) -> Service[Req, Rep]: ...


@dataclass(frozen=True)
class Module(Generic[Req, Rep]):
    """One layer of a stack: ``make(params, next_service) -> service``."""

    role: str
    make: ModuleMaker[Req, Rep]
    description: str = ""


@dataclass(frozen=True)
class Stack(Generic[Req, Rep]):
    """An ordered, immutable list of modules, outermost first."""

    modules: tuple[Module[Req, Rep], ...] = ()

    @property
    def roles(self) -> list[str]:
        return [m.role for m in self.modules]

    def _index(self, role: str) -> int:
        for i, m in enumerate(self.modules):
            if m.role == role:
                return i
        raise KeyError(f"no module with role {role!r} in stack {self.roles}")

    def replace(self, role: str, module: Module[Req, Rep]) -> Stack[Req, Rep]:
        i = self._index(role)
        return Stack(self.modules[:i] + (module,) + self.modules[i + 1 :])

    def remove(self, role: str) -> Stack[Req, Rep]:
        i = self._index(role)
        return Stack(self.modules[:i] + self.modules[i + 1 :])

    def insert_before(self, role: str, module: Module[Req, Rep]) -> Stack[Req, Rep]:
        i = self._index(role)
        return Stack(self.modules[:i] + (module,) + self.modules[i:])

    def insert_after(self, role: str, module: Module[Req, Rep]) -> Stack[Req, Rep]:
        i = self._index(role)
        return Stack(self.modules[: i + 1] + (module,) + self.modules[i + 1 :])

    def prepend(self, module: Module[Req, Rep]) -> Stack[Req, Rep]:
        return Stack((module,) + self.modules)

    def append(self, module: Module[Req, Rep]) -> Stack[Req, Rep]:
        return Stack(self.modules + (module,))

    def make(self, params: Params, leaf: Service[Req, Rep]) -> Service[Req, Rep]:
        service = leaf
        for module in reversed(self.modules):
            service = module.make(params, service)
        return service
