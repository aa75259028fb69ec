"""The HTTP/1.1 server side of the data plane: a raw Twisted protocol over httptools.

``serve_http(reactor, ip, port, service, settings, stats)`` listens and returns an
:class:`HttpServer` (an ``IListeningPort`` with ``drain(grace_s)`` for graceful shutdown).

Per connection (:class:`HttpServerProtocol`, which reads with ``http.reader``, queues
with ``http.exchange`` and times out by ``http.timeouts``):

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
from dataclasses import dataclass
from typing import Any

import httptools
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from l5d_twisted import request_context
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
    CLOSE,
    CRLF,
    LENGTH,
    NONE,
    Framing,
    choose_framing,
    encode_fields,
    framing_field,
    send_body,
    status_line,
)
from l5d_twisted.http.errors import error_response
from l5d_twisted.http.exchange import MAX_PIPELINED, Exchange, ExchangeQueue
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
from l5d_twisted.http.reader import MessageReader, ProtocolError
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.http.timeouts import BODY_CHECK_INTERVAL_S, ConnectionTimeouts
from l5d_twisted.http.tls import tls_server_factory
from l5d_twisted.request_context import CONNECTION, Connection
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver

log = Logger()

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE_FIELD = b"Connection: close\r\n"
_KEEP_ALIVE_FIELD = b"Connection: keep-alive\r\n"
_HEAD_SKIP_KEEPING_LENGTH = NOT_WRITTEN - {b"content-length"}
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}


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
REQUEST_DTAB_ADDRESSES = request_context.REQUEST_DTAB_ADDRESSES
# clearContext keeps the router's loop marker: it is no context, and without it a loop
# through such a server would run up to maxCallDepth.
_KEPT_ON_CLEAR = b"l5d-loop"


def _cleared(name: bytes) -> bool:
    return name.startswith(b"l5d-") and name != _KEPT_ON_CLEAR


def protocol_error_response(status: int, message: str) -> Response:
    response = error_response(BadRequest(message))
    response.status = status
    return response


class HttpServerProtocol(Protocol):
    """One client connection: reads requests (``http.reader``), queues them in order
    (``http.exchange``), answers them, and applies its timeouts (``http.timeouts``)."""

    transport: Any

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        settings = server.settings
        self._service = server.service
        self._max_buffered = settings.max_buffered_body_kb * 1024
        self._clear_context = settings.clear_context
        self._dtab_addresses = settings.request_dtab_addresses
        dropped = (
            DROPPED_ON_PARSE if settings.request_dtab else DROPPED_ON_PARSE | REQUEST_DTAB_FIELDS
        )
        self._reader = MessageReader(
            True,
            dropped,
            settings.max_headers_kb * 1024,
            settings.max_initial_line_kb * 1024,
            self._on_head,
            self._on_body,
            self._on_end,
        )
        self._exchanges = ExchangeQueue()
        self._timeouts = ConnectionTimeouts(
            server.reactor,
            self._on_timer,
            settings.header_read_timeout_s,
            settings.idle_timeout_s,
            settings.body_idle_timeout_s,
            settings.min_body_bytes_per_s,
        )
        self._seconds = server.reactor.seconds
        self._dispatching = False
        self._lost = False
        self._closing = False  # no more requests will be read
        self._draining = False
        self._served = False  # a response went out and the connection stayed open
        self._discarding = False  # the request body's reader went away: drop the rest
        self._paused: set[str] = set()
        self._write: Any = None

    # -- connection lifecycle ------------------------------------------------------------

    def connectionMade(self) -> None:
        # the peer (and TLS certificate) every request of this connection carries in its ctx
        self._connection = Connection(self.transport, tls=self._server.settings.tls is not None)
        set_no_delay(self.transport)
        self._write = direct_writer(self.transport)
        self._server._connection_made(self)
        self._timeouts.start()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._closing = True
        self._timeouts.cancel()
        exchanges = self._exchanges
        parsing = exchanges.parsing
        if parsing is not None and parsing.stream is not None:
            parsing.stream.fail(ClientDisconnected("the client closed the connection mid-request"))
        active = exchanges.active
        if active is not None:
            self._uncount(active)
            d = active.deferred
            if d is not None:
                d.cancel()  # also when it waits on an inner Deferred (``called`` is then True)
        exchanges.clear()
        exchanges.active = exchanges.parsing = None
        # what still points back at this connection (the parser through the reader, the
        # timer's callback) lets go, so reference counting frees it, not a full collection
        self._reader.close()
        self._timeouts.close()
        self._server._connection_lost(self)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        timeouts = self._timeouts
        now = timeouts.last_activity = self._seconds()
        reader = self._reader
        try:
            too_large = reader.feed(data)
        except httptools.HttpParserUpgrade as e:
            self._after_upgrade(data, int(e.args[0]) if e.args else len(data))
            return
        except httptools.HttpParserCallbackError as e:
            # (handled in a method: a local here would hold the cause, whose traceback holds
            # this frame, a reference cycle keeping the connection until a full collection)
            self._callback_failed(e.__context__)
            return
        except httptools.HttpParserError as e:
            self._reject(400, f"malformed request: {e}")
            return
        if reader.began:
            timeouts.head_started = now  # (only read while that head is still being read)
        if too_large:
            self._reject(431, "request header fields too large")

    def _callback_failed(self, cause: BaseException | None) -> None:
        if isinstance(cause, ProtocolError):
            self._reject(cause.status, cause.message)
        elif not self._lost:  # (else the connection closed during this read)
            log.failure("HTTP server callback failed", _failure(cause) if cause else None)
            self._reject(400, "bad request")

    # -- reader events -------------------------------------------------------------------

    def _on_head(self) -> None:
        reader = self._reader
        reader.in_head = False
        parser = reader.parser
        method: bytes = parser.get_method()
        if method == b"CONNECT":
            raise ProtocolError(405, "CONNECT is not supported")
        version = parser.get_http_version()
        if version not in _VERSIONS:  # llhttp also takes 0.9 and 2.0 request lines
            raise ProtocolError(505, f"HTTP/{version} is not supported (HTTP/1.1 and HTTP/1.0 are)")
        url = reader.url
        if url[:1] != b"/" and url != b"*":
            _host_from_target(reader, url)
        headers = Headers.__new__(Headers)
        headers._items = reader.fields
        conn_values = reader.conn_values
        length = reader.content_length
        chunked = reader.chunked
        if conn_values is not None and names_other_fields(conn_values):
            tokens = connection_tokens(conn_values)
            strip_nominated(headers, tokens)
            if b"upgrade" in tokens and parser.should_upgrade() and (chunked or length):
                # llhttp would skip this body and read it as the next request
                raise ProtocolError(400, "a protocol upgrade request cannot have a body")
        if self._clear_context:
            headers.remove_if(_cleared)
        ex = Exchange(None, parser.should_keep_alive(), version == "1.1")
        body: Any
        if chunked:
            stream = StreamBody(self, None)
            ex.stream = stream
            body = stream
            ex.ready = True
            ex.expect_continue = reader.expect
        elif length:
            if length <= self._max_buffered:
                reader.collect = []
                body = EMPTY_BODY  # replaced at the end of the message
            else:
                stream = StreamBody(self, length)
                ex.stream = stream
                body = stream
                ex.ready = True
            ex.expect_continue = reader.expect
        else:
            body = EMPTY_BODY
            ex.ready = True
            ex.body_done = True  # so an answer given right away can keep the connection
        if not ex.body_done:
            self._timeouts.restart_body_clock(reader.body_bytes)
        request = Request(method, url, headers, body, _VERSIONS[version])
        request.ctx[CONNECTION] = self._connection
        if self._dtab_addresses:
            request.ctx[REQUEST_DTAB_ADDRESSES] = True
        ex.request = request
        exchanges = self._exchanges
        exchanges.parsing = ex
        waiting = exchanges.waiting
        waiting.append(ex)  # (ExchangeQueue.read, inlined: the hot path)
        if len(waiting) > MAX_PIPELINED:
            self._pause("pipeline")
        if (ex.ready or ex.expect_continue) and exchanges.active is None:
            self._maybe_dispatch()

    def _on_body(self, data: bytes) -> None:
        ex = self._exchanges.parsing
        if ex is not None and ex.stream is not None and not self._discarding:
            ex.stream.write(data)

    def _on_end(self) -> None:
        exchanges = self._exchanges
        ex = exchanges.parsing
        exchanges.parsing = None
        if ex is None:
            return
        ex.body_done = True
        reader = self._reader
        collected = reader.collect
        if collected is not None:
            assert ex.request is not None
            ex.request.body = BufferedBody(b"".join(collected))
            reader.collect = None
            ex.ready = True
        elif ex.stream is not None:
            ex.stream.finish(reader.trailers)
            self._discarding = False
            self._resume("body")
        if exchanges.active is None and exchanges.waiting:
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
        exchanges = self._exchanges
        try:
            while exchanges.active is None and exchanges.waiting and not self._lost:
                ex = exchanges.waiting[0]
                if not ex.ready:
                    if ex.expect_continue and not ex.continue_sent:
                        ex.continue_sent = True
                        self._write(_CONTINUE)
                        self._timeouts.restart_body_clock(self._reader.body_bytes)
                    return
                exchanges.waiting.popleft()  # (ExchangeQueue.take, inlined: the hot path)
                exchanges.active = ex
                if "pipeline" in self._paused and exchanges.may_read_more():
                    self._resume("pipeline")
                self._start(ex)
        finally:
            self._dispatching = False

    def _start(self, ex: Exchange) -> None:
        if ex.rejection is not None:
            self._respond(ex.rejection, ex)
            return
        if ex.expect_continue and not ex.continue_sent and not ex.body_done:
            ex.continue_sent = True
            self._write(_CONTINUE)
            self._timeouts.restart_body_clock(self._reader.body_bytes)
        server = self._server
        limit = server.settings.max_concurrent_requests
        if limit is not None and server.in_flight >= limit:
            self._respond(
                error_response(Overloaded(f"max concurrent requests ({limit}) exceeded")), ex
            )
            return
        server.in_flight += 1
        ex.counted = True
        d: Deferred[Response]
        try:
            assert ex.request is not None
            d = self._service(ex.request)
        except Exception:
            d = fail()
        ex.deferred = d
        # addBoth, not addCallbacks: Twisted's addCallbacks costs ~0.3 us more per call
        d.addBoth(self._answer, ex)

    def _answer(self, result: Response | Failure, ex: Exchange) -> None:
        if isinstance(result, Failure):
            return self._respond_failure(result, ex)
        return self._respond(result, ex)

    def _respond_failure(self, failure: Failure, ex: Exchange) -> None:
        if ex is not self._exchanges.active or self._lost:
            return None
        if not isinstance(failure.value, (MeshError, CancelledError)):
            log.warn("service failed: {error}", error=failure.getErrorMessage())
        self._respond(error_response(failure), ex)
        return None

    def _respond(self, response: Response, ex: Exchange) -> None:
        if ex is not self._exchanges.active or self._lost:
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
            log.failure("cannot write response", _failure(e))
            if ex.response_started:
                self._closing = True
                self.transport.abortConnection()
                self._finish_exchange(ex, False, False)
            else:
                self._write_response(error_response(e), ex)
        return None

    def _write_response(self, response: Response, ex: Exchange) -> None:
        body = response.body
        request = ex.request
        status = response.status
        is_head = request is not None and request.method == b"HEAD"
        # draining: requests already read behind this one are answered; the last closes
        keep_alive = (
            ex.keep_alive
            and not self._closing
            and not (self._draining and not self._exchanges.waiting)
        )
        framing: Framing
        if status < 200 or status == 204 or status == 304 or is_head:
            framing = NONE
        else:
            framing = choose_framing(body, ex.chunked_ok)
            if framing is CLOSE:  # the body ends when the connection closes
                keep_alive = False
        parts = [status_line(status, response.reason)]
        if framing is NONE:
            encode_fields(parts, response.headers, _HEAD_SKIP_KEEPING_LENGTH)
            if (
                is_head
                and b"content-length" not in response.headers
                and isinstance(body, BufferedBody)
                and body.data
            ):
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
        if framing is LENGTH and type(body) is BufferedBody:
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

    def _finish_exchange(self, ex: Exchange, ok: bool, keep_alive: bool) -> None:
        self._uncount(ex)
        exchanges = self._exchanges
        if exchanges.active is ex:
            exchanges.active = None
        if self._lost:
            return
        if not ok:
            self._closing = True
            self.transport.abortConnection()
            return
        self._timeouts.last_activity = self._seconds()
        if not keep_alive or not ex.body_done:
            self._close()
            return
        self._served = True
        if self._draining and not exchanges.waiting and not self._reader.in_head:
            self._close()
            return
        self._maybe_dispatch()

    def _uncount(self, ex: Exchange) -> None:
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
        self._reader.in_head = False
        exchanges = self._exchanges
        ex = exchanges.parsing
        exchanges.parsing = None
        if ex is not None:
            dispatched = ex is exchanges.active
            if ex.stream is not None:
                # the client's fault, not the endpoint's (see errors.ClientFault)
                error = ClientTimeout(message) if status == 408 else MalformedRequestBody(message)
                ex.stream.fail(error)  # may answer (and finish) it right away
            if dispatched:
                return  # its own response (an error, as its body failed) ends the connection
        exchanges.refuse(ex, protocol_error_response(status, message))
        self._maybe_dispatch()

    def _after_upgrade(self, data: bytes, offset: int) -> None:
        """llhttp stops after an upgrade request; the upgrade is ignored, so parse on."""
        self._reader.new_parser()
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
                self._timeouts.restart_body_clock(self._reader.body_bytes)

    def _on_timer(self) -> None:
        if self._lost:
            return
        timeouts = self._timeouts
        now = self._seconds()
        exchanges = self._exchanges
        if self._reader.in_head and exchanges.active is None:
            left = timeouts.head_time_left(now)
            if left <= 0:
                self._reject(408, "timed out reading the request head")
                timeouts.schedule(timeouts.header_read_timeout_s)
                return
            timeouts.schedule(left)
            return
        parsing = exchanges.parsing
        if parsing is not None and not self._closing:
            # a request body is arriving: a stall or a trickle is a slow client (unless we
            # paused it, or it waits for the 100 Continue we have not sent yet)
            waiting = parsing.expect_continue and not parsing.continue_sent
            if not self._paused and not waiting:
                why = timeouts.body_too_slow(now, self._reader.body_bytes)
                if why is not None:
                    self._body_timed_out(parsing, why)
                    return
            timeouts.schedule(BODY_CHECK_INTERVAL_S)
            return
        if exchanges.busy():
            timeouts.schedule(timeouts.idle_timeout_s)
            return
        left = timeouts.idle_time_left(now)
        if left <= 0:
            if self._closing:  # a close already asked for has not finished: force it
                self.transport.abortConnection()
            else:
                self._close()
                timeouts.schedule(timeouts.idle_timeout_s)
            return
        timeouts.schedule(left)

    def _body_timed_out(self, ex: Exchange, why: str) -> None:
        """The request body being read stalled or trickles: fail it, or refuse it with 408."""
        self._server.count_body_timeout()
        timeouts = self._timeouts
        if ex is self._exchanges.active and ex.stream is not None:
            # handed on already: the service fails (408 if it has not answered yet)
            self._exchanges.parsing = None
            self._closing = True
            self._pause("closing")
            ex.stream.fail(ClientTimeout(f"timed out reading the request body: {why}"))
            if ex.response_started and not self._lost:
                self.transport.abortConnection()
            else:
                # its answer (408, or a timeout of its own) ends the connection
                timeouts.schedule(timeouts.idle_timeout_s)
            return
        self._reject(408, f"timed out reading the request body: {why}")
        timeouts.schedule(timeouts.idle_timeout_s)

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
        if self._exchanges.busy() or self._reader.in_head:
            return  # its response says Connection: close
        wait = idle_close_s if self._served or fresh_idle_close_s is None else fresh_idle_close_s
        idle = self._seconds() - self._timeouts.last_activity
        if idle >= wait:
            if _has_unread_bytes(self.transport):
                return  # a request arrived but is not read yet (a busy reactor): its response closes
            self._close()
        else:
            self._server.reactor.callLater(
                wait - idle, self.drain, idle_close_s, fresh_idle_close_s
            )


def _host_from_target(reader: MessageReader, url: bytes) -> None:
    """An absolute-form target names the host: Host is replaced by its authority.

    RFC 9112 §3.2.2: a proxy forwarding such a request generates Host from the target,
    so the name the request is routed by and the Host the next hop sees agree.
    """
    authority = split_target(url)[1]
    if authority is None:
        return
    if not authority or b"@" in authority:  # no host, or userinfo (RFC 9110 §4.2.4)
        raise ProtocolError(400, "the request target has no valid authority")
    fields = reader.fields
    at = reader.host_at
    if at >= 0:
        name, value = fields[at]
        if value != authority:
            fields[at] = (name, authority)
    else:
        fields.insert(0, (b"Host", authority))


class _ServerFactory(Factory):
    def __init__(self, server: HttpServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> HttpServerProtocol | None:
        server = self.server
        if not server.accepts_connection():
            return None  # the port closes the socket: nothing read, parsed or allocated
        return HttpServerProtocol(server)


@implementer(IListeningPort)
class HttpServer:
    """A listening HTTP server: the ``IListeningPort`` plus graceful drain."""

    def __init__(
        self,
        reactor: Any,
        service: Service[Request, Response],
        settings: ServerSettings,
        stats: StatsReceiver,
    ) -> None:
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
            self.reactor.callLater(
                settings.drain_idle_close_s, conn.drain, settings.drain_idle_close_s
            )

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
    factory: Any = server.factory
    if settings.tls is not None:  # TLS before the HTTP factory; excess refused before any handshake
        factory = tls_server_factory(settings.tls, factory, server.accepts_connection)
    server.port = listen_tcp(
        reactor, port, factory, ip, 1024, settings.reuse_addr, settings.reuse_port
    )
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


def _failure(error: BaseException) -> Failure:
    failure: Failure = Failure(error)  # type: ignore[no-untyped-call]  # untyped in Twisted
    return failure


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
