"""Reducing a bound tree to what a router can send to.

``evaluate(tree)`` returns ``NEG``, ``FAIL``, ``EMPTY``, one ``Leaf`` or a ``Union`` of
leaves with normalised weights:

* ``Alt`` takes its first branch that does not evaluate to ``NEG``; ``FAIL`` stops it.
* A leaf whose address set is currently ``AddrNeg`` counts as ``NEG``.
* ``Union`` drops branches that are ``NEG``, ``FAIL`` or ``EMPTY``, flattens nested
  unions (multiplying weights), merges repeated leaves and turns one survivor into a
  leaf.  With no survivor it is ``EMPTY`` if a branch was empty, else ``FAIL`` if one
  failed, else ``NEG``.  Branches of weight 0 receive no traffic and are dropped.

The address check samples the leaf's addr var; a router that observes the addr vars
re-evaluates when they change.
"""

from __future__ import annotations

from l5d_twisted.naming.addr import AddrNeg, BoundName
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted


def evaluate(tree: NameTree[BoundName]) -> NameTree[BoundName]:
    if isinstance(tree, Leaf):
        bound = tree.value
        if isinstance(bound, BoundName) and isinstance(bound.addr.sample(), AddrNeg):
            return NEG
        return tree
    if isinstance(tree, Alt):
        for branch in tree.trees:
            result = evaluate(branch)
            if result is not NEG:
                return result
        return NEG
    if isinstance(tree, Union):
        return _evaluate_union(tree)
    return tree  # NEG, FAIL, EMPTY


def _evaluate_union(tree: Union[BoundName]) -> NameTree[BoundName]:
    weights: dict[BoundName, float] = {}
    order: list[Leaf[BoundName]] = []
    saw_empty = saw_fail = False
    total = sum(b.weight for b in tree.branches if b.weight > 0)
    for branch in tree.branches:
        if branch.weight <= 0:
            continue
        result = evaluate(branch.tree)
        if result is EMPTY:
            saw_empty = True
            continue
        if result is FAIL:
            saw_fail = True
            continue
        if result is NEG:
            continue
        share = branch.weight / total
        if isinstance(result, Leaf):
            parts: list[tuple[float, Leaf[BoundName]]] = [(share, result)]
        else:
            assert isinstance(result, Union)  # evaluate() returns unions of leaves only
            parts = [
                (share * b.weight, b.tree) for b in result.branches if isinstance(b.tree, Leaf)
            ]
        for weight, leaf in parts:
            if leaf.value not in weights:
                order.append(leaf)
                weights[leaf.value] = 0.0
            weights[leaf.value] += weight
    if not order:
        if saw_empty:
            return EMPTY
        return FAIL if saw_fail else NEG
    if len(order) == 1:
        return order[0]
    kept = sum(weights.values())
    return Union(tuple(Weighted(weights[leaf.value] / kept, leaf) for leaf in order))
