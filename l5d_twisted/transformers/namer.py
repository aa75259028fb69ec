"""Transformers on one namer: linkerd 1's generic ``namers[].transformers`` key.

:class:`TransformedNamer` wraps a namer so that what its ``lookup`` answers goes through the
configured transformers, in order, before the interpreter sees it, as linkerd 1's
``NameTreeTransformer.wrap(namer)`` did: only an answer made of bound names (or Neg, Empty,
Fail) is transformed; an answer with paths still to bind (``io.l5d.rewrite``) passes as it
is.  The router's ``interpreter.transformers`` still apply afterwards, to the whole bound
tree.  A transformed bound id reads ``/%/<transformer prefix>/#/<namer prefix>/...``.

Everything else (``state()``, ``close()``, enumerations the admin pages use) is the
wrapped namer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from l5d_twisted.naming.activity import flat_map, ok
from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.namer import Namer, Transformer
from l5d_twisted.naming.nametree import Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import State, Var
from l5d_twisted.registry import NAMERS, TRANSFORMERS


def is_bound(tree: NameTree[Any]) -> bool:
    """Whether every leaf of ``tree`` is a bound name (no path left to bind)."""
    if isinstance(tree, Leaf):
        return isinstance(tree.value, BoundName)
    if isinstance(tree, Alt):
        return all(is_bound(t) for t in tree.trees)
    if isinstance(tree, Union):
        return all(is_bound(b.tree) for b in tree.branches)
    return True  # Neg, Empty, Fail


class TransformedNamer:
    """``namer`` whose bound answers go through ``transformers``, in order."""

    def __init__(self, namer: Namer, transformers: Sequence[Transformer]) -> None:
        self.namer = namer
        self.transformers = tuple(transformers)

    def lookup(self, path: Path) -> Var[State]:
        act = self.namer.lookup(path)
        for transformer in self.transformers:
            act = flat_map(act, _when_bound(transformer))
        return act

    def state(self) -> Any:
        return self.namer.state()

    def __getattr__(self, name: str) -> Any:
        # close/stop, bound-name enumeration...: the wrapped namer's own
        return getattr(self.namer, name)

    def __repr__(self) -> str:
        return f"TransformedNamer({self.namer!r}, {len(self.transformers)} transformers)"


def make_namer(spec: Any, ctx: Any) -> tuple[Namer, list[Transformer]]:
    """The namer of a ``namers:`` entry (a ``config.model.NamerSpec``), wrapped in its own
    transformers if it has any; and those transformers (the caller closes them: some hold
    watches of their own)."""
    namer: Namer = NAMERS.get(spec.kind).factory(spec.config, spec.prefix, ctx)
    transformers: list[Transformer] = [
        TRANSFORMERS.get(t.kind).factory(t.config, ctx) for t in spec.transformers
    ]
    if transformers:
        namer = TransformedNamer(namer, transformers)
    return namer, transformers


def _when_bound(transformer: Transformer) -> Any:
    def step(tree: NameTree[Any]) -> Var[State]:
        if is_bound(tree):
            return transformer.transform(tree)
        return ok(tree)

    return step
