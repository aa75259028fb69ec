"""Each client's endpoints as its balancer sees them, for the dashboard's per-endpoint table.

linkerd 1's admin listed, under each client, the endpoints it balanced over; here a row per
endpoint reads the figures failure accrual keeps per endpoint (see
:mod:`l5d_twisted.resilience.accrual`: requests, success, failures, latency of classified
outcomes, outside the metrics tree so that pod churn grows no scope) and says its state:

* ``ok``: the balancer may pick it;
* ``ejected``: failure accrual marked it dead (the balancer sends elsewhere, or to it
  anyway when every endpoint is ejected: it *fails open*, as Finagle's balancers do);
* ``probing``: ejected, its backoff over: the next request is the probe that revives it;
* ``draining``: gone from discovery, its requests in flight still finishing;
* ``unavailable``: closed or refusing for another reason (``failFast`` after a connect
  failure, a closed pool).

Readers take whatever the router exposes (``clients()``, each client's ``balancer`` with
``nodes`` and ``draining``) and read nothing else; a router or balancer without them (a
test fake, a protocol without balancers) simply has no endpoint rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from l5d_twisted.resilience.accrual import AccrualState, FailureAccrualService
from l5d_twisted.service import Status

MAX_WRAPPERS = 8  # modules a stack edit may put above failure accrual in the endpoint stack
_WRAPPED = ("endpoint", "service", "underlying", "next_", "inner")


@dataclass(frozen=True)
class EndpointReading:
    """One endpoint's cumulative figures, as read in one sample."""

    address: str  # "ip:port"
    state: str  # ok | ejected | probing | draining | unavailable
    requests: int = 0
    success: int = 0
    failures: int = 0
    latency_ms_sum: float = 0.0
    latency_count: int = 0
    pending: int = 0


def accrual_of(service: Any) -> FailureAccrualService | None:
    """The failure accrual module at (or near) the top of an endpoint stack, if any."""
    for _ in range(MAX_WRAPPERS):
        if isinstance(service, FailureAccrualService):
            return service
        service = next((getattr(service, a) for a in _WRAPPED if hasattr(service, a)), None)
        if service is None:
            return None
    return None


def _state(node: Any, accrual: FailureAccrualService | None, draining: bool) -> str:
    if draining or getattr(node, "retired", False):
        return "draining"
    if accrual is not None:
        if accrual.state is AccrualState.DEAD:
            return "ejected"
        if accrual.state in (AccrualState.PROBE_OPEN, AccrualState.PROBING):
            return "probing"
    try:
        status = node.service.status
    except Exception:
        return "unavailable"
    return "ok" if status is Status.OPEN else "unavailable"


def read_node(node: Any, draining: bool = False) -> EndpointReading:
    address = node.address.show()
    accrual = accrual_of(node.service)
    state = _state(node, accrual, draining)
    pending = int(getattr(node, "pending", 0))
    if accrual is None:
        return EndpointReading(address, state, pending=pending)
    return EndpointReading(
        address,
        state,
        accrual.requests,
        accrual.success,
        accrual.failures,
        accrual.latency_ms_sum,
        accrual.latency_count,
        pending,
    )


def read_client(client: Any, limit: int) -> tuple[list[EndpointReading], int]:
    """Up to ``limit`` endpoints of a client (live ones first), and how many there were."""
    balancer = getattr(client, "balancer", None)
    live = tuple(getattr(balancer, "nodes", ()))
    draining = tuple(getattr(balancer, "draining", ()))
    readings = [read_node(node) for node in live[:limit]]
    readings += [read_node(node, True) for node in draining[: max(0, limit - len(readings))]]
    return readings, len(live) + len(draining)


def router_clients(router: Any) -> Iterator[tuple[str, Any]]:
    """(client name as in its metrics scope, client) of a router that exposes them."""
    clients = getattr(router, "clients", None)
    if not callable(clients):
        return
    for client in clients():
        name = getattr(client, "id_text", None)
        if isinstance(name, str):
            yield name.lstrip("/"), client
