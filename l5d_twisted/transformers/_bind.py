"""Binding a configured path (``io.l5d.replace``/``io.l5d.const``) without a dtab.

The path must already be a bound path, as in linkerd 1: ``/#/<namer prefix>/...`` asks a
configured namer (the longest matching prefix), ``/$/inet/<host>/<port>`` is an address.
Anything else is a configuration error raised at startup, not at the first request.
"""

from __future__ import annotations

from typing import Any

from l5d_twisted.context import PluginContext
from l5d_twisted.naming.inet import InetNamer, parse_port, thread_resolver
from l5d_twisted.naming.nametree import Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State, Var


class PathBinder:
    """``bind()`` gives the activity of the configured path's bound tree."""

    def __init__(self, path: Path, ctx: PluginContext) -> None:
        self.path = path
        self._ctx = ctx
        self._namer: Any = None
        self._rest = path
        if len(path) >= 1 and path[0] == "#":
            self._namer, self._rest = self._find_namer(path.drop(1))
        elif len(path) == 4 and path[0] == "$" and path[1] == "inet":
            self._port = parse_port(path[3])
            self._inet = InetNamer(ctx.reactor, thread_resolver(ctx.reactor))
        else:
            raise ValueError(
                f"cannot bind {path.show()}: expected /#/<namer prefix>/... or /$/inet/<host>/<port>"
            )

    def _find_namer(self, rest: Path) -> tuple[Any, Path]:
        best: tuple[int, Any] | None = None
        for prefix_text, namer in self._ctx.namers.items():
            prefix = Path.read(prefix_text)
            if rest.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), namer)
        if best is None:
            known = ", ".join(sorted(self._ctx.namers)) or "none"
            raise ValueError(
                f"cannot bind {self.path.show()}: no namer with a matching prefix (configured: {known})"
            )
        return best[1], rest.drop(best[0])

    def bind(self) -> Var[State]:
        if self._namer is not None:
            result: Var[State] = self._namer.lookup(self._rest)
            return result
        host = self.path[2]
        return Var(Ok(Leaf(self._inet.bind(self.path, host, self._port, Path()))))
