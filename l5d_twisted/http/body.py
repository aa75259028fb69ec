"""Message bodies.

A body is either buffered (``BufferedBody``: all bytes known, replayable, what retries
need) or a stream owned by the HTTP data plane (``http.stream``), flowing with
backpressure from one connection to another.  Layers outside ``http`` only use:

* ``body.replayable``: can this body be sent again (a retry)?
* ``body.length``: the Content-Length if known, else ``None``.
* ``body.discard()``: the receiver does not want it (e.g. a failed attempt's response).
"""

from __future__ import annotations


class Body:
    replayable = False
    length: int | None = None

    def discard(self) -> None:
        pass


class BufferedBody(Body):
    __slots__ = ("data", "trailers")
    replayable = True

    def __init__(
        self, data: bytes = b"", trailers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.data = data
        self.trailers = trailers

    @property
    def length(self) -> int | None:  # type: ignore[override]
        return len(self.data)

    def __repr__(self) -> str:
        return f"BufferedBody({len(self.data)} bytes)"


EMPTY_BODY = BufferedBody(b"")
