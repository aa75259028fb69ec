"""Routing one logical name: bind it through the dtab, pick a bound name per request.

A ``BindingService`` exists per (logical path, override dtab).  It observes the
interpreter's live binding and every leaf's address set, and re-evaluates the tree only
when either changes, so a request only does a weighted random pick and a dict lookup.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from l5d_twisted.errors import BadDtabHeader, MeshError, NoHostsAvailable
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.limits import BindingLimitError
from l5d_twisted.naming.nametree import EMPTY, FAIL, Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Closable, Failed, Ok, State
from l5d_twisted.service import Service

from .waiting import BindingWaiters

log = Logger()

# The "no hosts" error body explains the resolution (its text shows 16 levels at most):
# a shorter walk than the admin's keeps a failing route's first request cheap.
ERROR_EXPLANATION_STEPS = 200
ERROR_EXPLANATION_CHARS = 16 * 1024  # and the body stays small whatever the dtab's size


_ONE = [1.0]
_ONE_CUMULATIVE = (1.0,)


class _Choice:
    """A resolved tree: the bound names and their cumulative weights, or an error (with
    its explanation text, made once: every request to a failing name carries it)."""

    __slots__ = ("names", "cumulative", "error", "explanation")

    def __init__(
        self, names: list[BoundName], weights: list[float], error: MeshError | None = None
    ) -> None:
        # (tuples: one block each, and a name bound to one leaf shares its weights)
        self.names: tuple[BoundName, ...] = tuple(names)
        if weights == _ONE:
            self.cumulative: tuple[float, ...] = _ONE_CUMULATIVE
        else:
            cumulative = []
            total = 0.0
            for w in weights:
                total += max(w, 0.0)
                cumulative.append(total)
            self.cumulative = tuple(cumulative)
        self.error = error
        self.explanation: str | None = None

    def pick(self, rng: random.Random) -> BoundName:
        if len(self.names) == 1:
            return self.names[0]
        total = self.cumulative[-1]
        if total <= 0:
            return rng.choice(self.names)
        return self.names[bisect.bisect_right(self.cumulative, rng.random() * total)]


class BindingService(Service[Request, Response]):
    __slots__ = (
        "path",
        "local_dtab",
        "base_dtab",
        "_interpreter",
        "_client_for",
        "_reactor",
        "_rng",
        "_choice",
        "_tree",
        "_leaf_observations",
        "_waiters",
        "_binding_timeout_s",
        "last_used",
        "_observation",
        "__weakref__",
    )

    def __init__(
        self,
        *,
        path: Path,
        local_dtab: Dtab,
        base_dtab: Dtab,
        interpreter: Any,
        client_for: Callable[[BoundName], Service[Request, Response]],
        reactor: Any,
        rng: random.Random,
        binding_timeout_s: float,
    ) -> None:
        self.path = path
        self.local_dtab = local_dtab
        self.base_dtab = base_dtab
        self._interpreter = interpreter
        self._client_for = client_for
        self._reactor = reactor
        self._rng = rng
        self._choice: _Choice | None = None  # None while pending
        self._tree: NameTree[BoundName] | None = None
        self._leaf_observations: tuple[Closable, ...] = ()  # (a tuple: one block)
        # made when a request first waits (most routes bind at once: ~120 bytes a route)
        self._waiters: BindingWaiters | None = None
        self._binding_timeout_s = binding_timeout_s
        self.last_used = reactor.seconds()
        # A bind with a client's dtab is not kept among the interpreter's recent binds: it
        # lives as long as this route (in the router's small cache of override routes).
        bound = interpreter.bind(base_dtab + local_dtab, path, remember=not local_dtab)
        self._observation: Closable | None = bound.observe(self._on_state)

    # -- binding -------------------------------------------------------------------
    def _on_state(self, state: State) -> None:
        if isinstance(state, Ok):
            tree = state.value
            if tree != self._tree:
                self._tree = tree
                self._watch_leaves(tree)
            self._reevaluate()
        elif isinstance(state, Failed):
            if isinstance(state.error, BindingLimitError) and self.local_dtab:
                # The request's dtab made binding too expensive: the client's fault (400).
                error: MeshError = BadDtabHeader(
                    f"l5d-dtab: cannot route {self.path.show()} with the request's dtab: {state.error}"
                )
            else:
                error = self._no_hosts(f"binding failed: {state.error}")
            self._set_choice(_Choice([], [], error))
        # Pending: keep the previous choice (if any) while the binding settles.

    def _watch_leaves(self, tree: NameTree[BoundName]) -> None:
        for c in self._leaf_observations:
            c.close()
        self._leaf_observations = ()
        leaves: list[BoundName] = []
        _collect_leaves(tree, leaves)
        observations: list[Closable] = []
        try:
            for bound in leaves:
                # A leaf whose address set turns negative changes the evaluation (Alt falls
                # through), so every leaf's addresses are watched too.
                observations.append(bound.addr.observe(self._on_leaf_addr))
        finally:
            self._leaf_observations = tuple(observations)

    def _on_leaf_addr(self, _addr: Any) -> None:
        self._reevaluate()

    def _reevaluate(self) -> None:
        tree = self._tree
        if tree is None:
            return
        try:
            result = evaluate(tree)
        except Exception as e:  # never let a bad tree break routing for other names
            log.failure("evaluating the binding of {path}", path=self.path.show())
            self._set_choice(_Choice([], [], self._no_hosts(f"cannot evaluate binding: {e}")))
            return
        if isinstance(result, Leaf):
            self._set_choice(_Choice([result.value], [1.0]))
        elif isinstance(result, Union):
            names: list[BoundName] = []
            weights: list[float] = []
            for branch in result.branches:
                if isinstance(branch.tree, Leaf):
                    names.append(branch.tree.value)
                    weights.append(branch.weight)
            if names:
                self._set_choice(_Choice(names, weights))
            else:
                self._set_choice(_Choice([], [], self._no_hosts("every branch is negative")))
        elif result is FAIL:
            self._set_choice(_Choice([], [], self._no_hosts("the name resolved to a failure")))
        elif result is EMPTY:
            self._set_choice(_Choice([], [], self._no_hosts("the name resolved to an empty set")))
        else:  # NEG
            self._set_choice(
                _Choice(
                    [], [], self._no_hosts("the name is negative: no dtab rule or namer knows it")
                )
            )

    def _set_choice(self, choice: _Choice) -> None:
        self._choice = choice
        if self._waiters is not None:
            self._waiters.release_all()

    def _no_hosts(self, why: str) -> NoHostsAvailable:
        return NoHostsAvailable(
            f"Unable to route request! service name: {self.path.show()} ({why})",
            explanation="",
            path=self.path.show(),
        )

    def explain(self) -> str:
        """The text the 'no hosts' error body carries: names, dtabs, and the tree."""
        lines = [
            f"service name: {self.path.show()}",
            f"base dtab: {self.base_dtab.show()}",
            f"override dtab: {self.local_dtab.show()}",
            "resolution:",
        ]
        try:
            dtab = self.base_dtab + self.local_dtab
            lines.append(
                self._interpreter.explain(
                    dtab, self.path, max_steps=ERROR_EXPLANATION_STEPS
                ).to_text()
            )
        except Exception as e:  # the explanation is a courtesy: never fail the error path
            lines.append(f"  (no explanation available: {e})")
        text = "\n".join(
            line if len(line) <= 1000 else line[:997] + "..."
            for line in "\n".join(lines).split("\n")
        )
        if len(text) > ERROR_EXPLANATION_CHARS:
            cut = len(text) - ERROR_EXPLANATION_CHARS
            text = (
                text[:ERROR_EXPLANATION_CHARS]
                + f"\n... ({cut} more characters: see /delegator.json on the admin server)\n"
            )
        return text

    # -- requests ------------------------------------------------------------------
    def __call__(self, request: Request) -> Deferred[Response]:
        self.last_used = self._reactor.seconds()
        choice = self._choice
        if choice is None:
            waiters = self._waiters
            if waiters is None:
                # (``path``, not ``self``: no reference cycle to outlive the route)
                waiters = self._waiters = BindingWaiters(
                    self._reactor, self._binding_timeout_s, ("binding", self.path)
                )
            return waiters.wait_then(lambda: self(request))
        if choice.error is not None:
            if not isinstance(choice.error, NoHostsAvailable):
                return fail(choice.error)
            if choice.explanation is None:
                choice.explanation = self.explain()
            error = NoHostsAvailable(
                choice.error.message, explanation=choice.explanation, path=self.path.show()
            )
            return fail(error)
        names = choice.names
        bound = names[0] if len(names) == 1 else choice.pick(self._rng)
        return self._client_for(bound)(request)

    def close(self) -> Deferred[None]:
        for c in self._leaf_observations:
            c.close()
        self._leaf_observations = ()
        if self._observation is not None:
            self._observation.close()
            self._observation = None
        return super().close()


def _collect_leaves(tree: NameTree[BoundName], out: list[BoundName]) -> None:
    if isinstance(tree, Leaf):
        out.append(tree.value)
    elif isinstance(tree, Alt):
        for t in tree.trees:
            _collect_leaves(t, out)
    elif isinstance(tree, Union):
        for b in tree.branches:
            _collect_leaves(b.tree, out)
