"""Helpers for the namer tests: polling on the reactor with a deadline, observed names."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.naming.addr import AddrBound
from l5d_twisted.naming.nametree import Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok


async def eventually(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Watched:
    """A namer lookup observed for the whole test: tree states and address history."""

    def __init__(self, namer: K8sNamer, path: str) -> None:
        self.trees: list[Any] = []
        self.addrs: list[Any] = []
        self._addr_obs: Any = None
        self._tree_obs = namer.lookup(Path.read(path)).observe(self._on_tree)

    def _on_tree(self, state: Any) -> None:
        self.trees.append(state)
        if isinstance(state, Ok) and isinstance(state.value, Leaf) and self._addr_obs is None:
            self._addr_obs = state.value.value.addr.observe(self.addrs.append)

    def current(self) -> list[str] | None:
        if not self.addrs or not isinstance(self.addrs[-1], AddrBound):
            return None
        return sorted(a.show() for a in self.addrs[-1].addresses)

    def shows(self, *expected: str) -> bool:
        return self.current() == sorted(expected)

    def history(self) -> list[list[str]]:
        return [
            sorted(a.show() for a in x.addresses) for x in self.addrs if isinstance(x, AddrBound)
        ]
