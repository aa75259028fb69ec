"""The contracts namers and transformers meet.

A **namer** is configured under ``namers:`` with a ``kind`` and a ``prefix`` (default
``/<kind>``); a dtab reaches it with ``/#/<prefix>/<rest>``.  ``lookup(rest)`` returns an
activity (``naming.var``) of a name tree whose leaves are ``BoundName`` (live address
sets) or ``NEG`` when the namer does not know the name.  Lookups must be cheap to repeat:
namers share state per name, not per lookup.

Registered factory: ``factory(config, prefix: Path, ctx: PluginContext) -> Namer``.

A **transformer** (``interpreter.transformers[]``) rewrites a bound tree, e.g. replacing
each endpoint by the mesh pod on its node.  Registered factory:
``factory(config, ctx: PluginContext) -> Transformer``.
"""

from __future__ import annotations

from typing import Any, Protocol

from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.nametree import NameTree
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import State, Var


class Namer(Protocol):
    def lookup(self, path: Path) -> Var[State]:
        """An activity of ``NameTree[BoundName]`` for ``path`` (the part after the prefix)."""
        ...

    def state(self) -> Any:
        """JSON-able description of what the namer knows (``/namer_state/<prefix>.json``)."""
        ...


class Transformer(Protocol):
    def transform(self, tree: NameTree[BoundName]) -> Var[State]:
        """An activity of the transformed ``NameTree[BoundName]``."""
        ...
