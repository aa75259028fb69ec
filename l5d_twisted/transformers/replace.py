"""``io.l5d.replace``: route to a fixed path, but only names that exist.

Every bound name of the tree is replaced by the bound tree of ``path`` (a namer path or
``/$/inet/<host>/<port>``).  A tree with no bound name at all (``Neg``, ``Fail``,
``Empty``) stays as it is: the original namer still decides whether a name is valid.
That is the difference from ``io.l5d.const``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.nametree import Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State, Var
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._bind import PathBinder


@dataclass(frozen=True)
class ReplaceConfig:
    path: Path = knob(doc="the bound path every bound name is replaced with")


def has_leaf(tree: NameTree[Any]) -> bool:
    if isinstance(tree, Leaf):
        return True
    if isinstance(tree, Alt):
        return any(has_leaf(t) for t in tree.trees)
    if isinstance(tree, Union):
        return any(has_leaf(b.tree) for b in tree.branches)
    return False


class ReplaceTransformer:
    def __init__(self, binder: PathBinder) -> None:
        self.binder = binder

    def transform(self, tree: NameTree[BoundName]) -> Var[State]:
        if not has_leaf(tree):
            return Var(Ok(tree))
        return self.binder.bind()


@TRANSFORMERS.register("io.l5d.replace", ReplaceConfig)
def make_replace_transformer(config: ReplaceConfig, ctx: PluginContext) -> ReplaceTransformer:
    return ReplaceTransformer(PathBinder(_as_path(config.path), ctx))


def _as_path(value: Path | str) -> Path:
    return value if isinstance(value, Path) else Path.read(value)
