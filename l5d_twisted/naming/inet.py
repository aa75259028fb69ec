"""``/$/inet/<host>/<port>``: addresses from DNS, kept fresh while someone watches.

An IP literal binds at once.  A host name is resolved through the reactor's thread pool
(``getaddrinfo``, so ``/etc/hosts`` and the system resolver apply) when the address var is
first observed and again every ``refresh_s`` while it stays observed; nothing runs for
names nobody uses.  A name that does not resolve is negative (``AddrNeg``); a resolver
error keeps the last good answer if there was one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from l5d_twisted.naming.addr import (
    ADDR_NEG,
    ADDR_PENDING,
    Addr,
    AddrBound,
    AddrFailed,
    BoundName,
    make_address,
)
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Var

log = Logger()

Resolve = Callable[[str, int], "Deferred[list[str]]"]


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def thread_resolver(reactor: Any) -> Resolve:
    """Resolve with ``getaddrinfo`` in the reactor's thread pool.

    IPv4 addresses are preferred: ``localhost`` also resolves to ``::1``, where a backend
    listening on 127.0.0.1 refuses connections.  IPv6 is used when there is no IPv4.
    """

    def lookup(host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []  # unknown name: negative, not an error
        v4: list[str] = []
        v6: list[str] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            ip = str(sockaddr[0])
            found = v4 if family == socket.AF_INET else v6
            if ip not in found:
                found.append(ip)
        return v4 or v6

    def resolve(host: str, port: int) -> Deferred[list[str]]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), lookup, host, port)

    return resolve


class _DnsAddrVar(Var[Addr]):
    """The address set of one host:port, refreshed only while observed."""

    def __init__(
        self, host: str, port: int, clock: Any, resolve: Resolve, refresh_s: float
    ) -> None:
        super().__init__(ADDR_PENDING)
        self.host = host
        self.port = port
        self._clock = clock
        self._resolve = resolve
        self._refresh_s = refresh_s
        self._timer: Any = None
        self._inflight: Deferred[list[str]] | None = None

    def _on_first_observer(self) -> None:
        self._lookup()

    def _on_last_observer_gone(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.cancel()

    def _lookup(self) -> None:
        self._timer = None
        try:
            d = self._resolve(self.host, self.port)
        except Exception as e:
            self._failed(e)
            return
        self._inflight = d
        d.addCallbacks(self._resolved, self._failed_result)

    def _resolved(self, ips: list[str]) -> None:
        self._inflight = None
        if ips:
            self.update(AddrBound.of(make_address(ip, self.port) for ip in ips))
        else:
            self.update(ADDR_NEG)
        self._schedule()

    def _failed_result(self, failure: Any) -> None:
        from twisted.internet.defer import CancelledError

        self._inflight = None
        if failure.check(CancelledError):
            return None
        self._failed(failure.value)
        return None

    def _failed(self, error: BaseException) -> None:
        log.warn("DNS lookup of {host} failed: {error}", host=self.host, error=str(error))
        if not isinstance(self.sample(), AddrBound):
            self.update(AddrFailed(f"DNS lookup of {self.host} failed: {error}"))
        self._schedule()

    def _schedule(self) -> None:
        if self.observed and self._timer is None:
            self._timer = self._clock.callLater(self._refresh_s, self._lookup)


class InetNamer:
    """Bound names for ``host``/``port`` pairs, one shared address var per pair."""

    def __init__(self, clock: Any, resolve: Resolve, refresh_s: float = 5.0) -> None:
        self._clock = clock
        self._resolve = resolve
        self._refresh_s = refresh_s
        self._vars: dict[tuple[str, int], Var[Addr]] = {}

    def addr_var(self, host: str, port: int) -> Var[Addr]:
        key = (host, port)
        var = self._vars.get(key)
        if var is None:
            if is_ip_literal(host):
                var = Var(AddrBound.of([make_address(host, port)]))
            else:
                var = _DnsAddrVar(host, port, self._clock, self._resolve, self._refresh_s)
            if len(self._vars) > 10000:
                self._prune()
            self._vars[key] = var
        return var

    def _prune(self) -> None:
        for key, var in list(self._vars.items()):
            if not var.observed:
                del self._vars[key]

    def bind(self, id: Path, host: str, port: int, residual: Path) -> BoundName:
        return BoundName(id, self.addr_var(host, port), residual)


def parse_port(text: str) -> int:
    """A TCP port number from a path segment; ValueError with a clear message if not."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port {text!r}: expected a number between 1 and 65535")
    return int(text)
