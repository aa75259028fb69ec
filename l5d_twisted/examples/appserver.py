"""A small, fast HTTP/1.1 server for the sample apps.

The sample apps are also benchmark backends, so this is a flat ``Protocol`` on httptools
rather than twisted.web: keep-alive, pipelined requests answered in order, small buffered
bodies, and a clear 4xx for anything malformed.  It deliberately shares no code with the
mesh's own HTTP server, so a bug in the proxy never hides behind the same bug in its
backends.

A handler takes an :class:`AppRequest` and returns an :class:`AppResponse` or a Deferred
of one.  If the client goes away, the pending Deferreds are cancelled (so a delayed answer
or an outbound call stops too).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httptools
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

IDLE_TIMEOUT_S = 60.0  # close keep-alive connections nobody used for this long
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
TEXT_PLAIN = b"text/plain; charset=utf-8"


@dataclass
class AppRequest:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (given lowercase)."""
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self) -> bytes:
        """The path of an origin- or absolute-form target, without the query."""
        target = self.target
        if target[:1] != b"/":
            scheme_end = target.find(b"://")
            if scheme_end >= 0:
                slash = target.find(b"/", scheme_end + 3)
                target = target[slash:] if slash >= 0 else b"/"
        return target.split(b"?", 1)[0]


@dataclass
class AppResponse:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = TEXT_PLAIN


Handler = Callable[[AppRequest], "Deferred[AppResponse] | AppResponse"]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def encode_response(response: AppResponse, keep_alive: bool, head: bool = False) -> bytes:
    status = response.status
    parts = [
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        % (status, _REASONS.get(status, b"Unknown"), response.content_type, len(response.body))
    ]
    for name, value in response.headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(response.body)
    return b"".join(parts)


class _Slot:
    """One request's place in the pipeline: filled when its answer is ready."""

    __slots__ = ("data", "keep_alive", "deferred")

    def __init__(self, keep_alive: bool) -> None:
        self.data: bytes | None = None
        self.keep_alive = keep_alive
        self.deferred: Deferred[Any] | None = None


class AppServerProtocol(Protocol):
    def __init__(self, handler: Handler, clock: Any = None) -> None:
        self._handler = handler
        self._clock = clock
        self.last_active = clock.seconds() if clock is not None else 0.0
        self._parser = httptools.HttpRequestParser(self)
        self._pipeline: deque[_Slot] = deque()
        self._reset_message()
        self._closing = False  # a response said Connection: close; ignore further input

    # -- httptools callbacks ------------------------------------------------------------
    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._too_large = False

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise ValueError("request headers too large")
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            self._too_large = True
            self._body.clear()
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = bool(self._parser.should_keep_alive())
        slot = _Slot(keep_alive)
        self._pipeline.append(slot)
        method = self._parser.get_method()
        request = AppRequest(method, self._url, self._headers, b"".join(self._body))
        if self._too_large:
            self._fill(slot, AppResponse(413, b"request body too large\n"), request)
            return
        handler: Any = self._handler
        d: Deferred[AppResponse] = maybeDeferred(handler, request)
        if d.called:  # the common, synchronous case: no callbacks to allocate
            d.addBoth(self._answered, slot, request)
            return
        slot.deferred = d
        d.addBoth(self._answered, slot, request)

    # -- answering ----------------------------------------------------------------------
    def _answered(self, result: AppResponse | Failure, slot: _Slot, request: AppRequest) -> None:
        slot.deferred = None
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return  # the connection went away; nothing to answer
            log.failure(
                "handler failed for {method} {target}",
                result,
                method=request.method,
                target=request.target,
            )
            result = AppResponse(500, b"internal error\n")
        self._fill(slot, result, request)

    def _fill(self, slot: _Slot, response: AppResponse, request: AppRequest) -> None:
        slot.data = encode_response(response, slot.keep_alive, head=request.method == b"HEAD")
        self._flush()

    def _flush(self) -> None:
        transport: Any = self.transport
        while self._pipeline and self._pipeline[0].data is not None:
            slot = self._pipeline.popleft()
            if transport is None:
                return
            transport.write(slot.data)
            if not slot.keep_alive:
                self._closing = True
                self._cancel_pending()
                transport.loseConnection()
                return

    def _cancel_pending(self) -> None:
        pending = [s.deferred for s in self._pipeline if s.deferred is not None]
        self._pipeline.clear()
        for d in pending:
            d.cancel()

    # -- transport events ---------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._clock is not None:
            self.last_active = self._clock.seconds()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades or CONNECT here: answer what was parsed, then close.
            self._reject(400, b"upgrade not supported\n")
        except (httptools.HttpParserError, ValueError) as e:
            self._reject(400, f"bad request: {e}\n".encode())

    def _reject(self, status: int, body: bytes) -> None:
        slot = _Slot(keep_alive=False)
        slot.data = encode_response(AppResponse(status, body), keep_alive=False)
        self._pipeline.append(slot)
        self._closing = True
        self._flush()

    @property
    def idle(self) -> bool:
        """No request waiting for its answer (only idle connections are reaped)."""
        return not self._pipeline

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._closing = True
        self._cancel_pending()
        if self.factory is not None:
            self.factory.connections.discard(self)


class AppServerFactory(Factory):
    """Builds connections and, every few seconds, closes those idle for ``idle_timeout_s``.

    One timer per server instead of one per connection keeps the read path to a float
    assignment.
    """

    noisy = False

    def __init__(
        self, handler: Handler, clock: Any, idle_timeout_s: float = IDLE_TIMEOUT_S
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.idle_timeout_s = idle_timeout_s
        self.connections: set[AppServerProtocol] = set()
        self._reaper = task.LoopingCall(self.close_idle)
        self._reaper.clock = clock

    def startFactory(self) -> None:
        self._reaper.start(max(0.5, self.idle_timeout_s / 4), now=False)

    def stopFactory(self) -> None:
        if self._reaper.running:
            self._reaper.stop()

    def buildProtocol(self, addr: Any) -> AppServerProtocol:
        proto = AppServerProtocol(self.handler, self.clock)
        proto.factory = self
        self.connections.add(proto)
        return proto

    def close_idle(self) -> None:
        cutoff = self.clock.seconds() - self.idle_timeout_s
        for proto in [p for p in self.connections if p.idle and p.last_active < cutoff]:
            self.connections.discard(proto)
            transport: Any = proto.transport
            if transport is not None:
                transport.loseConnection()


def listen(
    reactor: Any, ip: str, port: int, handler: Handler, idle_timeout_s: float = IDLE_TIMEOUT_S
) -> IListeningPort:
    """Serve ``handler`` on ``ip:port`` (port 0 picks a free one)."""
    factory = AppServerFactory(handler, reactor, idle_timeout_s)
    port_obj: IListeningPort = reactor.listenTCP(port, factory, backlog=1024, interface=ip)
    return port_obj
