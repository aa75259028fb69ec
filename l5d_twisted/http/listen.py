"""Listening sockets with linkerd 1's server ``socketOptions`` and a clean hand-over.

Twisted's ``listenTCP`` always sets ``SO_REUSEADDR`` and cannot set ``SO_REUSEPORT``
(before Twisted 25's bindings), so :func:`listen_tcp` builds the port itself:
:class:`HandOverPort` is a ``tcp.Port`` that

* sets ``SO_REUSEADDR`` only when asked (``reuseAddr``, default on as in linkerd 1) and
  ``SO_REUSEPORT`` when asked (``reusePort``): several processes then listen on one port
  and the kernel spreads new connections across them, so a new process can take over
  before the old one stops;
* accepts what the kernel has already queued before it closes: closing a listening socket
  resets the connections in its accept queue (they are not moved to another socket of the
  ``SO_REUSEPORT`` group unless ``net.ipv4.tcp_migrate_req`` is on), and each of those is a
  client that saw its connection succeed and then fail.  Accepted here, they are served
  like any other connection of a draining server (answered with ``Connection: close``).

A reactor that is not a real one (the test reactors of ``twisted.internet.testing``) gets
a plain ``listenTCP``: socket options only matter on real sockets.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import base, tcp
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import Logger

log = Logger()

_FLUSH_ACCEPTS = 1000  # connections accepted, at most, while a port closes


class HandOverPort(tcp.Port):
    """A ``tcp.Port`` with chosen ``SO_REUSEADDR``/``SO_REUSEPORT`` that accepts its queue before closing."""

    def __init__(
        self,
        port: int,
        factory: Any,
        backlog: int,
        interface: str,
        reactor: Any,
        reuse_addr: bool,
        reuse_port: bool,
    ) -> None:
        super().__init__(port, factory, backlog, interface, reactor)
        self.reuse_addr = reuse_addr
        self.reuse_port = reuse_port
        self.accepted_on_close = 0

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted's name)
        s = base.BasePort.createInternetSocket(self)  # non-blocking
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if self.reuse_addr else 0)
        if self.reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return s

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 (Twisted's name)
        if self.connected and getattr(self, "socket", None) is not None:
            self._accept_queued()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def _accept_queued(self) -> None:
        """Accept (and hand to the factory) every connection already queued, up to a bound."""
        before = self.sessionno
        self.numberAccepts = _FLUSH_ACCEPTS
        self.doRead()  # type: ignore[no-untyped-call]  # accepts until the queue is empty (EAGAIN) or the bound
        self.accepted_on_close = self.sessionno - before
        if self.accepted_on_close:
            log.info(
                "accepted {n} queued connections on {port} before closing it",
                n=self.accepted_on_close,
                port=self._realPortNumber,
            )


def listen_tcp(
    reactor: Any,
    port: int,
    factory: Any,
    interface: str,
    backlog: int = 1024,
    reuse_addr: bool = True,
    reuse_port: bool = False,
) -> Any:
    """Listen on ``interface:port`` with ``factory`` (already wrapped for TLS, if any); return the port."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenTCP(port, factory, interface=interface, backlog=backlog)
    listening = HandOverPort(port, factory, backlog, interface, reactor, reuse_addr, reuse_port)
    listening.startListening()
    return listening
