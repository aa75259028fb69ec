"""``aperture``: send to a small window of nodes, sized by load (Finagle's aperture).

The nodes are laid out on a ring in random order (a staying node keeps its place; new ones
land at random places, also when discovery hands only the difference).  Requests go only to
the first ``aperture`` OPEN nodes of the ring, picking the less loaded of two at random
(p2c).  Fewer busy nodes mean fewer connections and warmer ones, which is what aperture
is for.

The window follows the load: the total number of pending requests is smoothed with an
exponential moving average over ``smoothWindowMs``; divided by the aperture this is the
load per node in the window.  Above ``highLoad`` the window widens by one node, below
``lowLoad`` it narrows by one, never below ``minAperture`` (nor above the node count).
Weights are not used.  The ``loadbalancer/aperture`` gauge shows the current window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.balancers.nodes import Node, NodeBalancer, distinct_pair
from l5d_twisted.config.schema import knob
from l5d_twisted.registry import BALANCERS


class ApertureBalancer(NodeBalancer):
    def __init__(
        self,
        ctx: BalancerContext,
        smooth_window_s: float = 5.0,
        low_load: float = 0.5,
        high_load: float = 2.0,
        min_aperture: int = 1,
    ) -> None:
        if smooth_window_s <= 0:
            raise ValueError(f"smoothWindowMs must be positive, got {smooth_window_s}")
        if not 0 <= low_load <= high_load:
            raise ValueError(f"need 0 <= lowLoad <= highLoad, got {low_load} and {high_load}")
        if min_aperture < 1:
            raise ValueError(f"minAperture must be >= 1, got {min_aperture}")
        super().__init__(ctx)
        self.smooth_window_s = smooth_window_s
        self.low_load = low_load
        self.high_load = high_load
        self.min_aperture = min_aperture
        self._aperture = min_aperture
        self._total = 0  # pending requests over all nodes
        self._avg = 0.0
        self._stamp: float | None = None
        self._ring: list[Node] = []
        self._aperture_gauge = ctx.stats.scope("loadbalancer").gauge(
            "aperture", fn=lambda: float(self.aperture)
        )
        self._gauges += (self._aperture_gauge,)

    @property
    def aperture(self) -> int:
        return max(1, min(self._aperture, len(self._nodes)))

    def _nodes_changed(self, nodes: list[Node]) -> None:
        # Keep staying nodes in their ring order; put new ones at random places.
        ring = [n for n in self._ring if not n.retired]
        known = set(ring)
        for node in nodes:
            if node not in known:
                ring.insert(self._rng.randrange(len(ring) + 1), node)
        nodes[:] = ring  # the base class hands _choose its node list: make it the ring
        self._ring = nodes

    def _drop_nodes(self, gone: list[Node]) -> None:
        # the ring keeps its order (the window is its head); it is the node list itself
        ring = self._ring
        if len(gone) <= 8:
            for node in gone:
                ring.remove(node)  # (by identity, in C)
        else:
            leaving = set(gone)
            ring[:] = [n for n in ring if n not in leaving]

    def _add_nodes(self, fresh: list[Node]) -> None:
        ring = self._ring
        for node in fresh:
            ring.insert(self._rng.randrange(len(ring) + 1), node)

    def _acquired(self, node: Node) -> None:
        self._total += 1
        self._adjust()

    def _released(self, node: Node) -> None:
        self._total -= 1
        self._adjust()

    def _adjust(self) -> None:
        now = self._clock.seconds()
        if self._stamp is None:
            self._avg = float(self._total)
        else:
            w = math.exp(-max(now - self._stamp, 0.0) / self.smooth_window_s)
            self._avg = self._avg * w + self._total * (1.0 - w)
        self._stamp = now
        per_node = self._avg / max(self._aperture, 1)
        if per_node > self.high_load and self._aperture < len(self._nodes):
            self._aperture += 1
        elif per_node < self.low_load and self._aperture > self.min_aperture:
            self._aperture -= 1

    def _choose(self, nodes: list[Node], open_only: bool) -> Node | None:
        want = self.aperture
        window: list[Node] = []
        for node in nodes:
            if not open_only or node.is_open:
                window.append(node)
                if len(window) == want:
                    break
        if not window:
            return None
        if len(window) == 1:
            return window[0]
        i, j = distinct_pair(self._rng, len(window))
        a, b = window[i], window[j]
        return a if a.pending <= b.pending else b


@dataclass(frozen=True)
class ApertureConfig:
    smooth_window_ms: int = knob(5000, minimum=1, doc="time over which the load is averaged")
    low_load: float = knob(0.5, minimum=0.0, doc="narrow the window below this load per node")
    high_load: float = knob(2.0, minimum=0.0, doc="widen the window above this load per node")
    min_aperture: int = knob(1, minimum=1, doc="the smallest window")

    def __post_init__(self) -> None:
        if self.low_load > self.high_load:
            raise ValueError(
                f"lowLoad ({self.low_load}) must not exceed highLoad ({self.high_load})"
            )


@BALANCERS.register("aperture", ApertureConfig)
def make_aperture(config: ApertureConfig | None, ctx: BalancerContext) -> Balancer:
    config = config or ApertureConfig()
    return ApertureBalancer(
        ctx,
        smooth_window_s=config.smooth_window_ms / 1000.0,
        low_load=config.low_load,
        high_load=config.high_load,
        min_aperture=config.min_aperture,
    )
