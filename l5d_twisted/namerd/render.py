"""Bound name trees and address sets as namerd's JSON (``/api/1/bind``, ``/addr``, ``/resolve``).

An address set: ``{"type": "bound", "addrs": [{"ip", "port", "meta"}], "meta": {}}``,
``{"type": "neg"}``, ``{"type": "pending"}`` or ``{"type": "failed", "cause": ...}``.
A bound tree: ``{"type": "leaf", "bound": {"id", "path", "addr"}}``, ``{"type": "union",
"union": [{"weight", "tree"}]}``, ``{"type": "alt", "alt": [...]}``, ``{"type": "neg"}``,
``{"type": "fail"}`` or ``{"type": "empty"}``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from l5d_twisted.naming.addr import Addr, AddrBound, AddrFailed, AddrNeg, BoundName
from l5d_twisted.naming.addrshow import sorted_addresses
from l5d_twisted.naming.nametree import EMPTY, FAIL, Alt, Leaf, NameTree, Union


def addr_json(addr: Addr) -> dict[str, Any]:
    if isinstance(addr, AddrBound):
        addrs = []
        for a in sorted_addresses(addr):
            meta = {
                k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                for k, v in a.meta
            }
            if a.weight != 1.0:
                meta["endpoint_addr_weight"] = a.weight
            addrs.append({"ip": a.host, "port": a.port, "meta": meta})
        return {"type": "bound", "addrs": addrs, "meta": dict(addr.meta)}
    if isinstance(addr, AddrNeg):
        return {"type": "neg"}
    if isinstance(addr, AddrFailed):
        return {"type": "failed", "cause": addr.reason}
    return {"type": "pending"}


def tree_json(tree: NameTree[BoundName], addrs: dict[BoundName, Addr]) -> dict[str, Any]:
    if isinstance(tree, Leaf):
        bound = tree.value
        addr = addrs.get(bound) or bound.addr.sample()
        return {
            "type": "leaf",
            "bound": {
                "id": bound.id.show(),
                "path": bound.residual.show(),
                "addr": addr_json(addr),
            },
        }
    if isinstance(tree, Union):
        return {
            "type": "union",
            "union": [
                {"weight": b.weight, "tree": tree_json(b.tree, addrs)} for b in tree.branches
            ],
        }
    if isinstance(tree, Alt):
        return {"type": "alt", "alt": [tree_json(t, addrs) for t in tree.trees]}
    if tree is FAIL:
        return {"type": "fail"}
    if tree is EMPTY:
        return {"type": "empty"}
    return {"type": "neg"}


def leaves(tree: NameTree[BoundName]) -> Iterator[BoundName]:
    if isinstance(tree, Leaf):
        yield tree.value
    elif isinstance(tree, Union):
        for b in tree.branches:
            yield from leaves(b.tree)
    elif isinstance(tree, Alt):
        for t in tree.trees:
            yield from leaves(t)


def pick(tree: NameTree[BoundName], rng: random.Random) -> BoundName | None:
    """One leaf as namerd's resolve picks it: a union branch at random by weight, the first
    alternative that has a leaf."""
    if isinstance(tree, Leaf):
        found: BoundName = tree.value
        return found
    if isinstance(tree, Union):
        branches = [b for b in tree.branches if b.weight > 0]
        if not branches:
            return None
        chosen = rng.choices(branches, weights=[b.weight for b in branches])[0]
        return pick(chosen.tree, rng)
    if isinstance(tree, Alt):
        for t in tree.trees:
            chosen_leaf = pick(t, rng)
            if chosen_leaf is not None:
                return chosen_leaf
    return None


def json_line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"
