"""Binding: from a logical path to a live tree of bound names.

``Interpreter.bind(dtab, path)`` follows linkerd 1 (Finagle's ``Namer.bind``):

* A path is looked up in the dtab (``Dtab.lookup``): rules are tried from the bottom up,
  every matching rule rewrites the prefix, and the result is bound again from the bottom
  of the table.  Several matching rules form an alternation, latest rule first.
* Alternation (``|`` or several rules) takes the first branch that is not negative;
  a failure (``!``) stops the fallback.
* A union binds its branches, drops negative ones and keeps the weights.  It stays usable
  while at least one branch is bound; it is pending or failed only if no branch is bound.
* A path no rule matches goes to a namer: ``/#/<prefix>/...`` to the configured namer with
  the longest matching prefix, ``/$/...`` to the built-ins (``naming.builtins``); anything
  else is negative.  A namer may answer with bound names or with paths to bind again.
* More than ``max_depth`` delegation steps (a dtab loop such as ``/a => /a/b``) is a
  failure that says so.
* One binding pass has a work budget and limits on nesting and union width
  (``naming.limits``): a dtab that expands too much (``/svc => /svc/a & /svc/b``) fails
  with a ``BindingLimitError`` in bounded time and memory.  Recursion follows delegation
  steps and tree nesting only, both bounded, so it stays far below Python's limit.

The result is an activity (``Var[State]`` of ``NameTree[BoundName]``) that follows the
namers: when a namer's answer changes, the bound tree changes.  Vars are lazy, so nothing
is watched unless someone observes the result, and binds are cached and shared per
(dtab, path).  The configured transformers are applied, in order, to the bound tree.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from l5d_twisted.naming.activity import (
    Const,
    collect_states,
    failed,
    first_failure_or_pending,
    first_not_neg,
    flat_map,
    ok,
)
from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.builtins import Builtins
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.inet import InetNamer, Resolve, thread_resolver
from l5d_twisted.naming.limits import (
    BindBudget,
    BindingLimitError,
    DelegationError,
    check_tree_depth,
    check_union_width,
    short,
)
from l5d_twisted.naming.namer import Namer, Transformer
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State, Var

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from l5d_twisted.naming.explanation import Explanation

# Delegation steps along one branch (linkerd 1's limit): a dtab loop such as /a => /a/b
# fails after this many.  The other limits (work, nesting, union width) are in
# naming.limits.
MAX_DEPTH = 100
NAMER_MARK = "#"
BUILTIN_MARK = "$"
TRANSFORMED_MARK = "%"


class Interpreter:
    """Binds paths with a dtab, configured namers, built-ins and transformers.

    ``namers`` maps a namer prefix (``/io.l5d.fs``) to the namer; ``reactor`` runs DNS
    lookups for ``/$/inet`` (the global reactor if None); ``resolve`` replaces the DNS
    resolver in tests.
    """

    def __init__(
        self,
        namers: Mapping[Path, Namer] | Mapping[str, Namer],
        transformers: Sequence[Transformer] = (),
        reactor: Any = None,
        *,
        max_depth: int = MAX_DEPTH,
        resolve: Resolve | None = None,
        dns_refresh_s: float = 5.0,
        cache_size: int = 1024,
    ) -> None:
        prefixes = [
            (k if isinstance(k, Path) else Path.read(k), namer) for k, namer in namers.items()
        ]
        # Longest prefix first: a namer at /k8s/prod wins over one at /k8s for its names.
        self.namers: tuple[tuple[Path, Namer], ...] = tuple(
            sorted(prefixes, key=lambda p: -len(p[0]))
        )
        self.transformers = tuple(transformers)
        self.max_depth = max_depth
        self._reactor = reactor
        self._resolve = resolve
        self._dns_refresh_s = dns_refresh_s
        self._builtins: Builtins | None = None
        self._cache: weakref.WeakValueDictionary[tuple[Dtab, Path], Var[State]] = (
            weakref.WeakValueDictionary()
        )
        # Strong references to the most recent binds so that a route that is dropped and
        # asked for again soon finds its tree (and its namers' state) still there.
        self._recent: OrderedDict[tuple[Dtab, Path], Var[State]] = OrderedDict()
        self._cache_size = cache_size

    # --- public API -------------------------------------------------------------------
    def bind(self, dtab: Dtab, path: Path, *, remember: bool = True) -> Var[State]:
        """An activity of ``NameTree[BoundName]`` for ``path``, transformers applied.

        ``remember=False`` shares the bind while someone holds it but does not keep it
        among the recent ones: binds with a client's dtab must not evict the operator's.
        """
        key = (dtab, path)
        var = self._cache.get(key)
        if var is None:
            var = self._transform(self.bind_untransformed(dtab, path))
            self._cache[key] = var
        if not remember:
            return var
        self._recent[key] = var
        self._recent.move_to_end(key)
        if len(self._recent) > self._cache_size:
            self._recent.popitem(last=False)
        return var

    def bind_untransformed(self, dtab: Dtab, path: Path) -> Var[State]:
        return self._bind_pass(dtab, Leaf(path), 0, 0)

    def explain(self, dtab: Dtab, path: Path, max_steps: int | None = None) -> Explanation:
        """A snapshot :class:`~l5d_twisted.naming.explanation.Explanation` of binding
        ``path``: which rule matched at each step and what each branch became (at most
        ``max_steps`` delegation steps, else ``explanation.MAX_STEPS``)."""
        from l5d_twisted.naming.explanation import MAX_STEPS, explain

        return explain(self, dtab, path, max_steps or MAX_STEPS)

    def explain_settled(
        self, dtab: Dtab, path: Path, timeout_s: float = 5.0
    ) -> Deferred[Explanation]:
        """A Deferred :class:`~l5d_twisted.naming.explanation.Explanation`, taken once no
        namer is pending any more (or after ``timeout_s``): for the admin playground and
        the CLI, where names may not be watched yet."""
        from l5d_twisted.naming.explanation import explain_settled

        return explain_settled(self, dtab, path, self.reactor, timeout_s)

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor as global_reactor

            return global_reactor
        return self._reactor

    def lookup(self, path: Path) -> Var[State]:
        """What a namer (``/#/...``) or built-in (``/$/...``) says about ``path``, a tree
        of bound names and/or paths to bind again.  Other paths are negative."""
        if path.is_empty:
            return ok(NEG)
        mark = path[0]
        if mark == NAMER_MARK:
            found = self.namer_for(path)
            if found is None:
                return ok(NEG)
            prefix, namer = found
            try:
                return namer.lookup(path.drop(1 + len(prefix)))
            except Exception as e:  # a namer bug must not break other routes
                return failed(e)
        if mark == BUILTIN_MARK:
            return self.builtins.lookup(path.drop(1))
        return ok(NEG)

    def namer_for(self, path: Path) -> tuple[Path, Namer] | None:
        """The configured namer (with its prefix) for a ``/#/...`` path, if any."""
        rest = path.drop(1)
        for prefix, namer in self.namers:
            if rest.startswith(prefix):
                return prefix, namer
        return None

    @property
    def builtins(self) -> Builtins:
        if self._builtins is None:
            reactor = self.reactor
            resolve = self._resolve or thread_resolver(reactor)
            self._builtins = Builtins(InetNamer(reactor, resolve, self._dns_refresh_s))
        return self._builtins

    # --- binding ----------------------------------------------------------------------
    def _transform(self, act: Var[State]) -> Var[State]:
        for transformer in self.transformers:
            act = flat_map(act, transformer.transform)
        return act

    def _bind_pass(self, dtab: Dtab, tree: NameTree[Any], depth: int, level: int) -> Var[State]:
        """Bind ``tree`` on a budget of its own: the whole pass fails if it runs out."""
        try:
            return self._bind_tree(dtab, tree, depth, level, BindBudget())
        except BindingLimitError as e:
            # kept in the binding's state: without its traceback, which holds every frame of
            # the request that bound it (the route holding the state among them: a cycle)
            return failed(e.with_traceback(None))

    def _bind_path(
        self, dtab: Dtab, path: Path, depth: int, level: int, budget: BindBudget
    ) -> Var[State]:
        if depth > self.max_depth:
            return failed(
                DelegationError(
                    f"more than {self.max_depth} delegation steps (reached {short(path)}); is there a loop in the dtab?"
                )
            )
        rewritten = dtab.lookup(path, budget)
        if rewritten is not NEG:
            return self._bind_tree(dtab, rewritten, depth + 1, level, budget)
        budget.charge(1 + len(path), path)
        looked_up = self.lookup(path)
        if isinstance(looked_up, Const):
            # Built-ins and most rewrites answer at once: bind the answer in this pass.
            state = looked_up.sample()
            if not isinstance(state, Ok):
                return looked_up
            return self._bind_tree(dtab, state.value, depth + 1, level, budget)
        # A live answer is bound whenever it changes, each time on a budget of its own.
        return flat_map(looked_up, _BindPass(self, dtab, depth + 1, level))

    def _bind_tree(
        self, dtab: Dtab, tree: NameTree[Any], depth: int, level: int, budget: BindBudget
    ) -> Var[State]:
        if isinstance(tree, Leaf):
            value = tree.value
            if isinstance(value, Path):
                return self._bind_path(dtab, value, depth, level, budget)
            if isinstance(value, BoundName):
                return ok(tree)
            return failed(
                TypeError(f"a name tree leaf must be a path or a bound name, not {value!r}")
            )
        if tree is NEG or tree is FAIL or tree is EMPTY:
            return ok(tree)
        check_tree_depth(level + 1, None)
        if isinstance(tree, Alt):
            return self._bind_alt(dtab, tree.trees, depth, level + 1, budget)
        if isinstance(tree, Union):
            return self._bind_union(dtab, tree.branches, depth, level + 1, budget)
        return failed(TypeError(f"not a name tree: {tree!r}"))

    def _bind_alt(
        self,
        dtab: Dtab,
        trees: tuple[NameTree[Any], ...],
        depth: int,
        level: int,
        budget: BindBudget,
    ) -> Var[State]:
        # Fall through on negative only; a bound, empty or failed branch ends the search.
        # Branches known at once are bound in a loop in this pass; once one is live, the
        # rest are bound only if it turns negative (each at most once), still charged to
        # this pass's budget: a dtab cannot multiply its work with live branches.
        for index, tree in enumerate(trees):
            act = self._bind_tree(dtab, tree, depth, level, budget)
            if not isinstance(act, Const):
                later = trees[index + 1 :]
                if not later:
                    return act
                return first_not_neg(
                    [_given(act), *(self._later(dtab, t, depth, level, budget) for t in later)]
                )
            state = act.sample()
            if not (isinstance(state, Ok) and state.value is NEG):
                return act
        return ok(NEG)

    def _later(
        self, dtab: Dtab, tree: NameTree[Any], depth: int, level: int, budget: BindBudget
    ) -> Callable[[], Var[State]]:
        return lambda: self._bind_tree(dtab, tree, depth, level, budget)

    def _bind_union(
        self,
        dtab: Dtab,
        branches: tuple[Weighted[Any], ...],
        depth: int,
        level: int,
        budget: BindBudget,
    ) -> Var[State]:
        check_union_width(len(branches))
        weights = [b.weight for b in branches]
        acts = []
        for b in branches:
            acts.append(self._bind_tree(dtab, b.tree, depth, level, budget))

        def combine(states: tuple[State, ...]) -> State:
            kept = tuple(
                Weighted(w, s.value)
                for w, s in zip(weights, states)
                if isinstance(s, Ok) and s.value is not NEG
            )
            if kept:
                return Ok(Union(kept))
            return first_failure_or_pending(states) or Ok(NEG)

        return collect_states(acts, combine)


def _given(act: Var[State]) -> Callable[[], Var[State]]:
    """A branch of an alternation that is made already."""
    return lambda: act


class _BindPass:
    """Binds a live lookup's answer whenever it changes (a slotted callable rather than a
    closure over four variables: a routed name holds one; issue 17)."""

    __slots__ = ("_interpreter", "_dtab", "_depth", "_level")

    def __init__(self, interpreter: Interpreter, dtab: Dtab, depth: int, level: int) -> None:
        self._interpreter = interpreter
        self._dtab = dtab
        self._depth = depth
        self._level = level

    def __call__(self, tree: NameTree[Any]) -> Var[State]:
        return self._interpreter._bind_pass(self._dtab, tree, self._depth, self._level)
