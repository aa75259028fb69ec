"""``ewma``: power of two choices over *peak EWMA* latency cost (Finagle's PeakEwma).

Each node keeps an exponentially weighted moving average of its response times that jumps
up at once to any slower response (the peak) and decays with time constant ``decayTimeMs``
(10 s) otherwise, also while the node is not used, so a node that was slow is eventually
tried again.  A node's cost is ``ewma * (pending + 1) / weight``; a node with no latency
history yet costs nothing while idle and a large penalty while its first request is
pending, so new endpoints are probed one request at a time.

Beyond Finagle: while a node has pending requests, the average time they have already
waited also bounds its latency from below (cost uses ``max(ewma, waited)``).  A backend
that suddenly turns slow is thus avoided within milliseconds, instead of collecting
requests until the first slow answer comes back and raises its average (measured in
``bench/resilience/slow_backend.py``: from ~140 requests stuck for 2 s to a handful).  Two nodes are drawn at random
and the cheaper taken, as in ``p2c`` (``maxEffort`` draws to find an OPEN one).

Latency is measured from dispatch to the response (or failure) arriving, in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.balancers.nodes import Node
from l5d_twisted.balancers.p2c import P2CBalancer
from l5d_twisted.config.schema import knob
from l5d_twisted.naming.addr import Address
from l5d_twisted.registry import BALANCERS
from l5d_twisted.service import Service

# Cost of a node whose first request is still pending: above any real latency cost.
_PENALTY = 1e12


class _EwmaNode(Node):
    __slots__ = ("ewma_ms", "stamp", "started_sum")

    def __init__(self, address: Address, service: Service[Any, Any]) -> None:
        super().__init__(address, service)
        self.ewma_ms = 0.0
        self.stamp: float | None = None  # when ewma_ms was last brought up to date
        self.started_sum = 0.0  # sum of the dispatch times of the pending requests


class EwmaBalancer(P2CBalancer):
    node_type = _EwmaNode

    def __init__(
        self, ctx: BalancerContext, max_effort: int = 5, decay_time_s: float = 10.0
    ) -> None:
        super().__init__(ctx, max_effort)
        if decay_time_s <= 0:
            raise ValueError(f"decayTimeMs must be positive, got {decay_time_s}")
        self.decay_time_s = decay_time_s

    def _observe(self, node: _EwmaNode, rtt_ms: float, now: float) -> None:
        stamp = node.stamp if node.stamp is not None else now
        w = math.exp(-max(now - stamp, 0.0) / self.decay_time_s)
        cost = node.ewma_ms
        node.ewma_ms = rtt_ms if rtt_ms > cost else cost * w + rtt_ms * (1.0 - w)
        node.stamp = now

    def _cost(self, node: Node) -> float:
        assert isinstance(node, _EwmaNode)
        self._observe(node, 0.0, self._clock.seconds())  # let the estimate decay
        if node.weight <= 0:
            return math.inf
        pending = node.pending
        if not pending:
            return node.ewma_ms / node.weight
        if node.ewma_ms == 0.0:
            return _PENALTY + pending
        # The requests still pending have waited this long on average: the node's latency
        # is at least that, even before any of them answers.
        waited_ms = (self._clock.seconds() - node.started_sum / pending) * 1000.0
        return max(node.ewma_ms, waited_ms) * (pending + 1) / node.weight

    def _dispatch(self, node: Node, request: Any) -> Deferred[Any]:
        assert isinstance(node, _EwmaNode)
        clock = self._clock
        started = clock.seconds()
        node.pending += 1
        node.started_sum += started
        try:
            d = node.service(request)
        except Exception as e:
            d = fail(e)

        def done(result: Any) -> Any:
            now = clock.seconds()
            # the last pending request resets the sum: adding and subtracting epoch-sized
            # floats leaves rounding residue that would otherwise accumulate for the
            # process's lifetime and skew the age of later pending requests
            node.started_sum = node.started_sum - started if node.pending > 1 else 0.0
            self._observe(node, max(now - started, 0.0) * 1000.0, now)
            return self._release(result, node)

        d.addBoth(done)
        return d

    def cost_of(self, address: Address) -> float:
        """The current cost of an address's node (for tests and debugging)."""
        for node in self._nodes:
            if node.address == address:
                return self._cost(node)
        raise KeyError(address)


@dataclass(frozen=True)
class EwmaConfig:
    max_effort: int = knob(
        5, minimum=1, doc="draws of two nodes to find an OPEN one before scanning"
    )
    decay_time_ms: int = knob(10000, minimum=1, doc="time constant of the latency average's decay")


@BALANCERS.register("ewma", EwmaConfig)
def make_ewma(config: EwmaConfig | None, ctx: BalancerContext) -> Balancer:
    config = config or EwmaConfig()
    return EwmaBalancer(
        ctx, max_effort=config.max_effort, decay_time_s=config.decay_time_ms / 1000.0
    )
