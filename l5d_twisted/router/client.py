"""The client for one bound name: a balancer over live endpoints.

A ``BoundClient`` observes its ``BoundName``'s address set.  Each address gets an endpoint
stack (``RouterStacks.endpoint``: failure accrual -> fail fast -> attempt timeout -> the
protocol's endpoint); the balancer gets the new set on every change (addresses that stay
keep their state, also when only their weight or metadata changed; removed ones drain).
A change told as a difference (``AddrBound.delta``, which io.l5d.k8s gives) is applied as
such: one endpoint changing among 1,000 makes one endpoint and closes one, in O(1).
A lost or failed discovery keeps the last known addresses: routing to the last known pods
beats refusing all traffic (linkerd 1's stale-or-nothing problem, the other way round).
A pending address set holds requests up to the binding timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from l5d_twisted.balancers.base import Balancer
from l5d_twisted.errors import NoHostsAvailable
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import (
    Addr,
    AddrBound,
    AddrDelta,
    Address,
    AddrFailed,
    AddrNeg,
    AddrPending,
    BoundName,
)
from l5d_twisted.naming.var import Closable
from l5d_twisted.service import Service, Status

from .headers import DST_CLIENT
from .waiting import BindingWaiters

log = Logger()

CHANGE_LOG_WINDOW_S = 1.0
"""A client logs an endpoint change told as a difference at once, then sums those of the
next second into one line (see :meth:`BoundClient._log_delta`)."""


class _ChangeLog:
    """The changes a client counted since its last "bound to" line."""

    __slots__ = ("changes", "added", "removed", "call")

    def __init__(self) -> None:
        self.changes = 0
        self.added = 0
        self.removed = 0
        self.call: Any = None


class BoundClient(Service[Request, Response]):
    """Service for one bound name (one ``rt/<router>/client/<id>`` in the metrics)."""

    __slots__ = (
        "bound",
        "id_text",
        "_id_header",
        "_make_endpoint",
        "balancer",
        "_reactor",
        "_endpoints",
        "addr",
        "_waiters",
        "_binding_timeout_s",
        "last_used",
        "_applied",
        "_observation",
        "_change_log",
        "__weakref__",
    )

    def __init__(
        self,
        bound: BoundName,
        *,
        make_endpoint: Callable[[Address], Service[Request, Response]],
        balancer: Balancer,
        reactor: Any,
        binding_timeout_s: float,
    ) -> None:
        self.bound = bound
        self.id_text = bound.id.show()
        self._id_header = self.id_text.encode("latin-1", "replace")
        self._make_endpoint = make_endpoint
        self.balancer = balancer
        self._reactor = reactor
        self._endpoints: dict[Address, Service[Request, Response]] = {}
        self.addr: Addr = AddrPending()
        # made when a request first waits (most clients have addresses at once: ~120
        # bytes a client)
        self._waiters: BindingWaiters | None = None
        self._binding_timeout_s = binding_timeout_s
        self.last_used = reactor.seconds()
        self._applied: object = None  # the token of the address set the balancer has
        self._change_log: _ChangeLog | None = None  # changes counted, not logged yet
        self._observation: Closable | None = bound.addr.observe(self._on_addr)

    # -- discovery -----------------------------------------------------------------
    def _on_addr(self, addr: Addr) -> None:
        if isinstance(addr, AddrBound):
            delta = addr.delta
            if delta is not None and delta.base is self._applied:
                self._apply_delta(delta)
            else:
                self._set_addresses(addr.addresses)
            self._applied = addr.token
        elif isinstance(addr, AddrNeg):
            self._set_addresses(frozenset())
            self._applied = None
        elif isinstance(addr, AddrFailed):
            log.warn(
                "discovery failed for {client}: {reason}; keeping {n} last known addresses",
                client=self.id_text,
                reason=addr.reason,
                n=len(self._endpoints),
            )
            if isinstance(self.addr, AddrBound):
                return  # keep the last known addresses and state
        elif isinstance(addr, AddrPending) and isinstance(self.addr, AddrBound):
            return  # a re-list in progress: keep serving the last known set
        self.addr = addr
        if not isinstance(addr, AddrPending) and self._waiters is not None:
            self._waiters.release_all()

    def _set_addresses(self, addresses: frozenset[Address]) -> None:
        current = self._endpoints
        by_host_port: dict[tuple[str, int], Service[Request, Response]] | None = None
        updated: dict[Address, Service[Request, Response]] = {}
        for address in addresses:
            endpoint = current.get(address)
            if endpoint is None:
                # Only the weight or metadata changed: the same endpoint (its connections,
                # failure accrual and latency estimate) serves on.
                if by_host_port is None:
                    by_host_port = {(a.host, a.port): e for a, e in current.items()}
                endpoint = by_host_port.pop((address.host, address.port), None)
                if endpoint is None:
                    endpoint = self._make_endpoint(address)
            updated[address] = endpoint
        self._endpoints = updated
        self.balancer.update(updated)
        if len(addresses) != len(current) or any(a not in current for a in addresses):
            log.info(
                "client {client} bound to {n} addresses", client=self.id_text, n=len(addresses)
            )

    def _apply_delta(self, delta: AddrDelta) -> None:
        """The change alone (O(changed), see AddrDelta): unchanged endpoints are not looked at."""
        endpoints = self._endpoints
        leaving: dict[tuple[str, int], Service[Request, Response]] = {}
        removed = []
        for address in delta.removed:
            endpoint = endpoints.pop(address, None)
            if endpoint is not None:
                leaving[address.host, address.port] = endpoint
                removed.append(address)
        added: dict[Address, Service[Request, Response]] = {}
        for address in delta.added:
            if address in endpoints:
                continue
            # Only the weight or metadata changed: the same endpoint serves on.
            endpoint = leaving.pop((address.host, address.port), None)
            if endpoint is None:
                endpoint = self._make_endpoint(address)
            endpoints[address] = endpoint
            added[address] = endpoint
        if added or removed:
            self.balancer.update_delta(endpoints, added, removed)
            self._log_delta(len(added), len(removed))

    def _log_delta(self, added: int, removed: int) -> None:
        """One info line for the first change, then at most one a second summing the rest.

        Twisted's logger builds the event and runs the level filter on every call, also
        when info is filtered out: at 10 changes a second to a service of 1,000 endpoints
        a line per change was ~7 % of applying it (bench/README.md, "One object of 1,000
        endpoints").  The sums keep what the lines told: the address count, and how many
        were added and removed over how many changes.
        """
        pending = self._change_log
        if pending is not None:  # within a second of a logged line: counted only
            pending.changes += 1
            pending.added += added
            pending.removed += removed
            return
        log.info(
            "client {client} bound to {n} addresses (+{added} -{removed})",
            client=self.id_text,
            n=len(self._endpoints),
            added=added,
            removed=removed,
        )
        pending = self._change_log = _ChangeLog()
        pending.call = self._reactor.callLater(CHANGE_LOG_WINDOW_S, self._log_changes)

    def _log_changes(self) -> None:
        """The window after a logged line ended: the changes counted in it, if any, in one
        line, and another window; none: the next change is logged at once."""
        pending = self._change_log
        if pending is None:
            return
        if not pending.changes:
            self._change_log = None
            return
        self._log_counted(pending)
        pending.changes = pending.added = pending.removed = 0
        pending.call = self._reactor.callLater(CHANGE_LOG_WINDOW_S, self._log_changes)

    def _log_counted(self, pending: _ChangeLog) -> None:
        log.info(
            "client {client} bound to {n} addresses (+{added} -{removed} over {changes}"
            " more changes)",
            client=self.id_text,
            n=len(self._endpoints),
            added=pending.added,
            removed=pending.removed,
            changes=pending.changes,
        )

    def addresses(self) -> list[str]:
        return sorted(a.show() for a in self._endpoints)

    def state(self) -> dict[str, Any]:
        kind = {
            AddrBound: "bound",
            AddrNeg: "neg",
            AddrPending: "pending",
            AddrFailed: "failed",
        }.get(type(self.addr), "unknown")
        state: dict[str, Any] = {"state": kind, "addresses": self.addresses()}
        if isinstance(self.addr, AddrFailed):
            state["reason"] = self.addr.reason
        return state

    # -- requests ------------------------------------------------------------------
    def __call__(self, request: Request) -> Deferred[Response]:
        self.last_used = self._reactor.seconds()
        request.headers.set(DST_CLIENT, self._id_header)
        if isinstance(self.addr, AddrPending):
            waiters = self._waiters
            if waiters is None:
                # (the id's text, not ``self``: no reference cycle)
                waiters = self._waiters = BindingWaiters(
                    self._reactor,
                    self._binding_timeout_s,
                    ("waiting for the addresses of", self.id_text),
                )
            return waiters.wait_then(lambda: self(request))
        if not self._endpoints:
            return fail(
                NoHostsAvailable(
                    f"No hosts are available for {self.id_text}: {self._why_empty()}",
                    client=self.id_text,
                )
            )
        d: Deferred[Response] = self.balancer(request)
        return d

    def _why_empty(self) -> str:
        addr = self.addr
        if isinstance(addr, AddrFailed):  # say so: an operator looks at discovery, not the dtab
            return f"discovery failed ({addr.reason})"
        return "its address set is empty"

    @property
    def pending(self) -> float:
        """Requests in flight (the balancer counts them; no extra callback per request)."""
        return float(self.balancer.load)

    @property
    def status(self) -> Status:
        return Status.OPEN

    def close(self) -> Deferred[None]:
        if self._observation is not None:
            self._observation.close()
            self._observation = None
        pending = self._change_log
        if pending is not None:  # (its timer would hold this client for up to a second)
            self._change_log = None
            if pending.call is not None and pending.call.active():
                pending.call.cancel()
            if pending.changes:
                self._log_counted(pending)
        self.balancer.update({})
        return self.balancer.close()
