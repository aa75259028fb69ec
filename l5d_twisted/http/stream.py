"""Streaming bodies: bytes flowing from one connection to another with backpressure.

A :class:`StreamBody` has two sides.

* The **source** (the connection parsing the body off the wire) calls ``write``,
  ``finish`` and ``fail``.  It registers itself as a :class:`BodySource` so the stream can
  pause and resume its transport, and tell it when nobody wants the rest (``abort_body``).
* The **consumer** (the connection writing the body onward, or code that wants all of it)
  calls ``consume(sink)`` once and then ``pause``/``resume`` as its own transport's write
  buffer fills and drains (it is that transport's push producer).

Until a consumer attaches, data is buffered; above ``HIGH_WATER`` buffered bytes the source
is paused, so memory stays bounded whatever the body size.  A stream is never replayable:
layers that retry check ``body.replayable`` first.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from l5d_twisted.http.body import Body, BufferedBody

Trailers = list[tuple[bytes, bytes]]

HIGH_WATER = 64 * 1024
"""Buffered bytes above which the source is paused until the consumer catches up."""


class BodySource(Protocol):
    """The connection feeding a stream."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...

    def abort_body(self) -> None:
        """The consumer discarded the stream: stop sending (close or drain the connection)."""


class BodySink(Protocol):
    """Where a consumed stream's data goes."""

    def body_data(self, data: bytes) -> None: ...

    def body_end(self, trailers: Trailers | None) -> None: ...

    def body_error(self, reason: BaseException) -> None: ...


class BodyTooLarge(Exception):
    pass


class _DiscardSink:
    __slots__ = ()

    def body_data(self, data: bytes) -> None:
        pass

    def body_end(self, trailers: Trailers | None) -> None:
        pass

    def body_error(self, reason: BaseException) -> None:
        pass


_DISCARD = _DiscardSink()


class StreamBody(Body):
    """A body of unknown or large size, delivered chunk by chunk."""

    replayable = False

    __slots__ = (
        "length",
        "_source",
        "_sink",
        "_buffer",
        "_buffered",
        "_consumer_paused",
        "_source_paused",
        "_ended",
        "_trailers",
        "_error",
        "_delivered",
    )

    def __init__(self, source: BodySource | None = None, length: int | None = None) -> None:
        self.length = length
        self._source = source
        self._sink: BodySink | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._consumer_paused = False
        self._source_paused = False
        self._ended = False  # the source has finished or failed
        self._trailers: Trailers | None = None
        self._error: BaseException | None = None
        self._delivered = False  # end or error handed to the sink

    # -- state ---------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """The source has sent everything (or failed)."""
        return self._ended

    @property
    def consumed(self) -> bool:
        return self._sink is not None

    @property
    def error(self) -> BaseException | None:
        """Why the source failed (None while it has not, or when it finished whole)."""
        return self._error

    # -- source side ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._ended or not data:
            return
        sink = self._sink
        if sink is not None and not self._consumer_paused and not self._buffer:
            sink.body_data(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._source_paused:
            self._pause_source()

    def finish(self, trailers: Trailers | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._trailers = trailers
        self._source_paused = False  # the source no longer cares; it resets its own transport
        self._source = None
        self._flush()

    def fail(self, reason: BaseException) -> None:
        """The source broke: the consumer must not present what it got as complete."""
        if self._ended:
            return
        self._ended = True
        self._error = reason
        self._buffer = []
        self._buffered = 0
        self._source_paused = False
        self._source = None
        sink = self._sink
        if sink is not None and not self._delivered:
            self._delivered = True
            self._sink = _DISCARD  # (see _flush)
            sink.body_error(reason)

    # -- consumer side -------------------------------------------------------------------

    def consume(self, sink: BodySink) -> None:
        if self._sink is not None:
            raise RuntimeError("stream body consumed twice")
        self._sink = sink
        self._flush()

    def pause(self) -> None:
        self._consumer_paused = True
        if not self._ended and not self._source_paused:
            self._pause_source()

    def resume(self) -> None:
        self._consumer_paused = False
        self._flush()

    def discard(self) -> None:
        """Nobody wants the rest: drop it and tell the source to stop."""
        if self._sink is None or self._sink is not _DISCARD:
            self._sink = _DISCARD
        self._buffer = []
        self._buffered = 0
        self._delivered = True
        if not self._ended:
            self._ended = True
            self._error = BodyDiscarded()
            source = self._source
            self._source = None
            if source is not None:
                source.abort_body()

    def read_all(self, max_bytes: int | None = None) -> Deferred[BufferedBody]:
        """Collect the whole body (for small bodies, apps and tests)."""
        collector = _Collector(self, max_bytes)
        self.consume(collector)
        return collector.deferred

    # -- internals -----------------------------------------------------------------------

    def _pause_source(self) -> None:
        self._source_paused = True
        if self._source is not None:
            self._source.pause_body()

    def _flush(self) -> None:
        sink = self._sink
        if sink is None:
            return
        while self._buffer and not self._consumer_paused:
            data = self._buffer.pop(0)
            self._buffered -= len(data)
            sink.body_data(data)
            if self._sink is not sink:  # discarded while delivering
                return
        if self._buffer or self._consumer_paused:
            return
        if self._ended:
            if not self._delivered:
                self._delivered = True
                # done with the sink: it (a pipe to a connection) holds this stream, and
                # the connections at both ends must not wait in that cycle for a full GC
                self._sink = _DISCARD
                if self._error is not None:
                    sink.body_error(self._error)
                else:
                    sink.body_end(self._trailers)
        elif self._source_paused:
            self._source_paused = False
            if self._source is not None:
                self._source.resume_body()

    def __repr__(self) -> str:
        return f"StreamBody(length={self.length}, ended={self._ended})"


class BodyDiscarded(Exception):
    """The consumer of a stream discarded it."""


class _Collector:
    def __init__(self, stream: StreamBody, max_bytes: int | None) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.deferred: Deferred[BufferedBody] = Deferred(lambda d: stream.discard())

    def body_data(self, data: bytes) -> None:
        self.size += len(data)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.stream.discard()
            if not self.deferred.called:
                self.deferred.errback(BodyTooLarge(f"body larger than {self.max_bytes} bytes"))
            return
        self.parts.append(data)

    def body_end(self, trailers: Trailers | None) -> None:
        if not self.deferred.called:
            self.deferred.callback(BufferedBody(b"".join(self.parts), trailers))

    def body_error(self, reason: BaseException) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


def read_body(body: Body, max_bytes: int | None = None) -> Deferred[BufferedBody]:
    """Any body as a ``BufferedBody`` (immediately for buffered ones)."""
    if isinstance(body, StreamBody):
        return body.read_all(max_bytes)
    if isinstance(body, BufferedBody):
        d: Deferred[BufferedBody] = Deferred()
        d.callback(body)
        return d
    d2: Deferred[BufferedBody] = Deferred()
    d2.callback(BufferedBody(b""))
    return d2
