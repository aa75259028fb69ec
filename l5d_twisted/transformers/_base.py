"""The shape most transformers share: rewrite each leaf's address set, keep the tree.

A :class:`LeafAddrTransformer` maps every leaf ``BoundName`` of a bound tree to a new one
whose id is ``/%/<prefix>/<original id>`` and whose address var is derived (lazily) from
the original's by :meth:`LeafAddrTransformer.map_addr`.  Subclasses implement
:meth:`map_bound` (a function of one bound address set) or override :meth:`map_addr` when
the result also depends on other live data (the DaemonSet's pods).

The mapped bound names are cached per original, so transforming the same tree again (the
interpreter does on every tree change) hands out the same bound names and address vars:
clients and balancers built on them are kept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from l5d_twisted.naming.addr import Addr, AddrBound, AddrDelta, Address, BoundName
from l5d_twisted.naming.nametree import NameTree
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State, Var

TRANSFORMED = "%"
MAX_CACHED = 10000


class LeafAddrTransformer:
    """Base class; ``prefix`` is the transformer's own path (e.g. ``/io.l5d.port/4141``)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self._cache: dict[tuple[Path, Path], tuple[Var[Addr], BoundName]] = {}

    def transform(self, tree: NameTree[BoundName]) -> Var[State]:
        return Var(Ok(tree.map(self.map_leaf)))

    def transformed_id(self, original: Path) -> Path:
        return Path.of(TRANSFORMED) + self.prefix + original

    def map_leaf(self, leaf: BoundName) -> BoundName:
        key = (leaf.id, leaf.residual)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is leaf.addr:
            return cached[1]
        mapped = BoundName(self.transformed_id(leaf.id), self.map_addr(leaf.addr), leaf.residual)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()  # names from client input must not grow this forever
        self._cache[key] = (leaf.addr, mapped)
        return mapped

    def map_addr(self, addr: Var[Addr]) -> Var[Addr]:
        return addr.map(self._map_state)

    def _map_state(self, addr: Addr) -> Addr:
        if isinstance(addr, AddrBound):
            return self.map_bound(addr)
        return addr  # neg, pending, failed: nothing to rewrite

    def map_bound(self, bound: AddrBound) -> Addr:
        raise NotImplementedError


class AddressFilterTransformer(LeafAddrTransformer):
    """Keeps the addresses for which :meth:`keep` is true (an empty set stays bound).

    A change that comes with its difference (``AddrBound.delta``, from io.l5d.k8s) is
    filtered as a difference, O(changed) rather than O(addresses), and passed on as one.
    """

    def map_addr(self, addr: Var[Addr]) -> Var[Addr]:
        last: list[AddrBound] = []  # [input, output] of the last bound set mapped

        def step(state: Addr) -> Addr:
            if not isinstance(state, AddrBound):
                last.clear()
                return state
            out: AddrBound
            delta = state.delta
            if last and delta is not None and delta.base is last[0].token:
                previous = last[1]
                added = frozenset(a for a in delta.added if self.keep(a))
                removed = frozenset(a for a in delta.removed if a in previous.addresses)
                out = previous  # (nothing kept changed: the same set, the same token)
                if added or removed or state.meta != previous.meta:
                    out = AddrBound(
                        (previous.addresses - removed) | added,
                        state.meta,
                        delta=AddrDelta(previous.token, added, removed),
                    )
            else:
                out = AddrBound(frozenset(a for a in state.addresses if self.keep(a)), state.meta)
            last[:] = [state, out]
            return out

        return addr.map(step)

    def map_bound(self, bound: AddrBound) -> Addr:
        return AddrBound(frozenset(a for a in bound.addresses if self.keep(a)), bound.meta)

    def keep(self, address: Address) -> bool:
        raise NotImplementedError


def dedupe_by_endpoint(addresses: Iterable[Address]) -> frozenset[Address]:
    """One address per host:port (the first seen in a stable order wins)."""
    chosen: dict[tuple[str, int], Address] = {}
    for address in sorted(addresses, key=lambda a: (a.host, a.port, a.meta)):
        chosen.setdefault((address.host, address.port), address)
    return frozenset(chosen.values())


def same_subnet_24(a: str, b: str) -> bool:
    """linkerd 1's "same node" test: same IPv4 /24 (IPv6: same /64)."""
    try:
        ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    if ip_a.version != ip_b.version:
        return False
    bits = 24 if ip_a.version == 4 else 64
    net: Any = ipaddress.ip_network(f"{ip_a}/{bits}", strict=False)
    return ip_b in net
