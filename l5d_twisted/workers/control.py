"""The control channel between the supervisor and one worker: JSON frames on a socketpair.

The supervisor makes a ``socketpair`` per worker and hands one end to the worker as file
descriptor 3; nothing else can reach it (no path on disk, no port).  Frames are
length-prefixed (``Int32StringReceiver``) JSON objects:

* a request: ``{"id": n, "op": "...", "args": {...}}``;
* its answer: any number of ``{"id": n, "part": [...]}`` (a long answer, such as a metrics
  snapshot, is sent in pieces made between the worker's other work), then
  ``{"id": n, "result": ...}`` or ``{"id": n, "error": {"status": 404, "message": "..."}}``;
* an event, unasked: ``{"event": "started", ...}``.

Either side may send requests; each side answers the ops it has handlers for
(``handlers[op](args, send_part) -> value or Deferred``).  When the connection is lost
every request waiting for an answer fails with :class:`ChannelClosed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from l5d_twisted.admin.http_error import HttpError

log = Logger()

# A frame holds one piece of an answer; a metrics snapshot is sent in pieces far smaller.
MAX_FRAME = 64 * 1024 * 1024

Handler = Callable[[dict[str, Any], Callable[[list[Any]], None]], Any]


class ChannelClosed(Exception):
    """The other side went away before answering."""


class ControlChannel(Int32StringReceiver):
    MAX_LENGTH = MAX_FRAME

    def __init__(
        self,
        handlers: dict[str, Handler] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.handlers = dict(handlers or {})
        self.on_event = on_event
        self.on_lost = on_lost
        self.connected_ = False
        self._next_id = 0
        self._waiting: dict[int, tuple[Deferred[Any], list[Any]]] = {}

    # -- sending ----------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and self.connected_:
            data = json.dumps(message, separators=(",", ":")).encode()
            send: Any = self.sendString  # untyped in Twisted
            send(data)

    def request(self, op: str, **args: Any) -> Deferred[Any]:
        """Ask the other side; fires with ``(result, parts)`` (parts: every piece, joined)."""
        if not self.connected_:
            return fail(ChannelClosed("the worker is not connected"))
        self._next_id += 1
        rid = self._next_id
        d: Deferred[Any] = Deferred()
        self._waiting[rid] = (d, [])
        self.send({"id": rid, "op": op, "args": args})
        return d

    def event(self, name: str, **fields: Any) -> None:
        self.send({"event": name, **fields})

    # -- receiving --------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected_ = True

    def stringReceived(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warn("control channel: a frame that is not JSON; ignored")
            return
        if not isinstance(message, dict):
            return
        if "op" in message:
            self._answer(message)
        elif "event" in message:
            if self.on_event is not None:
                self.on_event(message)
        elif "id" in message:
            self._answered(message)

    def _answer(self, message: dict[str, Any]) -> None:
        rid = message.get("id")
        handler = self.handlers.get(str(message.get("op")))
        args = message.get("args") or {}
        if handler is None:
            self.send({"id": rid, "error": {"status": 404, "message": "unknown op"}})
            return

        def part(items: list[Any]) -> None:
            self.send({"id": rid, "part": items})

        d = maybeDeferred(handler, args if isinstance(args, dict) else {}, part)
        d.addCallbacks(
            lambda value: self.send({"id": rid, "result": value}),
            lambda failure: self._answer_failure(rid, failure),
        )

    def _answer_failure(self, rid: Any, failure: Failure) -> None:
        if isinstance(failure.value, HttpError):
            error: Any = failure.value
            self.send({"id": rid, "error": {"status": error.status, "message": error.message}})
            return
        log.failure("control request failed", failure)
        message = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        self.send({"id": rid, "error": {"status": 500, "message": message}})

    def _answered(self, message: dict[str, Any]) -> None:
        waiting = self._waiting.get(message["id"])
        if waiting is None:
            return
        d, parts = waiting
        if "part" in message:
            parts.extend(message["part"])
            return
        del self._waiting[message["id"]]
        if "error" in message:
            error = message["error"] or {}
            d.errback(HttpError(int(error.get("status", 500)), str(error.get("message", ""))))
        else:
            d.callback((message.get("result"), parts))

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected_ = False
        waiting, self._waiting = self._waiting, {}
        for d, _ in waiting.values():
            d.errback(ChannelClosed("the worker went away"))
        if self.on_lost is not None:
            self.on_lost()

    def lengthLimitExceeded(self, length: int) -> None:
        log.error("control channel: a frame of {n} bytes; closing", n=length)
        transport: Any = self.transport
        if transport is not None:
            transport.loseConnection()


class ChannelFactory(Factory):
    """Builds the one channel of an adopted connection."""

    def __init__(self, channel: ControlChannel) -> None:
        self.channel = channel

    def buildProtocol(self, addr: Any) -> ControlChannel:
        return self.channel
