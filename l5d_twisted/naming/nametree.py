"""Name trees: what a dtab rewrites a path into, and what binding produces.

Leaves hold a value: a :class:`Path` before binding, a ``BoundName`` after.
``Alt`` tries its branches in order, falling through only on ``Neg``; ``Union`` splits
traffic by weight; ``NEG`` is "no such name" (fallback continues), ``FAIL`` is "stop, this
name fails", ``EMPTY`` is "the name exists but has no addresses".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class NameTree(Generic[T]):
    __slots__ = ()

    def map(self, f: Callable[[T], U]) -> NameTree[U]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Leaf(NameTree[T]):
    value: T

    def map(self, f: Callable[[T], U]) -> NameTree[U]:
        return Leaf(f(self.value))


@dataclass(frozen=True, slots=True)
class Alt(NameTree[T]):
    trees: tuple[NameTree[T], ...]

    def map(self, f: Callable[[T], U]) -> NameTree[U]:
        return Alt(tuple(t.map(f) for t in self.trees))


@dataclass(frozen=True, slots=True)
class Weighted(Generic[T]):
    weight: float
    tree: NameTree[T]


@dataclass(frozen=True, slots=True)
class Union(NameTree[T]):
    branches: tuple[Weighted[T], ...]

    def map(self, f: Callable[[T], U]) -> NameTree[U]:
        return Union(tuple(Weighted(b.weight, b.tree.map(f)) for b in self.branches))


class _Special(NameTree[Any]):
    __slots__ = ("_name", "_symbol")

    def __init__(self, name: str, symbol: str) -> None:
        self._name = name
        self._symbol = symbol

    def map(self, f: Callable[[Any], Any]) -> NameTree[Any]:
        return self

    def __repr__(self) -> str:
        return self._name

    @property
    def symbol(self) -> str:
        return self._symbol


NEG: NameTree[Any] = _Special("Neg", "~")
FAIL: NameTree[Any] = _Special("Fail", "!")
EMPTY: NameTree[Any] = _Special("Empty", "$")
