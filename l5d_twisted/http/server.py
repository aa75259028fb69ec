"""The HTTP/1.1 server side of the data plane: a raw Twisted protocol over httptools.

``serve_http(reactor, ip, port, service, settings, stats)`` listens and returns an
:class:`HttpServer` (an ``IListeningPort`` with ``drain(grace_s)`` for graceful shutdown).

Per connection (:class:`HttpServerProtocol`):

* Requests are parsed by httptools (llhttp, strict mode), so smuggling shapes (both
  ``Content-Length`` and ``Transfer-Encoding``, duplicate or differing lengths, a
  ``Transfer-Encoding`` not ending in chunked, obs-fold, bare LF) are refused with 400 and
  the connection is closed.
* Hop-by-hop fields are removed before the service sees the request; the body carries the
  framing: empty, a ``BufferedBody`` when ``Content-Length <= max_buffered_body_kb``
  (replayable: retries can resend it), else a ``StreamBody`` (always for chunked bodies)
  that flows with backpressure (the connection's transport is paused while the consumer's
  transport is full).
* Pipelined requests are answered in order, one at a time.
* The request head: an absolute-form target's authority replaces ``Host`` (RFC 9112
  §3.2.2: the name the request is routed by is the Host the next hop sees); two ``Host``
  fields -> 400; a version other than HTTP/1.0 and 1.1 (llhttp also parses 0.9 and 2.0)
  -> 505.
* ``Expect: 100-continue``: the server answers ``100 Continue`` itself when the request
  reaches the head of the connection's queue and removes ``Expect`` before forwarding (the
  upstream would otherwise wait for a continue it cannot send through us).
* HTTP/1.0 clients: keep-alive only when asked; a body of unknown length is delimited by
  closing the connection.
* ``max_initial_line_kb`` -> 414, ``max_headers_kb`` -> 431, a head not received within
  ``header_read_timeout_s`` -> 408, then close; an idle connection is closed after
  ``idle_timeout_s``; more than ``max_concurrent_requests`` in flight -> 503
  (``l5d-retryable``); more than ``max_connections`` open: closed at accept (counted as
  ``connections_refused``).
* A request body that stalls for ``body_idle_timeout_s`` or averages less than
  ``min_body_bytes_per_s`` (after ``BODY_RATE_GRACE_S``; time we paused it does not count)
  times out: 408 if not handed on yet, else the stream fails with ``ClientTimeout``.  A body
  the client breaks after it was handed on (bad chunk, disconnect, timeout) fails its stream
  with an ``errors.ClientFault``, which nobody holds against the endpoint.
* A failed service Deferred becomes an error response (``http.errors``); a response body
  that fails after the head was sent aborts the connection, so the client never takes a
  truncated body for a complete one.  A client that goes away cancels the service Deferred
  and discards the response body (which aborts the upstream exchange).
* ``CONNECT`` and protocol upgrades (websockets) are not supported: CONNECT gets 405; an
  upgrade request is forwarded as a plain request without its ``Upgrade`` field.
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import dataclass
from typing import Any

import httptools
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from l5d_twisted.errors import (
    BadRequest,
    ClientDisconnected,
    ClientTimeout,
    MalformedRequestBody,
    MeshError,
    Overloaded,
)
from l5d_twisted.http.body import EMPTY_BODY, BufferedBody
from l5d_twisted.http.codec import (
    CRLF,
    LENGTH,
    NONE,
    choose_framing,
    encode_fields,
    framing_field,
    send_body,
    status_line,
)
from l5d_twisted.http.errors import error_response
from l5d_twisted.http.fastwrite import direct_writer, set_no_delay
from l5d_twisted.http.hop import (
    DROPPED_ON_PARSE,
    NOT_WRITTEN,
    connection_tokens,
    names_other_fields,
    strip_nominated,
)
from l5d_twisted.http.listen import listen_tcp
from l5d_twisted.http.message import Headers, Request, Response, split_target
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver

log = Logger()

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE_FIELD = b"Connection: close\r\n"
_KEEP_ALIVE_FIELD = b"Connection: keep-alive\r\n"
_HEAD_SKIP_KEEPING_LENGTH = NOT_WRITTEN - {b"content-length"}
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
_MAX_PIPELINED = 16  # parsed-but-unanswered requests before the connection stops reading
BODY_CHECK_INTERVAL_S = 1.0  # how often a connection reading a request body checks its pace
BODY_RATE_GRACE_S = 5.0  # the minimum body rate applies after this long (Kestrel's default grace)


@dataclass(frozen=True)
class ServerSettings:
    max_headers_kb: int = 8
    max_initial_line_kb: int = 4
    idle_timeout_s: float = 60.0
    header_read_timeout_s: float = 10.0
    max_buffered_body_kb: int = 8
    max_concurrent_requests: int | None = None
    clear_context: bool = False
    """Remove every inbound ``l5d-*`` field but the loop marker (ingress from untrusted clients)."""
    request_dtab: bool = True
    """Honour ``l5d-dtab`` / ``l5d-ctx-dtab`` from clients (False: both are dropped on parse)."""
    request_dtab_addresses: bool = False
    """Let a request dtab name address built-ins (``request.ctx[REQUEST_DTAB_ADDRESSES]``)."""
    drain_grace_s: float = 10.0
    drain_idle_close_s: float = 1.0
    """While draining, a connection idle this long is closed (used more recently: it gets
    ``Connection: close`` on its next response instead; see ``HttpServerProtocol.drain``)."""
    no_delay: bool = True
    """``socketOptions``: TCP_NODELAY and SO_KEEPALIVE on accepted connections, SO_REUSEADDR
    and SO_REUSEPORT on the listening socket (``http.listen``)."""
    keep_alive: bool = False
    reuse_addr: bool = True
    reuse_port: bool = False
    tls: Any = None
    """Server TLS options (``http.tls.server_tls``): listen with TLS; None for plain TCP."""
    max_connections: int | None = None
    """Connections open at once; more are closed at accept, before a byte is read."""
    body_idle_timeout_s: float = 30.0
    """A request body with no byte for this long (while we are reading it) times out."""
    min_body_bytes_per_s: int = 240
    """A request body slower than this on average (after ``BODY_RATE_GRACE_S``) times out; 0: off."""


# The request dtab fields, dropped on parse where a server does not honour them; and the
# request.ctx key telling the router that this server lets a request dtab name addresses.
REQUEST_DTAB_FIELDS = frozenset({b"l5d-dtab", b"l5d-ctx-dtab"})
REQUEST_DTAB_ADDRESSES = "request_dtab_addresses"
# clearContext keeps the router's loop marker: it is no context, and without it a loop
# through such a server would run up to maxCallDepth.
_KEPT_ON_CLEAR = b"l5d-loop"


def _cleared(name: bytes) -> bool:
    return name.startswith(b"l5d-") and name != _KEPT_ON_CLEAR


class ProtocolError(Exception):
    """Raised from a parser callback to refuse the request with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Exchange:
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
        self.ready = False
        self.keep_alive = keep_alive
        self.chunked_ok = chunked_ok
        self.body_done = False
        self.expect_continue = False
        self.continue_sent = False
        self.deferred: Deferred[Response] | None = None
        self.rejection: Response | None = None
        self.counted = False
        self.stream: StreamBody | None = None
        self.response_started = False


def protocol_error_response(status: int, message: str) -> Response:
    response = error_response(BadRequest(message))
    response.status = status
    return response


class HttpServerProtocol(Protocol):
    """One client connection."""

    transport: Any

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        settings = server.settings
        self._service = server.service
        self._max_url = settings.max_initial_line_kb * 1024
        self._max_head = settings.max_headers_kb * 1024
        self._max_buffered = settings.max_buffered_body_kb * 1024
        self._clear_context = settings.clear_context
        self._dropped = DROPPED_ON_PARSE if settings.request_dtab else DROPPED_ON_PARSE | REQUEST_DTAB_FIELDS
        self._dtab_addresses = settings.request_dtab_addresses
        self._seconds = server.reactor.seconds
        self._parser: Any = httptools.HttpRequestParser(self)
        self._queue: deque[_Exchange] = deque()
        self._active: _Exchange | None = None
        self._parsing: _Exchange | None = None
        self._dispatching = False
        self._lost = False
        self._closing = False  # no more requests will be read
        self._draining = False
        self._served = False  # a response went out and the connection stayed open
        self._paused: set[str] = set()
        self._timer: Any = None
        self._last_activity = 0.0
        # per-message parse state
        self._in_head = False
        self._head_started = 0.0
        self._head_bytes = 0
        self._partial_head = 0
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._conn_values: list[bytes] | None = None
        self._content_length: int | None = None
        self._chunked = False
        self._expect = False
        self._collect: list[bytes] | None = None
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._discarding = False
        self._count_head = True
        self._began = False  # a message began during the current read
        self._host_at = -1  # where the Host field is in ``_fields`` (-1: none yet)
        # the pace of the request body being read (reset when we resume reading it)
        self._body_window_start = 0.0
        self._body_window_bytes = 0
        self._write: Any = None

    # -- connection lifecycle ------------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self._write = direct_writer(self.transport)
        self._server._connection_made(self)
        self._last_activity = self._seconds()
        self._schedule_timer(min(self._server.settings.idle_timeout_s, self._server.settings.header_read_timeout_s))

    def connectionLost(self, reason: Failure = Failure(ConnectionResetError())) -> None:  # noqa: B008
        self._lost = True
        self._closing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        parsing = self._parsing
        if parsing is not None and parsing.stream is not None:
            parsing.stream.fail(ClientDisconnected("the client closed the connection mid-request"))
        active = self._active
        if active is not None:
            self._uncount(active)
            d = active.deferred
            if d is not None:
                d.cancel()  # also when it waits on an inner Deferred (``called`` is then True)
        self._queue.clear()
        self._server._connection_lost(self)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = self._seconds()
        # a head can only be too large if this read, or the head it continues, is large
        self._count_head = self._in_head or len(data) > self._max_head
        self._began = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._after_upgrade(data, int(e.args[0]) if e.args else len(data))
            return
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, ProtocolError):
                self._reject(cause.status, cause.message)
            else:
                log.failure("HTTP server callback failed", Failure(cause) if cause else None)
                self._reject(400, "bad request")
            return
        except httptools.HttpParserError as e:
            self._reject(400, f"malformed request: {e}")
            return
        if self._in_head:
            if self._began:
                # the head began in this read, after whatever earlier (pipelined) messages
                # it held: count the fields parsed so far, not the whole read (the unparsed
                # tail is at most one read, which bounds what httptools holds of it)
                self._partial_head = self._head_bytes + len(self._url)
            else:
                self._partial_head += len(data)
            if self._partial_head > self._max_head + self._max_url:
                self._reject(431, "request header fields too large")
            elif not self._count_head:  # the fields parsed so far were not counted
                self._head_bytes = self._partial_head

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._began = True
        self._host_at = -1
        self._head_started = self._last_activity
        self._head_bytes = 0
        self._partial_head = 0
        self._url = b""
        self._fields = []
        self._conn_values = None
        self._content_length = None
        self._chunked = False
        self._expect = False
        self._collect = None
        self._trailers = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_url:
            raise ProtocolError(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count_head:
            self._head_bytes += len(name) + len(value) + 4
            if self._head_bytes > self._max_head:
                raise ProtocolError(431, "request header fields too large")
        if not self._in_head:  # a trailer field of a chunked body
            if self._trailers is None:
                self._trailers = []
            self._trailers.append((name, value))
            return
        lname = name.lower()
        if lname in self._dropped:
            if lname == b"connection":
                if self._conn_values is None:
                    self._conn_values = []
                self._conn_values.append(value)
            elif lname == b"content-length":
                self._content_length = int(value)
            elif lname == b"transfer-encoding":
                # only "chunked" last frames a request (RFC 9112 §6.3); llhttp refuses the rest
                # but only after this head was handed on, so refuse it here first
                if value.rsplit(b",", 1)[-1].strip().lower() != b"chunked" or self._chunked:
                    raise ProtocolError(400, "unsupported Transfer-Encoding")
                self._chunked = True
            elif lname == b"expect":
                self._expect = value.lower() == b"100-continue"
            return
        if lname == b"host":
            if self._host_at >= 0:  # RFC 9112 §3.2: which one names the target is ambiguous
                raise ProtocolError(400, "more than one Host header")
            self._host_at = len(self._fields)
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        method: bytes = parser.get_method()
        if method == b"CONNECT":
            raise ProtocolError(405, "CONNECT is not supported")
        version = parser.get_http_version()
        if version not in _VERSIONS:  # llhttp also takes 0.9 and 2.0 request lines
            raise ProtocolError(505, f"HTTP/{version} is not supported (HTTP/1.1 and HTTP/1.0 are)")
        url = self._url
        if url[:1] != b"/" and url != b"*":
            self._host_from_target(url)
        headers = Headers.__new__(Headers)
        headers._items = self._fields
        if self._conn_values is not None and names_other_fields(self._conn_values):
            tokens = connection_tokens(self._conn_values)
            strip_nominated(headers, tokens)
            if b"upgrade" in tokens and parser.should_upgrade() and (self._chunked or self._content_length):
                # llhttp would skip this body and read it as the next request
                raise ProtocolError(400, "a protocol upgrade request cannot have a body")
        if self._clear_context:
            headers.remove_if(_cleared)
        ex = _Exchange(None, parser.should_keep_alive(), version == "1.1")
        length = self._content_length
        if self._chunked:
            stream = StreamBody(self, None)
            ex.stream = stream
            body: Any = stream
            ex.ready = True
            ex.expect_continue = self._expect
        elif length:
            if length <= self._max_buffered:
                self._collect = []
                body = EMPTY_BODY  # replaced at the end of the message
            else:
                stream = StreamBody(self, length)
                ex.stream = stream
                body = stream
                ex.ready = True
            ex.expect_continue = self._expect
        else:
            body = EMPTY_BODY
            ex.ready = True
            ex.body_done = True  # so an answer given right away can keep the connection
        if not ex.body_done:
            self._start_body_clock()
        request = Request(method, url, headers, body, _VERSIONS[version])
        if self._dtab_addresses:
            request.ctx[REQUEST_DTAB_ADDRESSES] = True
        ex.request = request
        self._parsing = ex
        self._queue.append(ex)
        if len(self._queue) > _MAX_PIPELINED:
            self._pause("pipeline")
        if (ex.ready or ex.expect_continue) and self._active is None:
            self._maybe_dispatch()

    def _host_from_target(self, url: bytes) -> None:
        """An absolute-form target names the host: Host is replaced by its authority.

        RFC 9112 §3.2.2: a proxy forwarding such a request generates Host from the target,
        so the name the request is routed by and the Host the next hop sees agree.
        """
        authority = split_target(url)[1]
        if authority is None:
            return
        if not authority or b"@" in authority:  # no host, or userinfo (RFC 9110 §4.2.4)
            raise ProtocolError(400, "the request target has no valid authority")
        fields = self._fields
        at = self._host_at
        if at >= 0:
            name, value = fields[at]
            if value != authority:
                fields[at] = (name, authority)
        else:
            fields.insert(0, (b"Host", authority))

    def on_body(self, data: bytes) -> None:
        self._body_window_bytes += len(data)
        if self._collect is not None:
            self._collect.append(data)
            return
        ex = self._parsing
        if ex is not None and ex.stream is not None and not self._discarding:
            ex.stream.write(data)

    def on_message_complete(self) -> None:
        ex = self._parsing
        self._parsing = None
        if ex is None:
            return
        ex.body_done = True
        if self._collect is not None:
            assert ex.request is not None
            ex.request.body = BufferedBody(b"".join(self._collect))
            self._collect = None
            ex.ready = True
        elif ex.stream is not None:
            ex.stream.finish(self._trailers)
            self._discarding = False
            self._resume("body")
        if self._active is None and self._queue:
            self._maybe_dispatch()

    # -- BodySource (the request body stream pauses this connection) ---------------------

    def pause_body(self) -> None:
        self._pause("body")

    def resume_body(self) -> None:
        self._resume("body")

    def abort_body(self) -> None:
        """Nobody wants the rest of the request body: read and drop it."""
        self._discarding = True
        self._resume("body")

    # -- dispatch and responses ----------------------------------------------------------

    def _maybe_dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._active is None and self._queue and not self._lost:
                ex = self._queue[0]
                if not ex.ready:
                    if ex.expect_continue and not ex.continue_sent:
                        ex.continue_sent = True
                        self._write(_CONTINUE)
                        self._start_body_clock()
                    return
                self._queue.popleft()
                self._active = ex
                if "pipeline" in self._paused and len(self._queue) <= _MAX_PIPELINED // 2:
                    self._resume("pipeline")
                self._start(ex)
        finally:
            self._dispatching = False

    def _start(self, ex: _Exchange) -> None:
        if ex.rejection is not None:
            self._respond(ex.rejection, ex)
            return
        if ex.expect_continue and not ex.continue_sent and not ex.body_done:
            ex.continue_sent = True
            self._write(_CONTINUE)
            self._start_body_clock()
        server = self._server
        limit = server.settings.max_concurrent_requests
        if limit is not None and server.in_flight >= limit:
            self._respond(error_response(Overloaded(f"max concurrent requests ({limit}) exceeded")), ex)
            return
        server.in_flight += 1
        ex.counted = True
        try:
            assert ex.request is not None
            d = self._service(ex.request)
        except Exception:
            d = fail()
        ex.deferred = d
        # addBoth, not addCallbacks: Twisted's addCallbacks costs ~0.3 us more per call
        d.addBoth(self._answer, ex)

    def _answer(self, result: Any, ex: _Exchange) -> None:
        if isinstance(result, Failure):
            return self._respond_failure(result, ex)
        return self._respond(result, ex)

    def _respond_failure(self, failure: Failure, ex: _Exchange) -> None:
        if ex is not self._active or self._lost:
            return None
        if not failure.check(MeshError, CancelledError):
            log.warn("service failed: {error}", error=failure.getErrorMessage())
        self._respond(error_response(failure), ex)
        return None

    def _respond(self, response: Response, ex: _Exchange) -> None:
        if ex is not self._active or self._lost:
            body = getattr(response, "body", None)
            if isinstance(body, StreamBody):
                body.discard()
            return None
        try:
            if not isinstance(response, Response):
                raise TypeError(f"the service answered {response!r}, not a Response")
            self._write_response(response, ex)
        except Exception as e:
            # a malformed response from some layer must not leave the client waiting
            log.failure("cannot write response", Failure(e))
            if ex.response_started:
                self._closing = True
                self.transport.abortConnection()
                self._finish_exchange(ex, False, False)
            else:
                self._write_response(error_response(e), ex)
        return None

    def _write_response(self, response: Response, ex: _Exchange) -> None:
        body = response.body
        request = ex.request
        status = response.status
        is_head = request is not None and request.method == b"HEAD"
        # draining: requests already read behind this one are answered; the last closes
        keep_alive = ex.keep_alive and not self._closing and not (self._draining and not self._queue)
        if status < 200 or status == 204 or status == 304 or is_head:
            framing = NONE
        else:
            framing = choose_framing(body, ex.chunked_ok)
            if framing == 3:  # close-delimited
                keep_alive = False
        parts = [status_line(status, response.reason)]
        if framing == NONE:
            encode_fields(parts, response.headers, _HEAD_SKIP_KEEPING_LENGTH)
            if is_head and b"content-length" not in response.headers and isinstance(body, BufferedBody) and body.data:
                parts.append(b"Content-Length: %d\r\n" % len(body.data))
        else:
            encode_fields(parts, response.headers)
            parts.append(framing_field(framing, body))
        if not ex.body_done and keep_alive:
            keep_alive = False  # the rest of the request body is still on the wire
        if not keep_alive:
            parts.append(_CLOSE_FIELD)
        elif not ex.chunked_ok:
            parts.append(_KEEP_ALIVE_FIELD)
        parts.append(CRLF)
        ex.response_started = True
        if framing == LENGTH and type(body) is BufferedBody:
            # the common case: head and body in one write, done
            parts.append(body.data)
            self._write(b"".join(parts))
            self._finish_exchange(ex, True, keep_alive)
            return None
        send_body(
            self.transport,
            b"".join(parts),
            body,
            framing,
            lambda ok: self._finish_exchange(ex, ok, keep_alive),
            None,
            self._write,
        )
        return None

    def _finish_exchange(self, ex: _Exchange, ok: bool, keep_alive: bool) -> None:
        self._uncount(ex)
        if self._active is ex:
            self._active = None
        if self._lost:
            return
        transport = self.transport
        if not ok:
            self._closing = True
            transport.abortConnection()
            return
        self._last_activity = self._seconds()
        if not keep_alive or not ex.body_done:
            self._close()
            return
        self._served = True
        if self._draining and not self._queue and not self._in_head:
            self._close()
            return
        self._maybe_dispatch()

    def _uncount(self, ex: _Exchange) -> None:
        if ex.counted:
            ex.counted = False
            self._server.in_flight -= 1

    # -- protocol errors, timeouts, flow control -----------------------------------------

    def _reject(self, status: int, message: str) -> None:
        """Refuse what is being parsed: answer ``status`` after earlier responses, then close."""
        if self._closing:
            return
        self._closing = True
        self._pause("closing")
        self._in_head = False
        ex = self._parsing
        self._parsing = None
        if ex is not None:
            dispatched = ex is self._active
            if ex.stream is not None:
                # the client's fault, not the endpoint's (see errors.ClientFault)
                error = ClientTimeout(message) if status == 408 else MalformedRequestBody(message)
                ex.stream.fail(error)  # may answer (and finish) it right away
            if dispatched:
                return  # its own response (an error, as its body failed) ends the connection
            if ex in self._queue:
                self._queue.remove(ex)
        self._queue = deque(e for e in self._queue if e.ready)
        rejection = _Exchange(None, False, True)
        rejection.ready = True
        rejection.body_done = True
        rejection.rejection = protocol_error_response(status, message)
        self._queue.append(rejection)
        self._maybe_dispatch()

    def _after_upgrade(self, data: bytes, offset: int) -> None:
        """llhttp stops after an upgrade request; the upgrade is ignored, so parse on."""
        self._parser = httptools.HttpRequestParser(self)
        rest = data[offset:]
        if rest:
            self.dataReceived(rest)

    def _close(self) -> None:
        self._closing = True
        self.transport.loseConnection()

    def _pause(self, reason: str) -> None:
        if not self._paused:
            self.transport.pauseProducing()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and not self._lost:
                self.transport.resumeProducing()
                # time spent paused by us is not the client's: its body's pace starts over
                self._start_body_clock()

    def _start_body_clock(self) -> None:
        now = self._seconds()
        self._last_activity = now
        self._body_window_start = now
        self._body_window_bytes = 0
        timer = self._timer
        if timer is not None and timer.getTime() > now + BODY_CHECK_INTERVAL_S:
            timer.cancel()
            self._schedule_timer(BODY_CHECK_INTERVAL_S)

    def _schedule_timer(self, delay: float) -> None:
        self._timer = self._server.reactor.callLater(max(delay, 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._lost:
            return
        settings = self._server.settings
        now = self._seconds()
        if self._in_head and self._active is None:
            waited = now - self._head_started
            if waited >= settings.header_read_timeout_s:
                self._reject(408, "timed out reading the request head")
                self._schedule_timer(settings.header_read_timeout_s)
                return
            self._schedule_timer(settings.header_read_timeout_s - waited)
            return
        idle = now - self._last_activity
        parsing = self._parsing
        if parsing is not None and not self._closing:
            # a request body is arriving: a stall or a trickle is a slow client (unless we
            # paused it, or it waits for the 100 Continue we have not sent yet)
            waiting = parsing.expect_continue and not parsing.continue_sent
            if not self._paused and not waiting and self._body_too_slow(now, idle, settings):
                return
            self._schedule_timer(BODY_CHECK_INTERVAL_S)
            return
        if self._active is not None or self._queue or self._parsing is not None:
            self._schedule_timer(settings.idle_timeout_s)
            return
        if idle >= settings.idle_timeout_s:
            if self._closing:  # a close already asked for has not finished: force it
                self.transport.abortConnection()
            else:
                self._close()
                self._schedule_timer(settings.idle_timeout_s)
            return
        self._schedule_timer(settings.idle_timeout_s - idle)

    def _body_too_slow(self, now: float, idle: float, settings: ServerSettings) -> bool:
        """Time the body out (True) if it stalled or its average pace is below the minimum."""
        if idle >= settings.body_idle_timeout_s:
            why = f"no request body data for {settings.body_idle_timeout_s:g} s"
        else:
            elapsed = now - self._body_window_start
            rate = settings.min_body_bytes_per_s
            if not rate or elapsed < BODY_RATE_GRACE_S or self._body_window_bytes >= rate * elapsed:
                return False
            why = f"request body slower than {rate} bytes/s"
        ex = self._parsing
        self._server.count_body_timeout()
        if ex is not None and ex is self._active and ex.stream is not None:
            # handed on already: the service fails (408 if it has not answered yet)
            self._parsing = None
            self._closing = True
            self._pause("closing")
            ex.stream.fail(ClientTimeout(f"timed out reading the request body: {why}"))
            if ex.response_started and not self._lost:
                self.transport.abortConnection()
            else:
                # its answer (408, or a timeout of its own) ends the connection
                self._schedule_timer(settings.idle_timeout_s)
            return True
        self._reject(408, f"timed out reading the request body: {why}")
        self._schedule_timer(settings.idle_timeout_s)
        return True

    def drain(self, idle_close_s: float = 0.0, fresh_idle_close_s: float | None = None) -> None:
        """From now on every response carries ``Connection: close``; close the connection once idle.

        A request in progress finishes first (its response closes the connection).  An idle
        connection is closed once idle for ``idle_close_s`` if it has had a response (kept
        alive), or for ``fresh_idle_close_s`` (default the same) if it has had no request yet:
        its client most likely opened it for a request that is on its way.  Closing a
        connection that its client is about to use is the keep-alive race every HTTP/1.1
        client must survive (it resends on a new connection); waiting until the connection
        has been idle a while makes that rare.
        """
        self._draining = True
        if self._lost or self._closing:
            return
        if self._active is not None or self._queue or self._in_head or self._parsing is not None:
            return  # its response says Connection: close
        wait = idle_close_s if self._served or fresh_idle_close_s is None else fresh_idle_close_s
        idle = self._seconds() - self._last_activity
        if idle >= wait:
            if _has_unread_bytes(self.transport):
                return  # a request arrived but is not read yet (a busy reactor): its response closes
            self._close()
        else:
            self._server.reactor.callLater(wait - idle, self.drain, idle_close_s, fresh_idle_close_s)


class _ServerFactory(Factory):
    def __init__(self, server: HttpServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> HttpServerProtocol | None:
        server = self.server
        if not server.accepts_connection():
            return None  # the port closes the socket: nothing read, parsed or allocated
        return HttpServerProtocol(server)


class _TlsServerFactory(TLSMemoryBIOFactory):
    """TLS in front of the HTTP factory that refuses excess connections before any handshake."""

    def __init__(self, options: Any, server: HttpServer) -> None:
        factory: Any = server.factory  # an IProtocolFactory (Factory does not declare it)
        super().__init__(options, False, factory)
        self.server = server

    def buildProtocol(self, addr: Any) -> Any:
        if not self.server.accepts_connection():
            return None
        return super().buildProtocol(addr)


@implementer(IListeningPort)
class HttpServer:
    """A listening HTTP server: the ``IListeningPort`` plus graceful drain."""

    def __init__(self, reactor: Any, service: Service[Request, Response], settings: ServerSettings, stats: StatsReceiver) -> None:
        self.reactor = reactor
        self.service = service
        self.settings = settings
        self.stats = stats
        self.connections: set[HttpServerProtocol] = set()
        self.in_flight = 0
        self.port: Any = None
        self._connects = stats.counter("connects")
        self._refused = stats.counter("connections_refused")
        self._body_timeouts = stats.counter("request_body_timeouts")
        self._gauge: Any = stats.gauge("connections", fn=lambda: float(len(self.connections)))
        self._drained: list[Deferred[None]] = []
        self.draining = False
        self._listening_closed = False
        self.factory = _ServerFactory(self)

    def accepts_connection(self) -> bool:
        """Room for one more connection under ``max_connections`` (else counted as refused)."""
        limit = self.settings.max_connections
        if limit is not None and len(self.connections) >= limit:
            self._refused.incr()
            return False
        return True

    def count_body_timeout(self) -> None:
        self._body_timeouts.incr()

    def _connection_made(self, conn: HttpServerProtocol) -> None:
        self.connections.add(conn)
        self._connects.incr()
        settings = self.settings
        if settings.keep_alive or not settings.no_delay:
            _set_socket_options(conn.transport, settings)
        if self.draining:  # accepted while draining: its first response closes it
            conn._draining = True
            self.reactor.callLater(settings.drain_idle_close_s, conn.drain, settings.drain_idle_close_s)

    def _connection_lost(self, conn: HttpServerProtocol) -> None:
        self.connections.discard(conn)
        if self._drained:
            self._check_drained()

    def _check_drained(self) -> None:
        if self.connections or not self._listening_closed:
            return
        waiting, self._drained = self._drained, []
        for d in waiting:
            if not d.called:
                d.callback(None)

    def _remove_gauge(self) -> None:
        if self._gauge is not None:
            self._gauge.remove()
            self._gauge = None

    # IListeningPort
    def startListening(self) -> None:
        if self.port is not None:
            self.port.startListening()

    def stopListening(self) -> Deferred[None] | None:
        if self.port is None:
            return None
        d: Deferred[None] | None = self.port.stopListening()
        return d

    def getHost(self) -> Any:
        return self.port.getHost()

    def begin_drain(self) -> None:
        """The drain period: keep accepting, but close every connection after its next response.

        Each response from now on carries ``Connection: close`` (also on connections accepted
        from now on), and a connection idle for ``settings.drain_idle_close_s`` is closed, so
        clients move their traffic elsewhere (another process on the port, another pod)
        while this server still answers whatever reaches it.  :meth:`drain` ends the period.
        """
        if self.draining:
            return
        self.draining = True
        for conn in list(self.connections):
            conn.drain(self.settings.drain_idle_close_s)

    def drain(self, grace_s: float | None = None) -> Deferred[None]:
        """Stop accepting, let in-flight requests finish, close connections as they idle.

        The port accepts what the kernel has queued before it closes (``http.listen``); then
        idle kept-alive connections close at once, and connections that have not sent a
        request yet close after ``settings.drain_idle_close_s`` idle.  Fires when every
        connection has closed, or after ``grace_s`` (default ``settings.drain_grace_s``) when
        the stragglers are aborted.
        """
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        self.draining = True
        d: Deferred[None] = Deferred()

        def abort_stragglers() -> None:
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abortConnection()

        timer = self.reactor.callLater(grace, abort_stragglers)

        def done(result: None) -> None:
            if timer.active():
                timer.cancel()
            self._remove_gauge()
            return result

        d.addBoth(done)
        self._drained.append(d)

        def listening_closed(_: object) -> None:
            self._listening_closed = True
            for conn in list(self.connections):
                conn.drain(0.0, self.settings.drain_idle_close_s)
            self._check_drained()

        stopped = self.port.stopListening() if self.port is not None else None
        if isinstance(stopped, Deferred):
            stopped.addBoth(listening_closed)
        else:
            listening_closed(None)
        return d


def serve_http(
    reactor: Any,
    ip: str,
    port: int,
    service: Service[Request, Response],
    settings: ServerSettings,
    stats: StatsReceiver,
) -> HttpServer:
    """Listen on ``ip:port`` (0 for any free port) and serve ``service``."""
    server = HttpServer(reactor, service, settings, stats)
    factory: Any = _TlsServerFactory(settings.tls, server) if settings.tls is not None else server.factory
    server.port = listen_tcp(reactor, port, factory, ip, 1024, settings.reuse_addr, settings.reuse_port)
    return server


def _has_unread_bytes(transport: Any) -> bool:
    """Whether the kernel holds bytes from the client that the reactor has not read yet.

    A connection that looks idle may have a request waiting in its socket when the reactor
    ran timers before reading (it was busy); closing it then would drop that request.
    """
    inner = transport
    for _ in range(3):  # the TCP transport, or under a TLS wrapper or two
        sock = getattr(inner, "socket", None)
        if isinstance(sock, socket.socket):
            try:
                return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except OSError:  # nothing to read (EAGAIN), or the connection is gone
                return False
        inner = getattr(inner, "transport", None)
        if inner is None:
            break
    return False


def _set_socket_options(transport: Any, settings: ServerSettings) -> None:
    """``socketOptions`` other than the defaults on an accepted connection (TLS wrappers pass them on)."""
    try:
        if not settings.no_delay:
            set_tcp_no_delay = getattr(transport, "setTcpNoDelay", None)
            if set_tcp_no_delay is not None:
                set_tcp_no_delay(False)
        if settings.keep_alive:
            set_tcp_keep_alive = getattr(transport, "setTcpKeepAlive", None)
            if set_tcp_keep_alive is not None:
                set_tcp_keep_alive(True)
    except OSError:  # the client is already gone
        pass
