"""Writing HTTP/1.1 messages: heads in one write, bodies with their framing and backpressure.

The writer owns the framing: it never copies ``Content-Length``, ``Transfer-Encoding`` or
connection fields from the message (see ``hop.NOT_WRITTEN``) and chooses one of

* ``NONE``: no body at all (HEAD responses, 1xx/204/304, bodiless requests);
* ``LENGTH``: ``Content-Length`` from ``body.length`` (buffered bodies: head and body in one
  write);
* ``CHUNKED``: unknown length towards an HTTP/1.1 peer, or trailers to send;
* ``CLOSE``: unknown length towards an HTTP/1.0 client: the body ends when the connection
  closes.

A streamed body is piped by :class:`BodyPipe`, which is registered as the destination
transport's push producer: when the transport's buffer fills, the stream's source
connection is paused, so memory is bounded whatever the body size.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from http import HTTPStatus
from typing import Any

from l5d_twisted.http.body import Body, BufferedBody
from l5d_twisted.http.hop import NOT_WRITTEN
from l5d_twisted.http.message import Headers
from l5d_twisted.http.stream import StreamBody, Trailers


class Framing(IntEnum):
    """How a message body is delimited on the wire (see the module doc)."""

    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    CLOSE = 3


# module-level names: one global lookup on the hot path instead of an enum attribute
NONE = Framing.NONE
LENGTH = Framing.LENGTH
CHUNKED = Framing.CHUNKED
CLOSE = Framing.CLOSE

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


_STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in REASONS.items()
}


def status_line(status: int, reason: bytes = b"") -> bytes:
    if not reason:
        line = _STATUS_LINES.get(status)
        if line is not None:
            return line
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b"Unknown"))


def body_allowed_for_status(status: int) -> bool:
    return not (status < 200 or status == 204 or status == 304)


def encode_fields(
    parts: list[bytes], headers: Headers, skip: frozenset[bytes] = NOT_WRITTEN
) -> bool:
    """Append ``name: value\\r\\n`` for every field not in ``skip``; True if one was Host."""
    append = parts.append
    has_host = False
    for name, value in headers._items:
        lname = name.lower()
        if lname in skip:
            continue
        if lname == b"host":
            has_host = True
        append(b"%s: %s\r\n" % (name, value))
    return has_host


def body_length(body: Any) -> int | None:
    if isinstance(body, BufferedBody):
        return len(body.data)
    if isinstance(body, StreamBody):
        return body.length
    if isinstance(body, Body):
        return body.length if body.length is not None else 0
    return 0


def choose_framing(body: Any, chunked_ok: bool) -> Framing:
    """How to frame a body that is allowed to exist."""
    if isinstance(body, BufferedBody):
        if body.trailers and chunked_ok:
            return CHUNKED
        return LENGTH
    if isinstance(body, StreamBody):
        if body.length is not None:
            return LENGTH
        return CHUNKED if chunked_ok else CLOSE
    return LENGTH


def framing_field(framing: Framing, body: Any) -> bytes:
    if framing is LENGTH:
        return b"Content-Length: %d\r\n" % (body_length(body) or 0)
    if framing is CHUNKED:
        return b"Transfer-Encoding: chunked\r\n"
    return b""


def encode_trailers(trailers: Trailers | None) -> bytes:
    if not trailers:
        return LAST_CHUNK
    parts = [b"0\r\n"]
    for name, value in trailers:
        parts.append(name + b": " + value + CRLF)
    parts.append(CRLF)
    return b"".join(parts)


def send_body(
    transport: Any,
    head: bytes,
    body: Any,
    framing: Framing,
    on_done: Callable[[bool], None],
    count: Callable[[int], None] | None = None,
    write: Callable[[bytes], None] | None = None,
) -> BodyPipe | None:
    """Write ``head`` (which already holds the framing fields) and then ``body``.

    ``on_done(ok)`` is called once: ``ok`` False means the body could not be sent whole
    (its source failed, or the destination went away) and the connection must be aborted,
    never reused.  Returns the pipe for a streamed body (so its owner can stop it).
    ``write`` replaces ``transport.write`` (see ``http.fastwrite``).
    """
    if write is None:
        write = transport.write
    if framing is NONE:
        write(head)
        if count is not None:
            count(len(head))
        if isinstance(body, StreamBody):
            body.discard()
        on_done(True)
        return None
    if isinstance(body, StreamBody):
        write(head)
        if count is not None:
            count(len(head))
        pipe = BodyPipe(transport, body, framing, on_done, count, write)
        transport.registerProducer(pipe, True)
        if not pipe.done:
            body.consume(pipe)
        return pipe
    data = body.data if isinstance(body, BufferedBody) else b""
    if framing is CHUNKED:
        trailers = body.trailers if isinstance(body, BufferedBody) else None
        if data:
            out = b"".join((head, b"%x\r\n" % len(data), data, CRLF, encode_trailers(trailers)))
        else:
            out = head + encode_trailers(trailers)
    else:
        out = head + data if data else head
    write(out)
    if count is not None:
        count(len(out))
    on_done(True)
    return None


class BodyPipe:
    """Copies a stream onto a transport with framing; the transport's push producer."""

    __slots__ = ("transport", "body", "framing", "on_done", "count", "remaining", "done", "write")

    def __init__(
        self,
        transport: Any,
        body: StreamBody,
        framing: Framing,
        on_done: Callable[[bool], None],
        count: Callable[[int], None] | None,
        write: Callable[[bytes], None] | None = None,
    ) -> None:
        self.transport = transport
        self.write = write if write is not None else transport.write
        self.body = body
        self.framing = framing
        self.on_done = on_done
        self.count = count
        self.remaining = body.length if framing is LENGTH else None
        self.done = False

    # BodySink
    def body_data(self, data: bytes) -> None:
        if self.done:
            return
        n = len(data)
        if self.framing is CHUNKED:
            self.write(b"".join((b"%x\r\n" % n, data, CRLF)))
        else:
            if self.remaining is not None:
                self.remaining -= n
                if self.remaining < 0:  # the source sent more than it promised
                    self._finish(False)
                    self.body.discard()
                    return
            self.write(data)
        if self.count is not None:
            self.count(n)

    def body_end(self, trailers: Trailers | None) -> None:
        if self.done:
            return
        if self.framing is CHUNKED:
            self.write(encode_trailers(trailers))
        elif self.remaining:  # shorter than its Content-Length: not a complete message
            self._finish(False)
            return
        self._finish(True)

    def body_error(self, reason: BaseException) -> None:
        self._finish(False)

    # IPushProducer (for the destination transport)
    def pauseProducing(self) -> None:
        if not self.done:
            self.body.pause()

    def resumeProducing(self) -> None:
        if not self.done:
            self.body.resume()

    def stopProducing(self) -> None:
        """The destination went away."""
        if not self.done:
            self._finish(False)
            self.body.discard()

    def stop(self) -> None:
        """Its owner gives up on the transfer (same as the destination going away)."""
        self.stopProducing()

    def _finish(self, ok: bool) -> None:
        self.done = True
        try:
            self.transport.unregisterProducer()
        except Exception:  # already unregistered by a lost connection
            pass
        self.on_done(ok)
