"""Addresses and their live states, what namers produce and balancers consume."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from l5d_twisted.naming.path import EMPTY, Path
from l5d_twisted.naming.var import Var


@dataclass(frozen=True, slots=True)
class Address:
    """One endpoint.  ``meta`` carries discovery facts such as ``node_name``."""

    host: str
    port: int
    weight: float = 1.0
    meta: tuple[tuple[str, Any], ...] = ()

    @property
    def node_name(self) -> str | None:
        return self.get("node_name")

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self.meta:
            if k == key:
                return v
        return default

    def with_meta(self, **items: Any) -> Address:
        merged = dict(self.meta)
        merged.update(items)
        return Address(self.host, self.port, self.weight, tuple(sorted(merged.items())))

    def show(self) -> str:
        return f"{self.host}:{self.port}"


def make_address(
    host: str, port: int, weight: float = 1.0, meta: Mapping[str, Any] | None = None
) -> Address:
    return Address(host, port, weight, tuple(sorted((meta or {}).items())))


class Addr:
    """The state of a bound name's address set: bound, neg, pending or failed."""

    __slots__ = ()


@dataclass(frozen=True, eq=False, slots=True)
class AddrDelta:
    """How an :class:`AddrBound` differs from the one its source published before it.

    ``base`` is that previous set's ``token``: a consumer whose last applied set had this
    token may apply ``added`` and ``removed`` (O(changed)) instead of diffing the whole set
    (O(addresses)); any other consumer diffs.  Equality of address sets ignores it.
    """

    base: object
    added: frozenset[Address]
    removed: frozenset[Address]


@dataclass(frozen=True, slots=True)
class AddrBound(Addr):
    addresses: frozenset[Address]
    meta: tuple[tuple[str, Any], ...] = ()
    delta: AddrDelta | None = field(default=None, compare=False, repr=False)
    """Optional: the change from the source's previous set (see :class:`AddrDelta`)."""
    token: object = field(default_factory=object, compare=False, repr=False)
    """Identifies this very set for a later :attr:`AddrDelta.base`."""

    @classmethod
    def of(cls, addresses: Iterable[Address]) -> AddrBound:
        return cls(frozenset(addresses))


@dataclass(frozen=True)
class AddrNeg(Addr):
    pass


@dataclass(frozen=True)
class AddrPending(Addr):
    pass


@dataclass(frozen=True, slots=True)
class AddrFailed(Addr):
    reason: str


ADDR_NEG = AddrNeg()
ADDR_PENDING = AddrPending()


@dataclass(frozen=True, eq=False, slots=True)
class BoundName:
    """A name bound to a live address set, a leaf of a bound name tree.

    ``id`` identifies the destination (e.g. ``/#/io.l5d.fs/hello``, or with transformers
    ``/%/io.l5d.k8s.daemonset/...``); clients are cached by it.  ``residual`` is the part
    of the path the namer did not consume.  Equality is by id and residual: two lookups of
    one service share a client.
    """

    id: Path
    addr: Var[Addr]
    residual: Path = field(default=EMPTY)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BoundName) and other.id == self.id and other.residual == self.residual
        )

    def __hash__(self) -> int:
        return hash((self.id, self.residual))

    def __repr__(self) -> str:
        return f"BoundName({self.id.show()!r}, residual={self.residual.show()!r})"
