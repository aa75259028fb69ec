"""The requests of one server connection, in order (HTTP/1.1 pipelining).

A client may send requests before the earlier ones are answered; they are answered one at
a time, in order.  :class:`ExchangeQueue` holds the request being read (``parsing``), the
one being answered (``active``) and those read but waiting (``waiting``); an
:class:`Exchange` is one request from its head to the end of its response.  The server
appends to ``waiting`` and moves its head to ``active`` itself (plain attribute work, on
the hot path); the queue answers what the rarer decisions need.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred

from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.stream import StreamBody

MAX_PIPELINED = 16
"""Requests read but not answered before the connection stops reading (resumes at half)."""


class Exchange:
    """One request on a connection, from its head to the end of its response."""

    __slots__ = (
        "request",
        "ready",
        "keep_alive",
        "chunked_ok",
        "body_done",
        "expect_continue",
        "continue_sent",
        "deferred",
        "rejection",
        "counted",
        "stream",
        "response_started",
    )

    def __init__(self, request: Request | None, keep_alive: bool, chunked_ok: bool) -> None:
        self.request = request
        self.ready = False  # it can be handed on (its head, and a buffered body, are read)
        self.keep_alive = keep_alive
        self.chunked_ok = chunked_ok  # an HTTP/1.1 client: chunked responses allowed
        self.body_done = False  # its request body is read whole
        self.expect_continue = False
        self.continue_sent = False
        self.deferred: Deferred[Response] | None = None
        self.rejection: Response | None = None  # answered with this, never handed on
        self.counted = False  # counted in the server's in-flight requests
        self.stream: StreamBody | None = None  # its request body, when streamed
        self.response_started = False

    @classmethod
    def rejected(cls, response: Response) -> Exchange:
        """An exchange answered with ``response`` in its turn (a request that was refused)."""
        ex = cls(None, False, True)
        ex.ready = True
        ex.body_done = True
        ex.rejection = response
        return ex


class ExchangeQueue:
    """The exchanges of one connection: being read, being answered, and waiting between."""

    __slots__ = ("waiting", "active", "parsing")

    def __init__(self) -> None:
        self.waiting: deque[Exchange] = deque()
        self.active: Exchange | None = None
        self.parsing: Exchange | None = None

    def busy(self) -> bool:
        """A request is being read, answered or waits to be."""
        return self.active is not None or bool(self.waiting) or self.parsing is not None

    def may_read_more(self) -> bool:
        """Few enough wait again to resume reading."""
        return len(self.waiting) <= MAX_PIPELINED // 2

    def refuse(self, ex: Exchange | None, response: Response) -> None:
        """Drop what is being read (``ex``) and what is not ready yet; answer ``response``
        after the requests already read whole."""
        if ex is not None and ex in self.waiting:
            self.waiting.remove(ex)
        self.waiting = deque(e for e in self.waiting if e.ready)
        self.waiting.append(Exchange.rejected(response))

    def clear(self) -> None:
        self.waiting.clear()
