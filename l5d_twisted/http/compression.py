"""``routers[].compressionLevel``: gzip of responses for clients that accept it (linkerd 1's).

linkerd 1 (Finagle's HTTP server) compressed responses on the way to the client:

* ``-1`` (the default): textual content types only (``text/*``, JSON, JavaScript, XML,
  XHTML, Atom, RSS, SVG), at zlib's level 6;
* ``1`` to ``9``: every response, at that level;
* ``0``: never (no filter in the stack).

A response is compressed only when the request's ``Accept-Encoding`` accepts gzip (``gzip``
or ``x-gzip`` or ``*`` with a non-zero q), the request is not HEAD, the status may have a body
(not 1xx, 204, 304) and the response carries no ``Content-Encoding`` of its own (other than
``identity``).  It then gets ``Content-Encoding: gzip`` and its length becomes the
compressed one (a buffered body) or unknown (a stream: chunked to HTTP/1.1 clients).

Streams are compressed chunk by chunk as they flow, each chunk flushed (``Z_SYNC_FLUSH``) so
a slow stream (server-sent events) reaches the client as it is produced; backpressure goes
through to the upstream connection.  The compressor of a stream keeps a 8 KB window and
small tables (about 24 KB per response in flight, instead of zlib's default 256 KB), so the
memory stays bounded by the responses in flight.  Only gzip: a client that accepts
``deflate`` alone gets the response as it is (Netty also offered deflate).
"""

from __future__ import annotations

import zlib
from typing import Any

from twisted.internet.defer import Deferred

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.stream import StreamBody, Trailers
from l5d_twisted.service import Filter, Service

AUTOMATIC = -1
AUTOMATIC_LEVEL = 6  # Netty's (and zlib's) default

_TEXT_LIKE = frozenset(
    {
        b"application/json",
        b"application/javascript",
        b"application/x-javascript",
        b"application/xml",
        b"application/xhtml+xml",
        b"application/atom+xml",
        b"application/rss+xml",
        b"image/svg+xml",
    }
)
_STREAM_WBITS = 16 + 13  # gzip wrapper, 8 KB window
_STREAM_MEM_LEVEL = 4


def is_textual(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind.startswith(b"text/") or kind in _TEXT_LIKE


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Does an ``Accept-Encoding`` value accept gzip (RFC 9110 12.5.3)?"""
    gzip_q: float | None = None
    any_q: float | None = None
    for item in accept_encoding.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding in (b"gzip", b"x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == b"*":
            any_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


class _GzipSink:
    """Consumes the upstream stream, writes its compressed chunks into ``out``."""

    __slots__ = ("out", "compressor")

    def __init__(self, out: StreamBody, level: int) -> None:
        self.out = out
        self.compressor: Any = zlib.compressobj(
            level, zlib.DEFLATED, _STREAM_WBITS, _STREAM_MEM_LEVEL
        )

    def body_data(self, data: bytes) -> None:
        self.out.write(self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH))

    def body_end(self, trailers: Trailers | None) -> None:
        self.out.write(self.compressor.flush(zlib.Z_FINISH))
        self.compressor = None
        self.out.finish(trailers)

    def body_error(self, reason: BaseException) -> None:
        self.compressor = None
        self.out.fail(reason)


class _Upstream:
    """The compressed stream's source: the upstream stream (pause, resume, discard)."""

    __slots__ = ("stream",)

    def __init__(self, stream: StreamBody) -> None:
        self.stream = stream

    def pause_body(self) -> None:
        self.stream.pause()

    def resume_body(self) -> None:
        self.stream.resume()

    def abort_body(self) -> None:
        self.stream.discard()


def gzip_stream(stream: StreamBody, level: int) -> StreamBody:
    out = StreamBody(_Upstream(stream))
    stream.consume(_GzipSink(out, level))
    return out


class CompressionFilter(Filter[Request, Response]):
    def __init__(self, level: int) -> None:
        self.textual_only = level == AUTOMATIC
        self.level = AUTOMATIC_LEVEL if level == AUTOMATIC else level

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        accept = request.headers.get(b"accept-encoding")
        if accept is None or request.method == b"HEAD" or not accepts_gzip(accept):
            return service(request)
        return service(request).addCallback(self._compressed)

    def _compressed(self, response: Response) -> Response:
        status = response.status
        if status < 200 or status in (204, 304):
            return response
        headers = response.headers
        encoding = headers.get(b"content-encoding")
        if encoding is not None and encoding.strip().lower() != b"identity":
            return response
        if self.textual_only and not is_textual(headers.get(b"content-type") or b""):
            return response
        body = response.body
        if isinstance(body, BufferedBody):
            if not body.data:
                return response
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, 16 + 15)
            data = compressor.compress(body.data) + compressor.flush()
            response.body = BufferedBody(data, body.trailers)
        elif isinstance(body, StreamBody) and not body.consumed:
            if body.length == 0:
                return response
            response.body = gzip_stream(body, self.level)
        else:
            return response
        headers.remove(b"content-encoding")
        headers.remove(b"content-length")
        headers.add(b"Content-Encoding", b"gzip")
        # The answer now depends on Accept-Encoding: a shared cache between the mesh and its
        # clients must not hand this gzip body to a client that did not ask for it (RFC 9110
        # 12.5.5).
        vary = b", ".join(headers.remove(b"vary"))
        tokens = {t.strip().lower() for t in vary.split(b",")}
        if b"*" not in tokens and b"accept-encoding" not in tokens:
            vary = vary + b", Accept-Encoding" if vary.strip() else b"Accept-Encoding"
        headers.add(b"Vary", vary)
        return response


def compression_filter(level: int) -> CompressionFilter | None:
    """The filter for a router's ``compressionLevel`` (None for 0: no compression)."""
    return CompressionFilter(level) if level != 0 else None
