"""Explaining a resolution: which rule matched at each step, what each branch became.

``explain(interpreter, dtab, path)`` walks the same steps as ``Interpreter.bind`` over a
snapshot of the namers' current answers and returns an :class:`Explanation`: a tree of
:class:`Node` (one per delegation step) plus the final result (transformers applied,
``evaluate``-d).  ``to_text()`` prints it as an indented tree for people (the CLI, the
"no hosts" error body); ``to_json()`` follows linkerd 1's ``/delegator.json``:

    {"type": "delegate", "path": "/svc/hello", "dentry": null,
     "delegate": {"type": "leaf", "path": "/#/io.l5d.fs/hello",
                  "dentry": {"prefix": "/svc", "dst": "/#/io.l5d.fs"},
                  "bound": {"id": "/#/io.l5d.fs/hello", "path": "/",
                            "addr": {"type": "bound", "addrs": [{"ip": ..., "port": ...}]}}},
     "dtab": "...", "result": {...}}

Node types: ``delegate`` (rewritten by one rule), ``alt`` (several choices, first non-neg
wins; ``chosen`` is its index), ``union`` (weighted split), ``leaf`` (bound by a namer),
``neg``, ``fail``, ``empty``, ``pending`` and ``exception`` (a lookup failed).

:func:`explain_settled` first waits (bounded) for pending namers to answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from l5d_twisted.naming.addr import Addr, AddrBound, Address, AddrPending, BoundName
from l5d_twisted.naming.addrshow import addr_json, addr_text
from l5d_twisted.naming.dtab import Dentry, Dtab, show_tree
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.limits import MAX_TREE_DEPTH, BindBudget, BindingLimitError
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Closable, Failed, Ok, Pending, State

if TYPE_CHECKING:
    from l5d_twisted.naming.interpreter import Interpreter

# An explanation shows at most this many delegation steps (and the work of binding them
# is charged to a budget as binding's is): past either, the rest is cut off.
MAX_STEPS = 1000


@dataclass(frozen=True)
class Node:
    type: str
    path: Path | None = None
    dentry: Dentry | None = None
    children: tuple[Node, ...] = ()
    weights: tuple[float, ...] = ()
    bound: BoundName | None = None
    addr: Addr | None = None
    message: str = ""
    chosen: int | None = None

    @property
    def outcome(self) -> str:
        """What this branch became for binding: bound, neg, fail, empty, pending, exception."""
        if self.type == "leaf":
            return "bound"
        if self.type == "delegate":
            return self.children[0].outcome if self.children else "neg"
        if self.type == "alt":
            if self.chosen is None:
                return "neg"
            return self.children[self.chosen].outcome
        if self.type == "union":
            outcomes = [c.outcome for c in self.children]
            for wanted in ("bound", "empty", "exception", "pending", "fail"):
                if wanted in outcomes:
                    return wanted
            return "neg"
        return self.type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "path": self.path.show() if self.path is not None else None,
            "dentry": {"prefix": self.dentry.prefix.show(), "dst": show_tree(self.dentry.dst)}
            if self.dentry
            else None,
        }
        if self.type == "delegate":
            out["delegate"] = self.children[0].to_json() if self.children else None
        elif self.type == "alt":
            out["alt"] = [c.to_json() for c in self.children]
            out["chosen"] = self.chosen
        elif self.type == "union":
            out["union"] = [
                {"weight": w, "tree": c.to_json()} for w, c in zip(self.weights, self.children)
            ]
        elif self.type == "leaf" and self.bound is not None:
            out["bound"] = _bound_json(self.bound, self.addr)
        if self.message:
            out["message"] = self.message
        return out


def _bound_json(bound: BoundName, addr: Addr | None) -> dict[str, Any]:
    return {
        "id": bound.id.show(),
        "path": bound.residual.show(),
        "addr": addr_json(addr if addr is not None else bound.addr.sample()),
    }


@dataclass(frozen=True)
class Explanation:
    """A snapshot of how ``path`` resolves under ``dtab`` (see the module doc)."""

    dtab: Dtab
    path: Path
    root: Node
    state: State  # the transformed bind result at the time of the snapshot
    result: NameTree[BoundName] | None = None  # evaluate()d, None if pending or failed
    snapshot: dict[BoundName, Addr] = field(default_factory=dict)
    transformers: tuple[str, ...] = ()  # the interpreter's transformers, in order

    @property
    def addresses(self) -> list[Address]:
        """Every address the result would send to (empty if neg/fail/empty/pending)."""
        found: dict[tuple[str, int], Address] = {}
        for bound in _leaves(self.result) if self.result is not None else ():
            addr = self.snapshot.get(bound) or bound.addr.sample()
            if isinstance(addr, AddrBound):
                for a in addr.addresses:
                    found.setdefault((a.host, a.port), a)
        return [found[k] for k in sorted(found)]

    @property
    def resolved(self) -> bool:
        return bool(self.addresses)

    def summary(self) -> str:
        """One line: what the name resolved to."""
        state = self.state
        if isinstance(state, Pending):
            return "pending (a namer has not answered yet)"
        if isinstance(state, Failed):
            return f"failed: {state.error}"
        result = self.result
        if result is NEG:
            return "neg (no rule or namer knows this name)"
        if result is FAIL:
            return "fail (a rule says this name fails)"
        if result is EMPTY:
            return "empty (the name exists but has no addresses)"
        n = len(self.addresses)
        return f"{n} address{'es' if n != 1 else ''}" if n else "no addresses"

    def to_json(self) -> dict[str, Any]:
        out = self.root.to_json()
        out["dtab"] = self.dtab.show()
        out["transformers"] = list(self.transformers)
        out["result"] = self._result_json()
        return out

    def _result_json(self) -> dict[str, Any]:
        state = self.state
        if isinstance(state, Pending):
            return {"type": "pending"}
        if isinstance(state, Failed):
            return {"type": "exception", "message": str(state.error)}
        assert self.result is not None
        out = _tree_json(self.result, self.snapshot)
        out["summary"] = self.summary()
        out["addresses"] = [a.show() for a in self.addresses]
        return out

    def to_text(self) -> str:
        lines = [self.root_line()]
        _render_children(self.root, "", lines)
        if self.transformers:
            lines.append(f"transformed by: {', '.join(self.transformers)}")
        lines.append(f"=> {self.summary()}")
        if self.result is not None and self.result not in (NEG, FAIL, EMPTY):
            for weight, bound in _weighted_leaves(self.result):
                addr = self.snapshot.get(bound) or bound.addr.sample()
                share = f"{weight:.0%} " if weight != 1.0 else ""
                lines.append(f"   {share}{bound.id.show()}{_residual(bound)}: {addr_text(addr)}")
        return "\n".join(lines) + "\n"

    def root_line(self) -> str:
        return _node_line(self.root)


def _residual(bound: BoundName) -> str:
    return "" if bound.residual.is_empty else f" (residual {bound.residual.show()})"


def _leaves(tree: NameTree[BoundName]) -> Iterator[BoundName]:
    for _, bound in _weighted_leaves(tree):
        yield bound


def _weighted_leaves(
    tree: NameTree[BoundName], weight: float = 1.0
) -> Iterator[tuple[float, BoundName]]:
    if isinstance(tree, Leaf):
        yield weight, tree.value
    elif isinstance(tree, Union):
        for b in tree.branches:
            yield from _weighted_leaves(b.tree, weight * b.weight)
    elif isinstance(tree, Alt):
        for t in tree.trees:
            yield from _weighted_leaves(t, weight)


def _tree_json(tree: NameTree[BoundName], snapshot: dict[BoundName, Addr]) -> dict[str, Any]:
    if isinstance(tree, Leaf):
        return {"type": "leaf", "bound": _bound_json(tree.value, snapshot.get(tree.value))}
    if isinstance(tree, Union):
        return {
            "type": "union",
            "union": [
                {"weight": b.weight, "tree": _tree_json(b.tree, snapshot)} for b in tree.branches
            ],
        }
    if isinstance(tree, Alt):
        return {"type": "alt", "alt": [_tree_json(t, snapshot) for t in tree.trees]}
    return {"type": {id(NEG): "neg", id(FAIL): "fail", id(EMPTY): "empty"}.get(id(tree), "neg")}


# --- text rendering -------------------------------------------------------------------


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _node_line(node: Node) -> str:
    where = _clip(node.path.show()) if node.path is not None else ""
    rule = f"  [{node.dentry.show()}]" if node.dentry is not None else ""
    if node.type in ("delegate", "alt"):
        label = where or ("alternatives" if node.type == "alt" else "")
        note = f" ({node.message})" if node.message else ""
        return f"{label}{rule}{note}"
    if node.type == "union":
        return f"{where or 'union'}{rule}" if where else f"union{rule}"
    if node.type == "leaf" and node.bound is not None:
        target = node.bound.id.show()
        addr = node.addr if node.addr is not None else node.bound.addr.sample()
        head = where if where else target
        ident = "" if target == where else f" as {target}"
        return f"{head}{rule} -> bound{ident}{_residual(node.bound)}: {addr_text(addr)}"
    symbol = {"neg": "~", "fail": "!", "empty": "$"}.get(node.type, node.type)
    head = where or symbol
    detail = f": {node.message}" if node.message else ""
    return f"{head}{rule} -> {node.type}{detail}"


_MAX_TEXT_DEPTH = 16


def _render_children(node: Node, indent: str, lines: list[str], depth: int = 0) -> None:
    if depth >= _MAX_TEXT_DEPTH and node.children:
        # A loop or a very long chain: skip to where it ends instead of printing it all.
        skipped, end = 0, node
        while end.children:
            end, skipped = end.children[0], skipped + 1
        lines.append(f"{indent}└─ ... {skipped - 1} more steps ...")
        lines.append(f"{indent}   └─ {_node_line(end)}")
        return
    count = len(node.children)
    for i, child in enumerate(node.children):
        last = i == count - 1
        branch = "└─ " if last else "├─ "
        label = ""
        if node.type == "alt":
            mark = " chosen" if node.chosen == i else ""
            label = f"[{i + 1}{mark}] "
        elif node.type == "union":
            label = f"[{node.weights[i]!r} *] "
        lines.append(f"{indent}{branch}{label}{_node_line(child)}")
        _render_children(child, indent + ("   " if last else "│  "), lines, depth + 1)


# --- the walk -------------------------------------------------------------------------


class _Walker:
    """Walks a binding as ``Interpreter.bind`` does, within the same limits
    (``naming.limits``); what lies past a limit becomes one ``exception`` node."""

    def __init__(self, interp: Interpreter, dtab: Dtab, max_steps: int = MAX_STEPS) -> None:
        self.interp = interp
        self.dtab = dtab
        self.nodes = 0
        self.max_steps = max_steps
        self.budget = BindBudget()
        self.cut_off = ""  # why the walk stopped early, if it did
        self.snapshot: dict[BoundName, Addr] = {}

    def leaf(self, path: Path | None, dentry: Dentry | None, bound: BoundName) -> Node:
        addr = bound.addr.sample()
        self.snapshot.setdefault(bound, addr)
        return Node("leaf", path, dentry, bound=bound, addr=addr)

    def path(self, path: Path, dentry: Dentry | None, depth: int, level: int) -> Node:
        self.nodes += 1
        if depth > self.interp.max_depth:
            return Node(
                "exception",
                path,
                dentry,
                message=f"more than {self.interp.max_depth} delegation steps; is there a loop in the dtab?",
            )
        if self.nodes > self.max_steps and not self.cut_off:
            self.cut_off = f"explanation cut off after {self.max_steps} steps"
        if self.cut_off:
            return Node("exception", path, dentry, message=self.cut_off)
        try:
            matches = self.dtab.matching(path, self.budget)
        except BindingLimitError as e:
            self.cut_off = str(e)
            return Node("exception", path, dentry, message=self.cut_off)
        if len(matches) == 1:
            d, tree = matches[0]
            return Node("delegate", path, dentry, children=(self.tree(tree, d, depth + 1, level),))
        if matches:
            if level + 1 > MAX_TREE_DEPTH:
                return self._too_nested(path, dentry)
            children = tuple(self.tree(tree, d, depth + 1, level + 1) for d, tree in matches)
            return Node("alt", path, dentry, children=children, chosen=_first_not_neg(children))
        return self.lookup(path, dentry, depth, level)

    def _too_nested(self, path: Path | None, dentry: Dentry | None) -> Node:
        return Node(
            "exception",
            path,
            dentry,
            message=f"alternations and unions nested more than {MAX_TREE_DEPTH} deep",
        )

    def lookup(self, path: Path, dentry: Dentry | None, depth: int, level: int) -> Node:
        mark = path[0] if not path.is_empty else ""
        if mark not in ("#", "$"):
            return Node("neg", path, dentry, message="no rule matches")
        if mark == "#" and self.interp.namer_for(path) is None:
            return Node("neg", path, dentry, message="no namer is configured for this prefix")
        state = self.interp.lookup(path).sample()
        if isinstance(state, Pending):
            return Node("pending", path, dentry, message="waiting for the namer's first answer")
        if isinstance(state, Failed):
            return Node("exception", path, dentry, message=str(state.error))
        tree = state.value
        if isinstance(tree, Leaf) and isinstance(tree.value, BoundName):
            return self.leaf(path, dentry, tree.value)
        if tree is NEG:
            return Node("neg", path, dentry, message="the namer does not know this name")
        if tree is FAIL or tree is EMPTY:
            return Node("fail" if tree is FAIL else "empty", path, dentry)
        rewriter = f"/$/{path[1]}" if mark == "$" and len(path) > 1 else "the namer"
        return Node(
            "delegate",
            path,
            dentry,
            children=(self.tree(tree, None, depth + 1, level),),
            message=f"rewritten by {rewriter}",
        )

    def tree(self, tree: NameTree[Any], dentry: Dentry | None, depth: int, level: int) -> Node:
        if isinstance(tree, Leaf):
            value = tree.value
            if isinstance(value, BoundName):
                return self.leaf(None, dentry, value)
            return self.path(value, dentry, depth, level)
        if tree is NEG:
            return Node("neg", None, dentry)
        if tree is FAIL:
            return Node("fail", None, dentry)
        if tree is EMPTY:
            return Node("empty", None, dentry)
        if level + 1 > MAX_TREE_DEPTH:
            return self._too_nested(None, dentry)
        if isinstance(tree, Alt):
            children = tuple(self.tree(t, None, depth, level + 1) for t in tree.trees)
            return Node("alt", None, dentry, children=children, chosen=_first_not_neg(children))
        if isinstance(tree, Union):
            children = tuple(self.tree(b.tree, None, depth, level + 1) for b in tree.branches)
            return Node(
                "union",
                None,
                dentry,
                children=children,
                weights=tuple(b.weight for b in tree.branches),
            )
        return Node("exception", None, dentry, message=f"not a name tree: {tree!r}")


def _first_not_neg(children: tuple[Node, ...]) -> int | None:
    for i, child in enumerate(children):
        if child.outcome != "neg":
            return i
    return None


def explain(interp: Interpreter, dtab: Dtab, path: Path, max_steps: int = MAX_STEPS) -> Explanation:
    walker = _Walker(interp, dtab, max_steps)
    root = walker.path(path, None, 0, 0)
    state = interp.bind(dtab, path).sample()
    result = evaluate(state.value) if isinstance(state, Ok) else None
    if result is not None:
        for bound in _leaves(result):
            walker.snapshot.setdefault(bound, bound.addr.sample())
    names = tuple(_transformer_name(t) for t in interp.transformers)
    return Explanation(dtab, path, root, state, result, walker.snapshot, names)


def _transformer_name(transformer: Any) -> str:
    prefix = getattr(transformer, "prefix", None)
    if isinstance(prefix, Path):
        return prefix.show()
    return str(getattr(transformer, "kind", None) or type(transformer).__name__)


def explain_settled(
    interp: Interpreter, dtab: Dtab, path: Path, clock: Any, timeout_s: float = 5.0
) -> Deferred[Explanation]:
    """Observe the binding until no namer is pending (or ``timeout_s`` passes), then
    explain it while the namers' answers are still being watched."""
    done: Deferred[Explanation] = Deferred()
    watches: dict[BoundName, Closable] = {}
    handle: list[Closable] = []

    def settled(state: State) -> bool:
        if not isinstance(state, Ok):
            return not isinstance(state, Pending)
        return all(not isinstance(b.addr.sample(), AddrPending) for b in _leaves(state.value))

    def finish() -> None:
        if done.called:
            return
        if timer.active():
            timer.cancel()
        try:
            explanation = explain(interp, dtab, path)
        except Exception as e:  # never leave the caller waiting
            for c in [*handle, *watches.values()]:
                c.close()
            done.errback(e)
            return
        for c in [*handle, *watches.values()]:
            c.close()
        done.callback(explanation)

    def on_state(state: State) -> None:
        if isinstance(state, Ok):
            for bound in _leaves(state.value):
                if bound not in watches:
                    watches[bound] = bound.addr.observe(lambda _addr: check())
        check()

    def check() -> None:
        if handle and settled(var.sample()):
            clock.callLater(0, finish)  # let the current update finish first

    var = interp.bind(dtab, path)
    timer = clock.callLater(timeout_s, finish)
    handle.append(var.observe(on_state))
    check()
    return done
