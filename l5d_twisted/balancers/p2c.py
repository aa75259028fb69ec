"""``p2c``: power of two choices, least loaded (linkerd 1's default balancer).

Each request draws two distinct nodes at random and takes the one with the lower load,
``(pending + 1) / weight``.  Drawing is repeated up to ``maxEffort`` times while the choice
is not OPEN; after that the OPEN nodes are collected and two of those are drawn, so a
mostly-dead set still finds its live nodes (and with none OPEN the balancer fails open).
"""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.balancers.nodes import Node, NodeBalancer, distinct_pair
from l5d_twisted.config.schema import knob
from l5d_twisted.registry import BALANCERS


class P2CBalancer(NodeBalancer):
    __slots__ = ("max_effort",)

    def __init__(self, ctx: BalancerContext, max_effort: int = 5) -> None:
        super().__init__(ctx)
        self.max_effort = max_effort

    def _cost(self, node: Node) -> float:
        return node.weighted_load()

    def _better(self, a: Node, b: Node) -> Node:
        return a if self._cost(a) <= self._cost(b) else b

    def _choose(self, nodes: list[Node], open_only: bool) -> Node | None:
        n = len(nodes)
        if n == 1:
            only = nodes[0]
            return only if not open_only or only.is_open else None
        rng = self._rng
        for _ in range(self.max_effort):
            i, j = distinct_pair(rng, n)
            a, b = nodes[i], nodes[j]
            pick = self._better(a, b)
            if not open_only or pick.is_open:
                return pick
            other = b if pick is a else a
            if other.is_open:
                return other
        alive = [node for node in nodes if node.is_open]
        if not alive:
            return None
        if len(alive) == 1:
            return alive[0]
        i, j = distinct_pair(rng, len(alive))
        return self._better(alive[i], alive[j])


@dataclass(frozen=True)
class P2CConfig:
    max_effort: int = knob(
        5, minimum=1, doc="draws of two nodes to find an OPEN one before scanning"
    )


@BALANCERS.register("p2c", P2CConfig)
def make_p2c(config: P2CConfig | None, ctx: BalancerContext) -> Balancer:
    config = config or P2CConfig()
    return P2CBalancer(ctx, max_effort=config.max_effort)
