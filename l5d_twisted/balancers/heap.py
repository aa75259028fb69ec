"""``heap``: always the least-loaded node, kept at the root of a binary min-heap.

As in Finagle's HeapBalancer, each node knows its index in the heap; sending a request
raises a node's load and sifts it down, a response lowers it and sifts it up, so a pick is
O(1) and an update O(log n).  Ties between children are broken at random, so sequential
requests visit every idle node.  When the root is not OPEN, the OPEN node with the least load is searched for
(rare: it only happens while failure accrual holds a node dead).  Weights are not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.balancers.nodes import Node, NodeBalancer
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BALANCERS
from l5d_twisted.service import Service


class _HeapNode(Node):
    __slots__ = ("index",)

    def __init__(self, address: Address, service: Service[Any, Any]) -> None:
        super().__init__(address, service)
        self.index = -1


class HeapBalancer(NodeBalancer):
    node_type = _HeapNode

    def __init__(self, ctx: BalancerContext) -> None:
        super().__init__(ctx)
        self._heap: list[_HeapNode] = []

    def _nodes_changed(self, nodes: list[Node]) -> None:
        heap = [n for n in nodes if isinstance(n, _HeapNode)]
        heap.sort(key=lambda n: n.pending)  # a sorted list is a valid heap
        for i, node in enumerate(heap):
            node.index = i
        self._heap = heap

    def _drop_nodes(self, gone: list[Node]) -> None:
        super()._drop_nodes(gone)
        heap = self._heap
        for node in gone:
            assert isinstance(node, _HeapNode)
            i = node.index
            last = heap.pop()
            node.index = -1
            if last is not node:
                heap[i] = last
                last.index = i
                self._sift_up(i)
                self._sift_down(last.index)

    def _add_nodes(self, fresh: list[Node]) -> None:
        super()._add_nodes(fresh)
        heap = self._heap
        for node in fresh:
            assert isinstance(node, _HeapNode)
            node.index = len(heap)
            heap.append(node)
            self._sift_up(node.index)

    def _choose(self, nodes: list[Node], open_only: bool) -> Node | None:
        heap = self._heap
        root = heap[0]
        if not open_only or root.is_open:
            return root
        alive = [n for n in heap if n.is_open]
        return min(alive, key=lambda n: n.pending) if alive else None

    def _acquired(self, node: Node) -> None:
        if isinstance(node, _HeapNode) and not node.retired:
            self._sift_down(node.index)

    def _released(self, node: Node) -> None:
        if isinstance(node, _HeapNode) and not node.retired:
            self._sift_up(node.index)

    def _swap(self, i: int, j: int) -> None:
        heap = self._heap
        heap[i], heap[j] = heap[j], heap[i]
        heap[i].index = i
        heap[j].index = j

    def _sift_up(self, i: int) -> None:
        heap = self._heap
        while i > 0:
            parent = (i - 1) // 2
            if heap[i].pending >= heap[parent].pending:
                return
            self._swap(i, parent)
            i = parent

    def _sift_down(self, i: int) -> None:
        heap = self._heap
        n = len(heap)
        while True:
            left = 2 * i + 1
            if left >= n:
                return
            child = left
            right = left + 1
            if right < n:
                lr = heap[right].pending - heap[left].pending
                # equal children: pick one at random so sequential traffic visits every
                # idle node instead of bouncing between the root and one child
                if lr < 0 or (lr == 0 and self._rng.random() < 0.5):
                    child = right
            if heap[child].pending >= heap[i].pending:
                return
            self._swap(i, child)
            i = child


@dataclass(frozen=True)
class HeapConfig:
    """heap takes no options."""


@BALANCERS.register("heap", HeapConfig)
def make_heap(config: HeapConfig | None, ctx: BalancerContext) -> Balancer:
    return HeapBalancer(ctx)
