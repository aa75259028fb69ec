"""``roundRobin``: each node in turn, in proportion to its weight.

With equal weights it cycles through the nodes, skipping those that are not OPEN.  With
unequal weights it is *smooth* weighted round robin (nginx's): every pick adds each node's
weight to its running credit, takes the node with the most credit and charges it the total,
so a 3:1 pair goes a a b a a a b a ... rather than in bursts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.balancers.nodes import Node, NodeBalancer
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BALANCERS
from l5d_twisted.service import Service


class _RRNode(Node):
    __slots__ = ("credit",)

    def __init__(self, address: Address, service: Service[Any, Any]) -> None:
        super().__init__(address, service)
        self.credit = 0.0


class RoundRobinBalancer(NodeBalancer):
    node_type = _RRNode

    def __init__(self, ctx: BalancerContext) -> None:
        super().__init__(ctx)
        self._next = 0
        self._weighted = False
        self._weights: Counter[float] = Counter()  # how many nodes have each weight

    def _nodes_changed(self, nodes: list[Node]) -> None:
        self._weights = Counter(max(n.weight, 0.0) for n in nodes)
        self._weighted = len(self._weights) > 1
        if nodes:
            self._next %= len(nodes)

    def _drop_nodes(self, gone: list[Node]) -> None:
        super()._drop_nodes(gone)
        for node in gone:
            weight = max(node.weight, 0.0)
            self._weights[weight] -= 1
            if self._weights[weight] <= 0:
                del self._weights[weight]
        self._weighted = len(self._weights) > 1
        if self._nodes:
            self._next %= len(self._nodes)

    def _add_nodes(self, fresh: list[Node]) -> None:
        super()._add_nodes(fresh)
        self._weights.update(max(n.weight, 0.0) for n in fresh)
        self._weighted = len(self._weights) > 1

    def _reweighted(self, nodes: list[Node]) -> None:
        self._nodes_changed(self._nodes)  # (rare: Kubernetes endpoints carry no weight)

    def _choose(self, nodes: list[Node], open_only: bool) -> Node | None:
        if self._weighted:
            return self._choose_weighted(nodes, open_only)
        n = len(nodes)
        start = self._next % n
        for step in range(n):
            node = nodes[(start + step) % n]
            if not open_only or node.is_open:
                self._next = (start + step + 1) % n
                return node
        return None

    def _choose_weighted(self, nodes: list[Node], open_only: bool) -> Node | None:
        candidates = [n for n in nodes if not open_only or n.is_open]
        if not candidates:
            return None
        total = 0.0
        best: _RRNode | None = None
        for node in candidates:
            assert isinstance(node, _RRNode)
            weight = max(node.weight, 0.0)
            node.credit += weight
            total += weight
            if best is None or node.credit > best.credit:
                best = node
        assert best is not None
        best.credit -= total
        return best


@dataclass(frozen=True)
class RoundRobinConfig:
    """roundRobin takes no options."""


@BALANCERS.register("roundRobin", RoundRobinConfig)
def make_round_robin(config: RoundRobinConfig | None, ctx: BalancerContext) -> Balancer:
    return RoundRobinBalancer(ctx)
