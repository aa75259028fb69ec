"""The seam between an endpoint and its connections: sessions from a pool (Finagle's ServiceFactory).

An endpoint does not own a connection; it asks a :class:`SessionPool` for a
:class:`Session` able to carry one more exchange, sends on it, and gives that capacity back
when the exchange is over:

* HTTP/1 (``http.pool.ConnectionPool`` with ``http.client.HttpClientProtocol`` sessions): a
  connection carries one exchange at a time, so a session is lent to one caller and comes
  back (``release``) when its exchange ends; it is ``reusable`` while keep-alive holds.
* A multiplexed protocol (HTTP/2): a session carries many streams at once, so its pool may
  hand the same session to several callers (``take_idle`` keeps it available while it has
  stream capacity) and ``release`` returns one stream's worth; ``reusable`` turns false
  when the session can take no new stream (GOAWAY, stream ids exhausted).

The hot path is ``take_idle()`` (a free session now, or None) then ``session.send``;
``acquire()`` (connect, or wait in line) only when there is none.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred

S = TypeVar("S", bound="Session")


class Session(Protocol):
    """One connection's capacity to carry exchanges (see the module docstring)."""

    reusable: bool
    """May carry another exchange once given back (else the pool closes and forgets it)."""
    idle_since: float
    """When it last became idle (the pool closes sessions idle too long)."""

    def send(self, request: Any, may_resend: bool = True) -> Deferred[Any]:
        """Send one request on this session; fires with the response."""
        ...

    def close_idle(self) -> None:
        """Close the connection (nothing in flight, or nothing worth finishing)."""
        ...


class SessionPool(Protocol[S]):
    """Sessions to one address (``http.pool.ConnectionPool`` is the HTTP/1 one)."""

    @property
    def exhausted(self) -> bool:
        """No session free and no room for another: requests would wait."""
        ...

    def take_idle(self) -> S | None:
        """A session able to carry one more exchange right now, or None."""
        ...

    def acquire(self) -> Deferred[S]:
        """A session, connecting or waiting in line for one if needed."""
        ...

    def release(self, session: S) -> None:
        """One exchange on ``session`` finished."""
        ...

    def lost(self, session: S) -> None:
        """``session``'s connection closed."""
        ...

    def close(self) -> Deferred[None]:
        """Refuse new exchanges; fires once every session closed."""
        ...
