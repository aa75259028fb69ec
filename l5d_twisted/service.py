"""Finagle's model in Python: services, filters and stacks.

* A **service** is an asynchronous function from request to response:
  ``service(request) -> Deferred[response]``, with ``close()`` and a ``status``.
* A **filter** wraps a service: ``filter.apply(request, service) -> Deferred[response]``.
  ``filter.and_then(service)`` is a service; ``f1.and_then(f2)`` is a filter.
* A **stack** is an immutable, ordered list of named modules (roles).  ``stack.make(params,
  leaf)`` folds the modules over a leaf service, outermost module first in the list.
  Features and tests change behaviour by replacing, inserting or removing a role, never by
  editing the code that builds clients.

Hot-path services return Deferreds directly; code off the hot path may be ``async def`` and
wrapped with ``Deferred.fromCoroutine``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class Status(enum.Enum):
    OPEN = "open"  # ready to take requests
    BUSY = "busy"  # temporarily unable (e.g. marked dead by failure accrual)
    CLOSED = "closed"  # permanently unusable


class Service(Generic[Req, Rep]):
    """Base class; subclasses implement ``__call__``."""

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

    def apply(self, request: Req, service: Service[Req, Rep]) -> Deferred[Rep]:
        raise NotImplementedError

    def and_then(self, next_: Any) -> Any:
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
    __slots__ = ("filter", "service", "_apply")

    def __init__(self, filter_: Filter[Req, Rep], service: Service[Req, Rep]) -> None:
        self.filter = filter_
        self.service = service
        self._apply = filter_.apply

    def __call__(self, request: Req) -> Deferred[Rep]:
        return self._apply(request, self.service)

    @property
    def status(self) -> Status:
        return self.service.status

    def close(self) -> Deferred[None]:
        return self.service.close()


class ModuleMaker(Protocol):
    def __call__(self, params: Mapping[str, Any], next_: Service[Any, Any]) -> Service[Any, Any]: ...


@dataclass(frozen=True)
class Module:
    """One layer of a stack: ``make(params, next_service) -> service``."""

    role: str
    make: ModuleMaker
    description: str = ""


@dataclass(frozen=True)
class Stack:
    """An ordered, immutable list of modules, outermost first."""

    modules: tuple[Module, ...] = ()

    @property
    def roles(self) -> list[str]:
        return [m.role for m in self.modules]

    def _index(self, role: str) -> int:
        for i, m in enumerate(self.modules):
            if m.role == role:
                return i
        raise KeyError(f"no module with role {role!r} in stack {self.roles}")

    def replace(self, role: str, module: Module) -> Stack:
        i = self._index(role)
        return Stack(self.modules[:i] + (module,) + self.modules[i + 1 :])

    def remove(self, role: str) -> Stack:
        i = self._index(role)
        return Stack(self.modules[:i] + self.modules[i + 1 :])

    def insert_before(self, role: str, module: Module) -> Stack:
        i = self._index(role)
        return Stack(self.modules[:i] + (module,) + self.modules[i:])

    def insert_after(self, role: str, module: Module) -> Stack:
        i = self._index(role)
        return Stack(self.modules[: i + 1] + (module,) + self.modules[i + 1 :])

    def prepend(self, module: Module) -> Stack:
        return Stack((module,) + self.modules)

    def append(self, module: Module) -> Stack:
        return Stack(self.modules + (module,))

    def make(self, params: Mapping[str, Any], leaf: Service[Any, Any]) -> Service[Any, Any]:
        service = leaf
        for module in reversed(self.modules):
            service = module.make(params, service)
        return service
