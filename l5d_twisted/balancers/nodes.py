"""What every balancer shares: the live node set, draining, fail-open and the stats.

:class:`NodeBalancer` keeps one :class:`Node` per address.  ``update()`` keeps the node
(and so its load and latency estimate) of every address that stays, also when only its
weight or metadata changed (the caller hands the same endpoint service), adds new ones, and
*retires* the rest: a retired node takes no new request and its service is closed once its
last pending request finishes.  ``update_delta()`` does the same from a difference, in
O(changed nodes): a discovery change of one endpoint among 1,000 touches one node.

A subclass implements ``_choose(nodes, open_only)``, and keeps any index of its own over the
nodes in ``_nodes_changed`` (the whole list replaced) and ``_add_nodes`` / ``_drop_nodes``
(incremental); ``_choose``: pick a node, among those whose
service status is OPEN when ``open_only`` (return ``None`` if there is none).  When no node
is OPEN (all marked dead by failure accrual, say) the balancer *fails open*: it picks among
all of them rather than refusing, since a possibly-dead endpoint beats a certain error;
``loadbalancer/fail_open`` counts how often.

Stats, in the scope given (``rt/<router>/client/<id>``): ``loadbalancer/size``,
``available`` and ``load`` gauges; ``adds``, ``removes`` and ``fail_open`` counters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.errors import NoHostsAvailable
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import Service, Status

log = Logger()

_OPEN = Status.OPEN


class Node:
    """One endpoint as a balancer sees it: its service and how loaded it is."""

    __slots__ = ("address", "service", "weight", "pending", "retired", "slot", "__weakref__")

    def __init__(self, address: Address, service: Service[Any, Any]) -> None:
        self.address = address
        self.service = service
        self.weight = address.weight
        self.pending = 0  # requests this balancer sent that have not completed
        self.retired = False
        self.slot = -1  # index in the balancer's node list (O(1) removal)

    @property
    def is_open(self) -> bool:
        return self.service.status is _OPEN

    def weighted_load(self) -> float:
        """Load for least-loaded choices: (pending + 1) / weight, so that idle nodes
        still prefer the heavier one; a weight of 0 takes traffic only when nothing else can."""
        if self.weight <= 0:
            return float("inf")
        return (self.pending + 1) / self.weight

    def __repr__(self) -> str:
        return f"Node({self.address.show()}, pending={self.pending})"


_NOT_DRAINING: frozenset[Node] = frozenset()


class NodeBalancer(Balancer):
    """Base class of the registered balancers; see the module doc."""

    node_type: type[Node] = Node

    # slotted (every routed name has a balancer; issue 17); the base class keeps a
    # ``__dict__`` for subclasses and tests that add attributes
    __slots__ = (
        "_clock",
        "_rng",
        "_nodes",
        "_by_address",
        "_draining",
        "_load",
        "_closed",
        "_gauges",
        "_adds",
        "_removes",
        "_fail_open",
    )

    def __init__(self, ctx: BalancerContext) -> None:
        self._clock = ctx.clock
        self._rng = ctx.rng
        self._nodes: list[Node] = []
        self._by_address: dict[Address, Node] = {}
        # nodes retired with requests pending; a set only while there are any (an empty
        # set is 216 bytes, and every routed name has a balancer; issue 17)
        self._draining: set[Node] | frozenset[Node] = _NOT_DRAINING
        self._load = 0
        self._closed = False
        stats = ctx.stats.scope("loadbalancer")
        # (bound methods, not lambdas: no function, cell and closure per gauge)
        self._gauges: tuple[Any, ...] = (
            stats.gauge("size", fn=self._size_gauge),
            stats.gauge("available", fn=self._available_gauge),
            stats.gauge("load", fn=self._load_gauge),
        )
        self._adds = stats.counter("adds")
        self._removes = stats.counter("removes")
        self._fail_open = stats.counter("fail_open")

    # -- the live set ---------------------------------------------------------------------

    def update(self, endpoints: Mapping[Address, Service[Any, Any]]) -> None:
        if self._closed:
            # A late address-set update racing with shutdown: the balancer owns the services
            # it is handed, so close them rather than leak them (and never raise into the
            # namer's observer).
            for service in endpoints.values():
                try:
                    service.close()
                except Exception:
                    log.failure("closing endpoint failed")
            return
        old = self._by_address
        by_service: dict[int, Node] | None = None  # built only when an address is new
        by_address: dict[Address, Node] = {}
        for address, service in endpoints.items():
            node = old.get(address)
            if node is None or node.service is not service:
                if by_service is None:
                    by_service = {id(n.service): n for n in old.values()}
                node = by_service.pop(id(service), None)
                if node is not None and node.service is service:
                    # the same endpoint under a new weight or metadata: keep its state
                    node.address = address
                    node.weight = address.weight
                else:
                    node = self.node_type(address, service)
                    self._adds.incr()
            by_address[address] = node
        kept = set(by_address.values())
        for node in old.values():
            if node not in kept:
                self._retire(node)
        self._by_address = by_address
        self._nodes = nodes = list(by_address.values())
        self._nodes_changed(nodes)
        for i, node in enumerate(nodes):
            node.slot = i

    def _nodes_changed(self, nodes: list[Node]) -> None:
        """Hook: the node list was replaced (rebuild any index over it)."""

    def update_delta(
        self,
        endpoints: Mapping[Address, Service[Any, Any]],
        added: Mapping[Address, Service[Any, Any]],
        removed: Collection[Address],
    ) -> None:
        """``update`` in O(changed): only the added and removed addresses are looked at."""
        if self._closed:
            self.update(added)  # closes what it was handed (see update)
            return
        by_address = self._by_address
        gone: list[Node] = []
        for address in removed:
            node = by_address.pop(address, None)
            if node is not None:
                gone.append(node)
        moved = {id(n.service): n for n in gone} if gone and added else None
        fresh: list[Node] = []
        reweighted: list[Node] = []
        for address, service in added.items():
            node = by_address.get(address)
            if node is not None:
                if node.service is service:
                    continue
                del by_address[address]  # another service for a known address: the old goes
                gone.append(node)
            node = moved.pop(id(service), None) if moved else None
            if node is not None and node.service is service:
                # the same endpoint under a new weight or metadata: keep its state
                gone.remove(node)
                node.address = address
                node.weight = address.weight
                reweighted.append(node)
            else:
                node = self.node_type(address, service)
                self._adds.incr()
                fresh.append(node)
            by_address[address] = node
        if gone:
            self._drop_nodes(gone)
            for node in gone:
                self._retire(node)
        if fresh:
            self._add_nodes(fresh)
        if reweighted:
            self._reweighted(reweighted)

    def _drop_nodes(self, gone: list[Node]) -> None:
        """Take ``gone`` out of the node list (the last node moves into each hole)."""
        nodes = self._nodes
        for node in gone:
            i = node.slot
            last = nodes.pop()
            if last is not node:
                nodes[i] = last
                last.slot = i
            node.slot = -1

    def _add_nodes(self, fresh: list[Node]) -> None:
        """Put new nodes into the node list."""
        nodes = self._nodes
        for node in fresh:
            node.slot = len(nodes)
            nodes.append(node)

    def _reweighted(self, nodes: list[Node]) -> None:
        """Hook: these nodes' weights may have changed."""

    def _retire(self, node: Node) -> None:
        node.retired = True
        self._removes.incr()
        if node.pending == 0:
            self._close_node(node)
        else:
            draining = self._draining
            if not isinstance(draining, set):
                draining = self._draining = set()
            draining.add(node)

    def _close_node(self, node: Node) -> None:
        draining = self._draining
        if node in draining:
            assert isinstance(draining, set)
            draining.discard(node)
        try:
            d = node.service.close()
        except Exception:
            log.failure("closing endpoint {address} failed", address=node.address.show())
            return
        d.addErrback(
            lambda f: log.failure(
                "closing endpoint {address} failed", f, address=node.address.show()
            )
        )

    # -- gauges ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._nodes)

    @property
    def available(self) -> int:
        return sum(1 for n in self._nodes if n.is_open)

    @property
    def load(self) -> float:
        return float(sum(n.pending for n in self._nodes))

    def _size_gauge(self) -> float:
        return float(self.size)

    def _available_gauge(self) -> float:
        return float(self.available)

    def _load_gauge(self) -> float:
        return float(self.load)

    @property
    def nodes(self) -> Sequence[Node]:
        return tuple(self._nodes)

    @property
    def draining(self) -> Sequence[Node]:
        """Nodes gone from discovery that still finish their pending requests (read-only)."""
        return tuple(self._draining)

    @property
    def status(self) -> Status:
        if self._closed:
            return Status.CLOSED
        return _OPEN if any(n.is_open for n in self._nodes) else Status.BUSY

    # -- dispatch -------------------------------------------------------------------------

    def _pick(self) -> Node:
        nodes = self._nodes
        if not nodes:
            raise NoHostsAvailable(
                "No hosts are available: the destination's address set is empty"
                if not self._closed
                else "No hosts are available: the client is closed"
            )
        node = self._choose(nodes, True)
        if node is None:
            self._fail_open.incr()
            node = self._choose(nodes, False)
            assert node is not None
        return node

    def _choose(self, nodes: list[Node], open_only: bool) -> Node | None:
        raise NotImplementedError

    def __call__(self, request: Any) -> Deferred[Any]:
        try:
            node = self._pick()
        except Exception as e:  # NoHostsAvailable; anything else is a bug, still never raised
            return fail(e)
        return self._dispatch(node, request)

    def _dispatch(self, node: Node, request: Any) -> Deferred[Any]:
        node.pending += 1
        self._acquired(node)
        try:
            d = node.service(request)
        except Exception as e:  # a broken endpoint must not break the balancer's accounting
            d = fail(e)
        d.addBoth(self._release, node)
        return d

    def _release(self, result: Any, node: Node) -> Any:
        node.pending -= 1
        self._released(node)
        if node.retired and node.pending == 0:
            self._close_node(node)
        return result

    def _acquired(self, node: Node) -> None:
        """Hook: ``node.pending`` just went up by one."""

    def _released(self, node: Node) -> None:
        """Hook: ``node.pending`` just went down by one."""

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        self._closed = True
        gauges, self._gauges = self._gauges, ()  # (their functions hold this balancer: a cycle)
        for gauge in gauges:
            gauge.remove()
        nodes = self._nodes + list(self._draining)
        self._nodes = []
        self._by_address = {}
        self._draining = _NOT_DRAINING
        closing = []
        for node in nodes:
            node.retired = True
            try:
                closing.append(node.service.close())
            except Exception as e:
                closing.append(fail(e))
        d: Deferred[Any] = DeferredList(closing, consumeErrors=True)
        return d.addCallback(lambda _: None)


def distinct_pair(rng: Any, n: int) -> tuple[int, int]:
    """Two different indexes in ``range(n)`` (n >= 2), uniformly."""
    # int(random() * n) rather than randrange: a third of the cost on the hot path
    r = rng.random
    i = int(r() * n)
    j = int(r() * (n - 1))
    if j >= i:
        j += 1
    return i, j
