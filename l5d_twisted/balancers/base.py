"""The contract load balancers meet.

A balancer is a service over a live set of endpoint services, one per address.

* ``update(endpoints)``: the new set, a mapping ``Address -> endpoint service``.  An
  address that stays keeps its balancer state (load, latency estimate); a removed one takes
  no new requests and is closed once its pending requests finish (it drains).
* ``update_delta(endpoints, added, removed)``: the same change told as a difference:
  ``endpoints`` is the whole new set, ``added`` its new addresses (with their services) and
  ``removed`` the addresses gone.  A balancer may apply it in O(changed) (the node
  balancers do); the default hands ``endpoints`` to ``update``.  An added address whose
  service is a removed address's (only the weight or metadata changed) keeps its state.
* ``__call__(request)``: pick an endpoint (skipping those whose ``status`` is not OPEN,
  unless none is, then fail open over all of them), call it, and track load/latency.
  With no endpoints at all, fail with ``errors.NoHostsAvailable``.
* ``size``, ``available`` and ``load`` feed the ``loadbalancer/*`` gauges.

Registered factory: ``factory(config, ctx: BalancerContext) -> Balancer``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from l5d_twisted.naming.addr import Address
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import NULL_STATS, StatsReceiver


@dataclass
class BalancerContext:
    clock: Any  # IReactorTime: seconds()
    stats: StatsReceiver = NULL_STATS
    rng: random.Random = field(default_factory=random.Random)


class Balancer(Service[Any, Any]):
    def update(self, endpoints: Mapping[Address, Service[Any, Any]]) -> None:
        raise NotImplementedError

    def update_delta(
        self,
        endpoints: Mapping[Address, Service[Any, Any]],
        added: Mapping[Address, Service[Any, Any]],
        removed: Collection[Address],
    ) -> None:
        self.update(endpoints)

    @property
    def size(self) -> int:
        raise NotImplementedError

    @property
    def available(self) -> int:
        raise NotImplementedError

    @property
    def load(self) -> float:
        raise NotImplementedError
