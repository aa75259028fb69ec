"""``interpreter: {kind: io.l5d.namerd.http}``: names bound by namerd, over its HTTP API.

linkerd 1's ``StreamingNamerClient``, with what it left out: the router asks namerd to
bind every name (``GET /api/1/bind/<ns>?path=<name>&dtab=<dtab>&watch=true``) and, for
every bound id in the trees namerd answers, to follow its addresses (``GET
/api/1/addr/<ns>?path=<id>&watch=true``).  Both are streams of newline-delimited JSON
(``interpreters.namerd_json``) that this module turns into the same live bound trees and
address vars the default interpreter produces, so routes, balancers and clients work
unchanged.  The mesh's own namers are not used for names (only to find namerd, ``dst``).

* The dtab sent is the router's ``dtab`` followed by the request's (``l5d-dtab``), as
  linkerd 1 sent ``Dtab.base ++ Dtab.local``; the router has applied the request-dtab
  trust rules (``router.trust``) before anything is bound, so a refused dtab never
  reaches namerd.
* Bound trees are cached per (dtab, path) and address vars per bound id, so a tree that
  changes keeps the clients (and their connections) of the ids that stay.  A leaf's
  address set inside the bind answer seeds the id's var until its own watch answers: a
  shifted dtab routes to a new id without waiting for a second round trip.
* Through a namerd outage every var keeps its last good value and the watches reconnect
  with backoff (``namerd_client.WatchVar``): routing continues on the last known
  bindings.
* ``explain`` (the "no hosts" error body) shows the current bound tree; ``explain_settled``
  (the admin delegator) asks namerd's ``/api/1/delegate`` and its dtab
  (``/api/1/dtabs/<ns>``), falling back to the last ones known while namerd is away.
"""

from __future__ import annotations

import random
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.interpreters import namerd_json
from l5d_twisted.interpreters.namerd_client import (
    NamerdHttp,
    NamerdLocation,
    WatchStats,
    WatchVar,
)
from l5d_twisted.k8s.backoff import JitteredBackoff
from l5d_twisted.naming.activity import flat_map
from l5d_twisted.naming.addr import ADDR_PENDING, Addr, AddrPending, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.explanation import Explanation, Node
from l5d_twisted.naming.namer import Transformer
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Failed, Ok, Pending, State, Var

log = Logger()

KIND = "io.l5d.namerd.http"


class NamerdHttpInterpreter:
    """Binds names with namerd (see the module doc).

    ``locator`` is the default interpreter over this mesh's namers, used only to bind
    ``dst`` (where namerd is); ``stats`` is the router's scope.
    """

    def __init__(
        self,
        *,
        dst: Path,
        namespace: str,
        locator: Any,
        reactor: Any,
        stats: Any,
        transformers: Sequence[Transformer] = (),
        base_s: float = 5.0,
        max_s: float = 600.0,
        rng: random.Random | None = None,
        cache_size: int = 1024,
        request_timeout_s: float = 10.0,
        tls: Any = None,
    ) -> None:
        self.dst = dst
        self.namespace = namespace
        self.transformers = tuple(transformers)
        self._reactor = reactor
        self._rng = rng or random.Random()
        self._base_s = base_s
        self._max_s = max_s
        self.location = NamerdLocation(locator, dst, self._rng)
        self.http = NamerdHttp(
            reactor, self.location, namespace, request_timeout_s=request_timeout_s, tls=tls
        )
        self.stats = WatchStats(stats.scope("interpreter", KIND))
        self._binds: weakref.WeakValueDictionary[tuple[Dtab, Path], Var[State]] = (
            weakref.WeakValueDictionary()
        )
        self._raw_binds: weakref.WeakValueDictionary[tuple[Dtab, Path], WatchVar[State]] = (
            weakref.WeakValueDictionary()
        )
        self._recent: OrderedDict[tuple[Dtab, Path], Var[State]] = OrderedDict()
        self._cache_size = cache_size
        self._addrs: weakref.WeakValueDictionary[Path, WatchVar[Addr]] = (
            weakref.WeakValueDictionary()
        )
        self.namerd_dtab: Dtab | None = None  # the namespace's dtab, as last fetched
        self.last_error: str = ""

    @property
    def reactor(self) -> Any:
        return self._reactor

    def _backoff(self) -> JitteredBackoff:
        return JitteredBackoff(self._rng, self._base_s, self._max_s)

    # --- binding ---------------------------------------------------------------------
    def bind(self, dtab: Dtab, path: Path, *, remember: bool = True) -> Var[State]:
        """The live bound tree of ``path`` as namerd binds it with ``dtab`` appended to
        the namespace's dtab (transformers applied)."""
        key = (dtab, path)
        var = self._binds.get(key)
        if var is None:
            var = self._transform(self._watch_bind(dtab, path))
            self._binds[key] = var
        if remember:
            self._recent[key] = var
            self._recent.move_to_end(key)
            if len(self._recent) > self._cache_size:
                self._recent.popitem(last=False)
        return var

    def _watch_bind(self, dtab: Dtab, path: Path) -> WatchVar[State]:
        key = (dtab, path)
        raw = self._raw_binds.get(key)
        if raw is None:
            raw = WatchVar(
                self.http,
                "bind",
                {"path": path.show(), "dtab": dtab.show()},
                lambda doc: namerd_json.parse_bound_tree(doc, self._bound),
                PENDING,
                self._backoff(),
                self.stats,
                f"bind {path.show()}",
                on_refused=lambda message: Failed(namerd_json.NamerdRefusedBinding(message)),
            )
            self._raw_binds[key] = raw
        return raw

    def _transform(self, act: Var[State]) -> Var[State]:
        for transformer in self.transformers:
            act = flat_map(act, transformer.transform)
        return act

    def _bound(self, bid: Path, residual: Path, addr_doc: Any) -> BoundName:
        addr = self.addr(bid)
        if addr_doc is not None and isinstance(addr.sample(), AddrPending):
            try:
                seeded = namerd_json.parse_addr(addr_doc)
            except namerd_json.FormatError:
                seeded = None
            if seeded is not None:
                addr.seed(seeded)
        return BoundName(bid, addr, residual)

    def addr(self, bid: Path) -> WatchVar[Addr]:
        """The live address set of a bound id, watched at namerd (shared per id)."""
        var = self._addrs.get(bid)
        if var is None:
            var = WatchVar(
                self.http,
                "addr",
                {"path": bid.show()},
                namerd_json.parse_addr,
                ADDR_PENDING,
                self._backoff(),
                self.stats,
                f"addr {bid.show()}",
            )
            self._addrs[bid] = var
        return var

    def close(self) -> None:
        self.location.close()

    # --- explaining ------------------------------------------------------------------
    def explain(self, dtab: Dtab, path: Path, max_steps: int | None = None) -> Explanation:
        """A snapshot of the current binding, as namerd answered it (no steps: namerd
        knows them, see :meth:`explain_settled`)."""
        state = self.bind(dtab, path, remember=False).sample()
        return self._explanation(dtab, path, state, None)

    def explain_settled(
        self, dtab: Dtab, path: Path, timeout_s: float = 5.0
    ) -> Deferred[Explanation]:
        """namerd's delegation of ``path`` (its steps and rules), the namespace's dtab and
        this router's live binding; what is known when namerd does not answer in time."""
        delegate = self.http.get("delegate", {"path": path.show(), "dtab": dtab.show()}, timeout_s)
        dtabs = self.http.get("dtabs", {}, timeout_s)
        settled = _settled_state(self.bind(dtab, path, remember=False), self._reactor, timeout_s)
        both: Deferred[list[tuple[bool, Any]]] = DeferredList(
            [delegate, dtabs, settled], consumeErrors=True
        )

        def combine(results: list[tuple[bool, Any]]) -> Explanation:
            (d_ok, d_value), (t_ok, t_value), (s_ok, s_value) = results
            if t_ok:
                try:
                    self.namerd_dtab = namerd_json.parse_dtab(namerd_json.decode(t_value))
                except namerd_json.FormatError as e:
                    log.warn("namerd's dtab could not be read: {e}", e=e)
            state = s_value if s_ok else self.bind(dtab, path, remember=False).sample()
            root: Node | None = None
            if d_ok:
                self.last_error = ""
                try:
                    root = namerd_json.parse_delegate(namerd_json.decode(d_value))
                except namerd_json.FormatError as e:
                    root = Node("exception", path, message=f"namerd's delegation: {e}")
            else:
                error = d_value.value if isinstance(d_value, Failure) else d_value
                self.last_error = str(error)[:300]
                root = None
            return self._explanation(
                dtab, path, state, root, unreachable=None if d_ok else self.last_error
            )

        return both.addCallback(combine)

    def _explanation(
        self,
        dtab: Dtab,
        path: Path,
        state: State,
        root: Node | None,
        unreachable: str | None = None,
    ) -> Explanation:
        effective = (self.namerd_dtab or Dtab.empty()) + dtab
        if root is None:
            tree = state.value if isinstance(state, Ok) else None
            child = (
                _tree_node(tree)
                if tree is not None
                else Node(
                    "pending" if isinstance(state, Pending) else "exception",
                    message=str(state.error) if isinstance(state, Failed) else "",
                )
            )
            note = f"bound by namerd ({self.namespace} at {self.dst.show()})"
            if unreachable:
                note += f"; namerd unreachable, last known binding: {unreachable}"
            root = Node("delegate", path, None, (child,), message=note)
        result: NameTree[BoundName] | None = None
        snapshot: dict[BoundName, Addr] = {}
        if isinstance(state, Ok):
            try:
                result = evaluate(state.value)
            except Exception as e:
                state = Failed(e)
        return Explanation(
            effective,
            path,
            root,
            state,
            result,
            snapshot,
            tuple(type(t).__name__ for t in self.transformers),
        )

    def delegator_info(self) -> dict[str, Any]:
        """What the admin delegator shows about namerd."""
        return {
            "kind": KIND,
            "dst": self.dst.show(),
            "namespace": self.namespace,
            "dtab": self.namerd_dtab.show() if self.namerd_dtab is not None else None,
            "openStreams": self.stats.open,
            "lastError": self.last_error or None,
        }


def _settled_state(var: Var[State], clock: Any, timeout_s: float) -> Deferred[State]:
    """The state of ``var`` once it and its leaves' addresses are not pending (or after
    ``timeout_s``), observed meanwhile so that the watches run."""
    done: Deferred[State] = Deferred()
    handles: list[Any] = []
    leaves: dict[BoundName, Any] = {}

    def finish() -> None:
        if done.called:
            return
        if timer.active():
            timer.cancel()
        state = var.sample()
        for c in [*handles, *leaves.values()]:
            if c is not None:
                c.close()
        done.callback(state)

    def check(_: Any = None) -> None:
        if not handles:
            return
        state = var.sample()
        if isinstance(state, Pending):
            return
        if isinstance(state, Ok):
            found: list[BoundName] = []
            _leaves(state.value, found)
            for bound in found:
                if bound not in leaves:
                    leaves[bound] = None  # observe() calls check() again at once
                    leaves[bound] = bound.addr.observe(check)
            if any(isinstance(b.addr.sample(), AddrPending) for b in found):
                return
        clock.callLater(0, finish)

    timer = clock.callLater(timeout_s, finish)
    handles.append(var.observe(check))
    check()
    return done


def _leaves(tree: NameTree[BoundName], out: list[BoundName]) -> None:
    if isinstance(tree, Leaf):
        out.append(tree.value)
    elif isinstance(tree, Union):
        for b in tree.branches:
            _leaves(b.tree, out)
    elif isinstance(tree, Alt):
        for t in tree.trees:
            _leaves(t, out)


def _tree_node(tree: NameTree[BoundName], level: int = 0) -> Node:
    if isinstance(tree, Leaf):
        bound = tree.value
        return Node("leaf", bound.id, bound=bound, addr=bound.addr.sample())
    if isinstance(tree, Union):
        return Node(
            "union",
            children=tuple(_tree_node(b.tree, level + 1) for b in tree.branches),
            weights=tuple(b.weight for b in tree.branches),
        )
    if isinstance(tree, Alt):
        children = tuple(_tree_node(t, level + 1) for t in tree.trees)
        chosen = next((i for i, c in enumerate(children) if c.outcome != "neg"), None)
        return Node("alt", children=children, chosen=chosen)
    if tree is FAIL:
        return Node("fail")
    if tree is EMPTY:
        return Node("empty")
    if tree is NEG:
        return Node("neg")
    return Node("exception", message=f"not a bound tree: {tree!r}"[:200])
