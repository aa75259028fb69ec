"""Reading HTTP/1 messages: httptools callbacks turned into head, body and end events.

One :class:`MessageReader` per connection, shared by the server (requests) and the client
(responses).  It is the object httptools calls back; it keeps the parse state of the
message being read (target or status, fields, framing fields, trailers, the size of the
head so far) and hands its owner three events:

* ``head()`` when the head is complete (the owner reads ``url``, ``fields``,
  ``content_length``, ``chunked``... from the reader and the method, status and version
  from ``reader.parser``).  httptools calls it directly (one Python call less per message
  on the hot path), so its first act is ``reader.in_head = False``;
* ``body(data)`` for body bytes the owner did not ask the reader to ``collect``;
* ``end()`` when the message is complete (``collect`` then holds a collected body, and
  ``trailers`` the trailer fields of a chunked one); also called directly by httptools.

Fields in ``dropped`` (hop-by-hop and framing fields) never reach ``fields``; the framing
ones are noted.  The head is bounded: the target (``max_line``) -> 414, the fields
(``max_head``) -> 431, both raised as :class:`ProtocolError` from the callback (httptools
wraps it in ``HttpParserCallbackError``), and a head that httptools still buffers is bounded
by the raw bytes read (:meth:`feed` returns True when it is over).  ``strict`` (requests):
two ``Host`` fields or a ``Transfer-Encoding`` not ending in chunked are refused with 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httptools

from l5d_twisted.http.stream import Trailers

Fields = list[tuple[bytes, bytes]]


def _ignore(*args: object) -> None:
    """A closed reader's callbacks."""


class ProtocolError(Exception):
    """Raised from a parser callback to refuse the message with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NO_FIELDS: Fields = []
"""Shared and never appended to: the fields of a reader between messages
(``on_message_begin`` gives every message a list of its own)."""


class MessageReader:
    """The parse state of one connection's incoming messages (see the module doc)."""

    __slots__ = (
        "parser",
        "on_headers_complete",
        "on_message_complete",
        "body",
        "dropped",
        "max_head",
        "max_line",
        "strict",
        "always_count",
        "keep_length",
        "count_head",
        "in_head",
        "began",
        "head_bytes",
        "partial_head",
        "body_bytes",
        "url",
        "fields",
        "conn_values",
        "content_length",
        "chunked",
        "expect",
        "host_at",
        "collect",
        "trailers",
    )

    # the owner's callbacks (set by reuse(); idle() and close() set harmless ones)
    on_headers_complete: Callable[[], None]
    on_message_complete: Callable[[], None]
    body: Callable[[bytes], None]

    def __init__(
        self,
        request: bool,
        dropped: frozenset[bytes],
        max_head: int,
        max_line: int,
        head: Callable[[], None],
        body: Callable[[bytes], None],
        end: Callable[[], None],
    ) -> None:
        """``request``: parse requests (strict, the head counted only when it can be too big);
        else responses (every head counted, as a response's limit also covers trailers)."""
        self.dropped = dropped
        self.strict = request
        self.always_count = not request
        self.parser: Any = None
        self.reuse(max_head, max_line, head, body, end)

    def new_parser(self) -> None:
        """A fresh parser (llhttp stops for good after an upgrade request)."""
        self.parser = (
            httptools.HttpRequestParser(self) if self.strict else httptools.HttpResponseParser(self)
        )

    def idle(self) -> None:
        """Between messages, for long (an idle pooled connection): drop the parser and the
        owner's callbacks; the owner sets the callbacks again, then :meth:`new_parser`,
        before the next message."""
        self.parser = None
        self.on_headers_complete = self.on_message_complete = _ignore
        self.body = _ignore

    def reuse(
        self,
        max_head: int,
        max_line: int,
        head: Callable[[], None],
        body: Callable[[bytes], None],
        end: Callable[[], None],
    ) -> None:
        """Start over, as a new reader of the same kind with these limits and callbacks:
        the constructor's second half, and how an idle response reader given back (see
        :func:`take_response_reader`) serves another connection."""
        # httptools looks its callbacks up on this object: the owner's head and end are
        # called without a hop through the reader
        self.on_headers_complete = head
        self.on_message_complete = end
        self.body = body
        self.max_head = max_head
        self.max_line = max_line
        self.keep_length = False  # keep Content-Length in ``fields`` (a HEAD's response)
        self.count_head = True
        self.in_head = not self.strict  # a client waits for a response head from the start
        self.began = False  # a message began during the current read
        self.head_bytes = 0  # of the head being parsed (completed fields)
        self.partial_head = 0  # raw bytes of it, while httptools still buffers a field
        self.body_bytes = 0  # body bytes read on this connection (for the body's pace)
        self.url = b""
        self.fields: Fields = NO_FIELDS
        self.conn_values: list[bytes] | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.expect = False
        self.host_at = -1  # where the Host field is in ``fields`` (-1: none yet)
        self.collect: list[bytes] | None = None
        self.trailers: Trailers | None = None
        self.new_parser()

    def close(self) -> None:
        """The connection is gone: drop the parser and the owner's callbacks.

        The parser holds this reader's callbacks and the reader holds the owner's, so
        without this a closed connection stays in reference cycles until a full garbage
        collection.  A parse running when the connection closes keeps its own parser.
        """
        self.parser = None
        self.on_headers_complete = self.on_message_complete = _ignore
        self.body = _ignore

    def feed(self, data: bytes) -> bool:
        """Parse ``data``; True if the head being read is over its bound (httptools errors propagate)."""
        # a request head can only be too large if this read, or the head it continues, is large
        self.count_head = self.always_count or self.in_head or len(data) > self.max_head
        self.began = False
        self.parser.feed_data(data)
        if not self.in_head:
            return False
        if self.began:
            # the head began in this read, after whatever earlier (pipelined) messages it
            # held: count the fields parsed so far, not the whole read (the unparsed tail is
            # at most one read, which bounds what httptools holds of it)
            self.partial_head = self.head_bytes + len(self.url)
        else:
            self.partial_head += len(data)
        if self.partial_head > self.max_head + self.max_line:
            return True
        if not self.count_head:  # the fields parsed so far were not counted
            self.head_bytes = self.partial_head
        return False

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        self.began = True
        self.host_at = -1
        self.head_bytes = 0
        self.partial_head = 0
        self.url = b""
        self.fields = []
        self.conn_values = None
        self.content_length = None
        self.chunked = False
        self.expect = False
        self.collect = None
        self.trailers = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_line:
            raise ProtocolError(414, "request target too long")

    def on_status(self, reason: bytes) -> None:
        self.head_bytes += len(reason)
        if len(reason) > self.max_line:
            raise ProtocolError(431, "status line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.count_head:
            self.head_bytes += len(name) + len(value) + 4
            if self.head_bytes > self.max_head:
                # trailers too: one limit per message
                raise ProtocolError(431, "request header fields too large")
        if not self.in_head:  # a trailer field of a chunked body
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))
            return
        lname = name.lower()
        if lname in self.dropped:
            if lname == b"connection":
                if self.conn_values is None:
                    self.conn_values = []
                self.conn_values.append(value)
            elif lname == b"content-length":
                self.content_length = int(value)
                if self.keep_length:
                    self.fields.append((name, value))  # describes the GET's body
            elif lname == b"transfer-encoding":
                # only "chunked" last frames a request (RFC 9112 §6.3); llhttp refuses the rest
                # but only after this head was handed on, so refuse it here first
                if self.strict and (
                    value.rsplit(b",", 1)[-1].strip().lower() != b"chunked" or self.chunked
                ):
                    raise ProtocolError(400, "unsupported Transfer-Encoding")
                self.chunked = True
            elif lname == b"expect":
                self.expect = value.lower() == b"100-continue"
            return
        if lname == b"host" and self.strict:
            if self.host_at >= 0:  # RFC 9112 §3.2: which one names the target is ambiguous
                raise ProtocolError(400, "more than one Host header")
            self.host_at = len(self.fields)
        self.fields.append((name, value))

    def on_body(self, data: bytes) -> None:
        self.body_bytes += len(data)
        collect = self.collect
        if collect is not None:
            collect.append(data)
        else:
            self.body(data)


# Idle response readers, for the next connection that sends a request.  A pooled upstream
# connection holds its reader only while an exchange is on it: with thousands of names
# each keeping a warm connection, a reader per idle connection was 232 bytes per name
# (issue 17).  At most this many wait here: about the exchanges in flight at once.
MAX_IDLE_READERS = 256
_idle_response_readers: list[MessageReader] = []


def take_response_reader(
    dropped: frozenset[bytes],
    max_head: int,
    max_line: int,
    head: Callable[[], None],
    body: Callable[[bytes], None],
    end: Callable[[], None],
) -> MessageReader:
    """A response reader with these settings: an idle one given back, else a new one."""
    idle = _idle_response_readers
    if idle:
        reader = idle.pop()
        if reader.dropped is dropped:
            reader.reuse(max_head, max_line, head, body, end)
            return reader
    return MessageReader(False, dropped, max_head, max_line, head, body, end)


def give_back_response_reader(reader: MessageReader) -> None:
    """``reader`` (idle: see :meth:`MessageReader.idle`, and no parse of it running) may
    serve another connection."""
    if len(_idle_response_readers) < MAX_IDLE_READERS and not reader.strict:
        _idle_response_readers.append(reader)
