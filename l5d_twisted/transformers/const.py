"""``io.l5d.const``: ignore the bound tree, always route to ``path``.

Unlike ``io.l5d.replace`` even a negative name is sent to ``path``.
"""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.nametree import NameTree
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import State, Var
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._bind import PathBinder


@dataclass(frozen=True)
class ConstConfig:
    path: Path = knob(doc="the bound path every name is sent to")


class ConstTransformer:
    def __init__(self, binder: PathBinder) -> None:
        self.binder = binder

    def transform(self, tree: NameTree[BoundName]) -> Var[State]:
        return self.binder.bind()


@TRANSFORMERS.register("io.l5d.const", ConstConfig)
def make_const_transformer(config: ConstConfig, ctx: PluginContext) -> ConstTransformer:
    path = config.path if isinstance(config.path, Path) else Path.read(config.path)
    return ConstTransformer(PathBinder(path, ctx))
