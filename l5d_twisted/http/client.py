"""The HTTP/1.1 client side of the data plane: one ``EndpointClient`` per upstream address.

``EndpointClient(reactor, address, pool, stats, connect_timeout_s)`` is a
``Service[Request, Response]`` over a keep-alive connection pool (``http.pool``):

* the request target is rewritten to origin form (``http://hello/x`` -> ``/x``) and ``Host``
  is set from the authority when absent; the client writes its own framing and never copies
  hop-by-hop fields;
* the response is parsed by httptools; a small ``Content-Length`` body (up to
  ``BUFFERED_RESPONSE_LIMIT``) arrives as a ``BufferedBody``, anything else as a
  ``StreamBody`` whose flow pauses this connection when the consumer is slow;
* a connection goes back to the pool only when the request and the response were both
  transferred whole and both sides keep the connection alive;
* failures: ``errors.ConnectionFailed`` (could not connect, nothing written: retryable),
  ``errors.ConnectionReset`` (the connection broke after the request was written),
  ``errors.UpstreamProtocolError`` (unparseable response, or a head larger than the pool
  settings' ``max_headers_kb`` + ``max_initial_line_kb``: linkerd 1's ``maxHeadersKB``
  bounds both codecs); a request body that the *client* broke (``errors.ClientFault``:
  malformed, abandoned, too slow) fails the exchange with that error, so nobody holds it
  against this endpoint.  A connection that breaks
  mid-response fails the response body stream, so the server aborts its client connection
  instead of presenting a truncated body as complete.
* Cancelling the returned Deferred aborts the exchange's connection.
* The keep-alive race: a reused connection that closes before any byte of the answer
  (the server timed it out as we sent) gets an idempotent request with a buffered body
  sent once more on another connection, instead of a spurious ``ConnectionReset``.

Stats (in the scope given): ``connections`` gauge, ``connects``, ``sent_bytes``,
``received_bytes``, ``connect_failures``, ``stale_connection_resends`` counters.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httptools
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import _WrappingFactory
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.errors import (
    ClientFault,
    ConnectionFailed,
    ConnectionReset,
    MeshError,
    UpstreamProtocolError,
)
from l5d_twisted.http.body import EMPTY_BODY, BufferedBody
from l5d_twisted.http.codec import (
    CRLF,
    NONE,
    Framing,
    choose_framing,
    encode_fields,
    framing_field,
    send_body,
)
from l5d_twisted.http.fastwrite import direct_write, is_plain_tcp, set_no_delay
from l5d_twisted.http.hop import (
    HOP_BY_HOP,
    NOT_WRITTEN,
    connection_tokens,
    names_other_fields,
    strip_nominated,
)
from l5d_twisted.http.message import Headers, Request, Response, split_target
from l5d_twisted.http.pool import SPENT_FACTORY, ConnectionPool, PoolSettings
from l5d_twisted.http.reader import (
    NO_FIELDS,
    MessageReader,
    ProtocolError,
    give_back_response_reader,
    take_response_reader,
)
from l5d_twisted.http.sockopts import set_socket_options
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.http.tls import is_tls_failure
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import Service, Status
from l5d_twisted.telemetry.stats import StatsReceiver

__all__ = ["EndpointClient", "PoolSettings", "HttpClientProtocol", "BUFFERED_RESPONSE_LIMIT"]

log = Logger()

BUFFERED_RESPONSE_LIMIT = 64 * 1024
"""Responses with a Content-Length up to this are buffered (one write downstream)."""

_IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_BODYLESS_METHODS = frozenset({b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT"})
_RESPONSE_DROPPED = HOP_BY_HOP | {b"content-length"}
_NOT_WRITTEN_OR_HOST = NOT_WRITTEN | {b"host"}


class _HeadOnly(Exception):
    """Stops the parser after a HEAD response's head (llhttp would wait for its body)."""


def origin_form(request: Request) -> tuple[bytes, bytes | None]:
    """The target to send upstream and the authority of an absolute-form target."""
    return split_target(request.uri)


def _tcp_transport(transport: Any) -> Any:
    """The TCP transport under ``transport``'s TLS wrappers, if any."""
    for _ in range(3):  # (a TLS wrapper forwards unknown attributes to what it wraps)
        inner = getattr(transport, "transport", None)
        if inner is None:
            break
        transport = inner
    return transport


def _spare_connect_factories(transport: Any) -> None:
    """Once connected, let go of the factories that made the connection.

    (For TLS and host-name endpoints: a plain IP connection's connector is given the spent
    factory as it connects, by :class:`~l5d_twisted.http.pool._DirectTCPEndpoint`.)
    A connected ``tcp.Client``'s connector keeps the endpoint's ``_WrappingFactory``, which
    keeps our one-shot factory and, through its fired Deferred's canceller, itself: two
    objects with a ``__dict__`` each (~200 bytes) per pooled connection, i.e. per name
    (issue 17).  The connection's protocols do not use them.
    """
    transport = _tcp_transport(transport)
    connector: Any = getattr(transport, "connector", None)
    factory = getattr(connector, "factory", None)
    if isinstance(factory, _WrappingFactory):
        connected = factory._onConnection
        if connected.called:
            connected._canceller = None  # (only used to cancel a connection not made yet)
            connector.factory = SPENT_FACTORY


def _forget_connector(transport: Any) -> None:
    """Cut Twisted's connector from the closed TCP transport (under TLS wrappers too).

    A ``tcp.Client`` and its ``Connector`` point at each other and neither lets go when the
    connection closes, so every upstream connection's socket, transport and factories
    waited for a full garbage collection.  The connector no longer needs the transport once
    the connection is lost (``Connector.connectionLost`` follows and does not use it).
    """
    transport = _tcp_transport(transport)
    connector = getattr(transport, "connector", None)
    if connector is not None and getattr(connector, "transport", None) is transport:
        connector.transport = None
        # the endpoint's factory (twisted.internet.endpoints._WrappingFactory) holds the
        # connector, and its fired Deferred's canceller holds the factory: the same again
        factory: Any = getattr(connector, "factory", None)
        if getattr(factory, "_connector", None) is connector:
            factory._connector = None
        connected = getattr(factory, "_onConnection", None)
        if isinstance(connected, Deferred) and connected.called:
            connected._canceller = None  # (only used to cancel a connection not made yet)


# what Twisted's TCP transport names a connection of ours in legacy log lines
_LOGSTR = "HttpClientProtocol,client"


class HttpClientProtocol(Protocol):
    """One upstream connection, carrying one exchange at a time."""

    transport: Any

    def __init__(self, client: EndpointClient) -> None:
        self._client = client
        pool = client.pool_settings
        self._max_head = pool.max_head_bytes  # (the settings' int: shared, not one per connection)
        # the response's parse state: taken by send(), given back once the connection is
        # idle (see dataReceived), so an idle pooled connection holds none
        self._reader: MessageReader | None = None
        self._deferred: Deferred[Response] | None = None
        self._request: Request | None = None
        self._is_head = False
        self._request_done = False
        self._response_done = False
        self._keep_alive = True
        self._pipe: Any = None
        self._lost = False
        self._paused = False
        self.reusable = True
        self.idle_since = 0.0
        # the response being read (its parse state is the reader's)
        self._stream: StreamBody | None = None
        self._interim = False  # a 1xx head: the real response follows
        self._held: Response | None = None  # a buffered response waiting for its body
        # write with fastwrite.direct_write (a plain TCP connection), else transport.write
        # (a flag, not a writer closure: ~450 bytes per pooled connection; issue 17)
        self._direct = False
        # resending after a stale keep-alive connection closed under us
        self._exchanges = 0
        self._answered = False
        self._may_resend = True
        self._handoff: Deferred[Response] | None = None

    # -- connection lifecycle ------------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self._direct = is_plain_tcp(self.transport)
        if self._direct and getattr(self.transport, "logstr", None) == _LOGSTR:
            # Twisted formats this per connection: the same 74-byte string per pooled
            # connection, i.e. per name (issue 17); the one shared copy instead
            self.transport.logstr = _LOGSTR
        self._client._connection_made(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self.reusable = False
        stream = self._stream
        if stream is not None and not self._response_done:
            reader = self._reader
            assert reader is not None  # (an exchange is on this connection)
            if (
                reader.content_length is None
                and not reader.chunked
                and isinstance(reason.value, ConnectionDone)
            ):
                # a close-delimited body ends with the connection
                self._response_done = True
                stream.finish(reader.trailers)
            else:
                stream.fail(
                    ConnectionReset(
                        "the upstream connection closed mid-response", reason=str(reason.value)
                    )
                )
            self._stream = None
        d = self._deferred
        resend = d is not None and self._stale_close_is_resendable()
        if resend:
            self._deferred = None
            self._client.pending -= 1
        elif not self._answered and is_tls_failure(reason.value):
            # the TLS handshake failed: the server never saw the request
            address = self._client.address.show()
            self._fail(
                ConnectionFailed(
                    f"TLS with {address} failed: {reason.getErrorMessage()}", address=address
                )
            )
        elif d is not None:  # (an idle connection closing: no error to make)
            self._fail(
                ConnectionReset(
                    "the upstream connection closed before responding", reason=str(reason.value)
                )
            )
        self._client._connection_lost(self)
        # the parser and the reader point back at this connection: let go, so reference
        # counting frees it, not a full collection
        if self._reader is not None:
            self._reader.close()
        _forget_connector(self.transport)
        if resend and d is not None and self._request is not None:
            handoff = self._client._resend(self._request)
            self._handoff = handoff
            handoff.addBoth(self._relay, d)

    def _stale_close_is_resendable(self) -> bool:
        """A reused connection closed before any answer: most likely the server closed it
        for idleness as we sent (the keep-alive race).  Safe to send once more elsewhere
        when the request is idempotent and its body can be sent again (RFC 9110 §9.2.2)."""
        request = self._request
        return (
            self._may_resend
            and self._exchanges > 1
            and not self._answered
            and request is not None
            and request.method in _IDEMPOTENT_METHODS
            and type(request.body) is BufferedBody
        )

    def _relay(self, result: Any, d: Deferred[Response]) -> None:
        self._handoff = None
        if d.called:
            if isinstance(result, Response) and isinstance(result.body, StreamBody):
                result.body.discard()
            return None
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        return None

    # -- sending -------------------------------------------------------------------------

    def send(self, request: Request, may_resend: bool = True) -> Deferred[Response]:
        """Send ``request``; ``may_resend`` False when this already is a resend."""
        try:
            head, framing = self._encode(request)
        except Exception as e:  # a malformed message from some layer: nothing was written
            log.warn("cannot encode request {request!r}: {error}", request=request, error=e)
            self._client._release(self)
            return fail(MeshError(f"cannot send the request: {e}"))
        self.reusable = False  # until this exchange completes cleanly
        self._request = request
        self._exchanges += 1
        self._answered = False
        self._may_resend = may_resend
        reader = self._reader
        if reader is None:  # the first exchange, or idle since the last one (dataReceived)
            reader = self._reader = take_response_reader(
                _RESPONSE_DROPPED,
                self._max_head,
                self._client.pool_settings.max_line_bytes,
                self._on_head,
                self._on_body,
                self._on_end,
            )
        elif reader.parser is None:  # idle since the last exchange (see _exchange_done)
            reader.on_headers_complete = self._on_head
            reader.on_message_complete = self._on_end
            reader.body = self._on_body
            reader.new_parser()
        self._is_head = reader.keep_length = request.method == b"HEAD"
        self._response_done = False
        self._keep_alive = True
        d: Deferred[Response] = Deferred(self._cancel)
        self._deferred = d
        self._pipe = None
        self._client.pending += 1
        if framing is None:  # the whole request is in ``head``
            self._request_done = True
            if self._direct:
                direct_write(self.transport, head)
            else:
                self.transport.write(head)
            self._client.sent_bytes.incr(len(head))
            return d
        self._request_done = False
        self._pipe = send_body(
            self.transport,
            head,
            request.body,
            framing,
            self._request_sent,
            self._client.sent_bytes.incr,
            partial(direct_write, self.transport) if self._direct else self.transport.write,
        )
        return d

    def _encode(self, request: Request) -> tuple[bytes, Framing | None]:
        """The bytes to write first and the framing of what follows (None: nothing follows)."""
        target, authority = split_target(request.uri)
        parts = [b"%s %s HTTP/1.1\r\n" % (request.method, target)]
        if authority is not None:
            # RFC 9112 §3.2.2: an absolute-form target's authority is the Host (first)
            parts.append(b"Host: %s\r\n" % authority)
            encode_fields(parts, request.headers, _NOT_WRITTEN_OR_HOST)
        elif not encode_fields(parts, request.headers):
            # RFC 9112 §3.2: Host first
            parts.insert(1, b"Host: %s\r\n" % self._client.authority)
        body = request.body
        if type(body) is BufferedBody and not body.trailers:
            data = body.data
            if data:
                parts.append(b"Content-Length: %d\r\n\r\n" % len(data))
                parts.append(data)
            elif request.method not in _BODYLESS_METHODS:
                parts.append(b"Content-Length: 0\r\n\r\n")
            else:
                parts.append(CRLF)
            return b"".join(parts), None
        if isinstance(body, StreamBody) and body.consumed:
            # refused before any byte is written: a head without its body would hang the exchange
            raise ValueError("its streamed body was already consumed by an earlier attempt")
        framing = (
            choose_framing(body, True) if isinstance(body, (BufferedBody, StreamBody)) else NONE
        )
        parts.append(framing_field(framing, body))
        parts.append(CRLF)
        return b"".join(parts), framing

    def _request_sent(self, ok: bool) -> None:
        self._pipe = None
        if not ok:
            # the request body failed or the connection went away: this exchange is broken
            self.reusable = False
            request = self._request
            cause = getattr(request.body, "error", None) if request is not None else None
            if isinstance(cause, ClientFault):
                self._fail(cause)  # the client broke its body, not this endpoint
            else:
                self._fail(ConnectionReset("the request body could not be sent whole"))
            if not self._lost:
                self.transport.abortConnection()
            return
        self._request_done = True
        if self._response_done:
            self._exchange_done()

    def _fail(self, error: BaseException) -> bool:
        """Fail the exchange's Deferred if it is still waiting; False if it was not."""
        d = self._deferred
        if d is None:
            return False
        self._deferred = None
        self._client.pending -= 1
        d.errback(error)
        return True

    def _cancel(self, d: Deferred[Response]) -> None:
        handoff = self._handoff
        if handoff is not None:  # the request was resent on another connection: cancel that
            self._handoff = None
            handoff.cancel()
            return
        if self._deferred is not None:
            self._deferred = None
            self._client.pending -= 1
        self.reusable = False
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()
        d.errback(CancelledError())

    # -- receiving -----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._client.received_bytes.incr(len(data))
        if self._request is None:
            # nothing asked: an idle connection the server wrote to (or garbage): drop it
            self.reusable = False
            self.transport.abortConnection()
            return
        self._answered = (
            True  # the server began to answer: never resent (see _stale_close_is_resendable)
        )
        reader = self._reader
        assert reader is not None  # (an exchange is on this connection)
        try:
            too_large = reader.feed(data)
        except httptools.HttpParserCallbackError as e:
            # (handled in a method: a local here would hold the cause, whose traceback holds
            # this frame, a reference cycle keeping the connection until a full collection)
            self._callback_failed(e.__context__)
            return
        except httptools.HttpParserUpgrade:
            self._protocol_error("protocol upgrades are not supported")
            return
        except httptools.HttpParserError as e:
            self._protocol_error(f"malformed response: {e}")
            return
        if too_large and not self._lost:
            # httptools buffers a field until it ends: bound what it holds by the raw bytes
            self._head_too_large()
        elif reader.parser is None and self._request is None and not self._lost:
            # the exchange is over and no other began on this connection during the read:
            # its reader may serve another connection (only now that its parse returned)
            self._reader = None
            give_back_response_reader(reader)

    def _callback_failed(self, cause: BaseException | None) -> None:
        if self._lost:
            return  # the connection closed during this read (the reader is closed)
        if isinstance(cause, _HeadOnly):
            reader = self._reader
            assert reader is not None  # (its parse raised this)
            reader.new_parser()
            self._complete_held()
        elif isinstance(cause, ProtocolError):  # the head is over maxHeadersKB
            self._head_too_large()
        else:
            self._protocol_error(f"response handling failed: {cause!r}")

    def _head_too_large(self) -> None:
        self._protocol_error(
            f"response head larger than {self._max_head // 1024} KB (maxHeadersKB)"
        )

    def _protocol_error(self, message: str) -> None:
        self.reusable = False
        error = UpstreamProtocolError(message)
        if self._fail(error):
            pass
        elif self._stream is not None:
            self._stream.fail(error)
            self._stream = None
        self.transport.abortConnection()

    # -- reader events -------------------------------------------------------------------

    def _on_head(self) -> None:
        reader = self._reader
        assert reader is not None  # (an exchange is on this connection)
        reader.in_head = False
        parser = reader.parser
        status: int = parser.get_status_code()
        if status < 200:
            self._interim = True  # 100 Continue & co: dropped (the server answered 100 itself)
            return
        self._keep_alive = parser.should_keep_alive()
        headers = Headers.__new__(Headers)
        headers._items = reader.fields
        # (the reader lets go of the head it handed on: an idle pooled connection kept the
        # last response's fields; issue 17)
        reader.fields = NO_FIELDS
        conn_values = reader.conn_values
        if conn_values is not None:
            reader.conn_values = None
            if names_other_fields(conn_values):
                strip_nominated(headers, connection_tokens(conn_values))
        length = reader.content_length
        chunked = reader.chunked
        if self._is_head or status == 204 or status == 304 or length == 0:
            # no body: answered at the end of the message, once the connection is back in
            # the pool (a caller sending its next request right away then reuses it)
            self._held = Response(status, headers, EMPTY_BODY)
            if self._is_head:
                raise _HeadOnly()  # llhttp would wait for the body the length announces
            return
        if length is not None and length <= self._client.buffered_response_limit and not chunked:
            reader.collect = []
            self._held = Response(status, headers, EMPTY_BODY)
            return  # delivered whole at the end of the message
        stream = StreamBody(self, None if chunked else length)
        self._stream = stream
        self._deliver(Response(status, headers, stream))

    def _on_body(self, data: bytes) -> None:
        stream = self._stream
        if stream is not None:
            stream.write(data)

    def _on_end(self) -> None:
        if self._interim:
            self._interim = False
            return
        reader = self._reader
        assert reader is not None  # (an exchange is on this connection)
        collected = reader.collect
        if collected is not None:
            held = self._held
            if held is not None:
                held.body = BufferedBody(b"".join(collected))
            reader.collect = None
        self._complete_held()

    def _complete_held(self) -> None:
        """End the exchange, then answer with the held response (if any)."""
        response = self._held
        self._held = None
        d = self._deferred
        if response is not None and d is not None:
            self._deferred = None
            self._client.pending -= 1
        else:
            d = None
        self._message_complete()  # may hand this connection to the next request
        if d is not None and response is not None:
            d.callback(response)

    def _deliver(self, response: Response) -> None:
        d = self._deferred
        if d is not None:
            self._deferred = None
            self._client.pending -= 1
            d.callback(response)
        elif isinstance(response.body, StreamBody):
            response.body.discard()

    def _message_complete(self) -> None:
        self._response_done = True
        stream = self._stream
        self._stream = None
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        if stream is not None:
            reader = self._reader
            assert reader is not None  # (its parser called this)
            stream.finish(reader.trailers)
        if self._request_done:
            self._exchange_done()
        elif self._pipe is not None:
            # answered before the request body was sent (e.g. 413): stop sending, drop the connection
            self._keep_alive = False

    def _exchange_done(self) -> None:
        self._request = None
        reusable = self.reusable = self._keep_alive and not self._lost
        if reusable:
            # an idle pooled connection does without its parser and the reader's callbacks:
            # httptools' parser, its two C structs and its four bound callbacks are 784
            # bytes, this connection's three bound methods 192, per pooled connection, i.e.
            # per name when thousands of names each keep a warm connection (issue 17);
            # send() makes them again (~0.5 us), and a fresh parser is what a parser is
            # between messages.  (Called from the parser's own callback: the parser lives
            # on until its feed_data returns, with the callbacks it looked up.)
            reader = self._reader
            if reader is not None:
                reader.idle()
        self._client._release(self)

    # -- BodySource (the response body stream pauses this connection) --------------------

    def pause_body(self) -> None:
        if not self._paused and not self._lost:
            self._paused = True
            self.transport.pauseProducing()

    def resume_body(self) -> None:
        if self._paused and not self._lost:
            self._paused = False
            self.transport.resumeProducing()

    def abort_body(self) -> None:
        """The consumer discarded the response body: this connection cannot be reused."""
        self.reusable = False
        self._stream = None
        if not self._lost:
            self.transport.abortConnection()

    def close_idle(self) -> None:
        self.reusable = False
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()


class EndpointClient(Service[Request, Response]):
    """Requests to one upstream address over pooled keep-alive connections."""

    # slotted: one per endpoint, i.e. per name when each name has one endpoint (issue 17)
    __slots__ = (
        "reactor",
        "address",
        "pool_settings",
        "buffered_response_limit",
        "pending",
        "_closed",
        "sent_bytes",
        "received_bytes",
        "_resends",
        "_pool",
        "__weakref__",
    )

    @property
    def authority(self) -> bytes:
        """The Host of a request that came without one (rare: computed when needed)."""
        return self.address.show().encode("ascii")

    def __init__(
        self,
        reactor: Any,
        address: Address,
        pool: PoolSettings,
        stats: StatsReceiver,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> None:
        """``tls``: a client connection creator from ``http.tls.client_tls`` (None: plain)."""
        self.reactor = reactor
        self.address = address
        self.pool_settings = pool
        self.buffered_response_limit = pool.max_buffered_response_bytes  # (the shared int)
        self.pending = 0
        self._closed = False
        # the counters, not their bound ``incr``s: two bound methods were 128 bytes per
        # endpoint (issue 17); the call sites pay one attribute load
        self.sent_bytes = stats.counter("sent_bytes")
        self.received_bytes = stats.counter("received_bytes")
        self._resends = stats.counter("stale_connection_resends")
        self._pool = ConnectionPool(
            reactor,
            address,
            pool,
            HttpClientProtocol,  # called with this client (no bound method per endpoint)
            stats,
            connect_timeout_s,
            tls,
            owner=self,
        )

    @property
    def status(self) -> Status:
        if self._closed:
            return Status.CLOSED
        return Status.BUSY if self._pool.exhausted else Status.OPEN

    def __call__(self, request: Request) -> Deferred[Response]:
        if self._closed:
            return fail(
                ConnectionFailed(
                    f"client for {self.address.show()} is closed", address=self.address.show()
                )
            )
        conn = self._pool.take_idle()
        if conn is not None:
            return conn.send(request)
        self.pending += 1  # counted by the connection once it has one
        return self._pool.acquire().addBoth(self._connected, request)

    def _connected(
        self, conn: HttpClientProtocol | Failure, request: Request, may_resend: bool = True
    ) -> Deferred[Response] | Failure:
        self.pending -= 1
        if isinstance(conn, Failure):
            return conn
        if conn._exchanges == 0:  # a new connection
            _spare_connect_factories(conn.transport)
        return conn.send(request, may_resend)

    def _resend(self, request: Request) -> Deferred[Response]:
        """Send again a request whose reused connection closed before answering."""
        self._resends.incr()
        if self._closed:
            return fail(
                ConnectionReset(f"the connection to {self.address.show()} closed before responding")
            )
        self.pending += 1
        return self._pool.acquire().addBoth(self._connected, request, False)

    def close(self) -> Deferred[None]:
        """Stop taking requests; finish those in flight, then close every connection."""
        self._closed = True
        return self._pool.close()

    # connection callbacks
    def _connection_made(self, conn: HttpClientProtocol) -> None:
        options = self.pool_settings.socket_options
        if options:
            set_socket_options(conn.transport, options)

    def _connection_lost(self, conn: HttpClientProtocol) -> None:
        self._pool.lost(conn)

    def _release(self, conn: HttpClientProtocol) -> None:
        self._pool.release(conn)

    def __repr__(self) -> str:
        return f"EndpointClient({self.address.show()})"
