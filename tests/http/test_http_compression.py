"""``routers[].compressionLevel``: linkerd 1's gzip of responses for clients that accept it,
read back with a real gzip decoder (buffered and streamed bodies, and a real router)."""

from __future__ import annotations

import gzip
import socket
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port
from twisted.internet import defer

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.compression import CompressionFilter, accepts_gzip, is_textual
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.service import Service

TEXT = b"hello world, " * 200


class _Backend(Service[Request, Response]):
    def __init__(self, response: Response) -> None:
        self.response = response

    def __call__(self, request: Request) -> defer.Deferred[Response]:
        return defer.succeed(self.response)


def _through(
    level: int,
    response: Response,
    accept: bytes | None = b"gzip, deflate",
    method: bytes = b"GET",
) -> Response:
    headers = Headers([(b"Host", b"x")] + ([(b"Accept-Encoding", accept)] if accept else []))
    results: list[Response] = []
    CompressionFilter(level).and_then(_Backend(response))(
        Request(method, b"/", headers)
    ).addCallback(results.append)
    return results[0]


def _text(content_type: bytes = b"text/plain; charset=utf-8", status: int = 200) -> Response:
    return Response(status, Headers([(b"Content-Type", content_type)]), BufferedBody(TEXT))


def test_default_compresses_textual_responses_with_gzip() -> None:
    out = _through(-1, _text())
    assert out.headers.get(b"content-encoding") == b"gzip"
    assert isinstance(out.body, BufferedBody)
    assert gzip.decompress(out.body.data) == TEXT
    assert out.body.length is not None and out.body.length < len(TEXT) / 5
    # level 6 as linkerd 1's default: the same bytes zlib makes at 6
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    assert zlib.decompress(out.body.data, 31) == TEXT
    assert len(out.body.data) == len(compressor.compress(TEXT) + compressor.flush())


def test_a_compressed_response_varies_on_accept_encoding() -> None:
    assert _through(-1, _text()).headers.get_all(b"vary") == [b"Accept-Encoding"]
    kept = _text()
    kept.headers.add(b"Vary", b"Origin")
    assert _through(-1, kept).headers.get_all(b"vary") == [b"Origin, Accept-Encoding"]
    already = _text()
    already.headers.add(b"Vary", b"accept-encoding")
    assert _through(-1, already).headers.get_all(b"vary") == [b"accept-encoding"]
    # Not compressed (no Accept-Encoding from the client): no Vary added by the mesh.
    assert _through(-1, _text(), accept=None).headers.get_all(b"vary") == []


def test_default_leaves_binary_types_alone_and_levels_1_9_compress_all() -> None:
    assert _through(-1, _text(b"image/png")).headers.get(b"content-encoding") is None
    out = _through(9, _text(b"image/png"))
    assert out.headers.get(b"content-encoding") == b"gzip"
    assert isinstance(out.body, BufferedBody)
    assert gzip.decompress(out.body.data) == TEXT


@pytest.mark.parametrize(
    ("accept", "method", "status", "encoded"),
    [
        (None, b"GET", 200, False),  # no Accept-Encoding
        (b"deflate", b"GET", 200, False),  # gzip not accepted
        (b"gzip;q=0, *", b"GET", 200, False),
        (b"br, *;q=0.5", b"GET", 200, True),  # * covers gzip
        (b"x-gzip", b"GET", 200, True),
        (b"gzip", b"HEAD", 200, False),
        (b"gzip", b"GET", 204, False),
        (b"gzip", b"GET", 304, False),
    ],
)
def test_only_when_the_client_accepts_it_and_a_body_may_follow(
    accept: bytes | None, method: bytes, status: int, encoded: bool
) -> None:
    out = _through(-1, _text(status=status), accept=accept, method=method)
    assert (out.headers.get(b"content-encoding") == b"gzip") is encoded
    assert isinstance(out.body, BufferedBody)
    assert (out.body.data != TEXT) is encoded


def test_an_encoded_response_is_not_compressed_again() -> None:
    already = gzip.compress(TEXT)
    response = Response(
        200,
        Headers([(b"Content-Type", b"text/plain"), (b"Content-Encoding", b"gzip")]),
        BufferedBody(already),
    )
    out = _through(9, response)
    assert isinstance(out.body, BufferedBody) and out.body.data == already
    assert out.headers.get_all(b"content-encoding") == [b"gzip"]


def test_level_0_installs_nothing() -> None:
    from l5d_twisted.http.compression import compression_filter

    assert compression_filter(0) is None
    assert compression_filter(-1) is not None


def test_a_stream_is_compressed_chunk_by_chunk_with_backpressure() -> None:
    upstream = StreamBody()
    response = Response(200, Headers([(b"Content-Type", b"text/event-stream")]), upstream)
    out = _through(-1, response)
    assert out.headers.get(b"content-encoding") == b"gzip"
    body = out.body
    assert isinstance(body, StreamBody) and body.length is None
    received: list[bytes] = []

    class Sink:
        ended = False

        def body_data(self, data: bytes) -> None:
            received.append(data)

        def body_end(self, trailers: Any) -> None:
            Sink.ended = True

        def body_error(self, reason: BaseException) -> None:
            raise AssertionError(reason)

    body.consume(Sink())
    decoder = zlib.decompressobj(31)
    upstream.write(b"data: one\n\n")
    # each chunk reaches the client at once (flushed), decodable without the rest
    assert decoder.decompress(b"".join(received)) == b"data: one\n\n"
    received.clear()
    body.pause()  # the client stops reading: the upstream is paused too
    assert upstream._consumer_paused
    body.resume()
    upstream.write(b"data: two\n\n")
    upstream.finish()
    assert Sink.ended
    assert decoder.decompress(b"".join(received)) == b"data: two\n\n"
    assert decoder.eof


def test_a_discarded_compressed_stream_discards_the_upstream() -> None:
    upstream = StreamBody()
    out = _through(5, Response(200, Headers(), upstream))
    out.body.discard()
    assert upstream.complete  # told to stop


def test_accept_encoding_and_textual_parsing() -> None:
    assert accepts_gzip(b"gzip") and accepts_gzip(b"deflate, GZIP;q=0.1")
    assert not accepts_gzip(b"identity") and not accepts_gzip(b"gzip;q=0.0")
    assert is_textual(b"application/json; charset=utf-8") and is_textual(b"TEXT/HTML")
    assert not is_textual(b"application/octet-stream")


def test_config_default_range() -> None:
    assert load_config("routers:\n- protocol: http\n").routers[0].compression_level == -1
    assert load_config("routers:\n- compressionLevel: 9\n").routers[0].compression_level == 9
    with pytest.raises(ConfigErrors) as e:
        load_config("routers:\n- compressionLevel: 10\n")
    assert "compressionLevel" in str(e.value)


def test_a_real_router_gzips_for_clients_that_accept_it(
    processes: Processes, tmp_path: Path
) -> None:
    backend_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    backend = tmp_path / "backend.py"
    backend.write_text(
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    protocol_version = 'HTTP/1.1'\n"
        "    def do_GET(self):\n"
        f"        body = {TEXT!r}\n"
        "        self.send_response(200); self.send_header('Content-Type', 'text/plain')\n"
        "        if self.path == '/chunked':\n"
        "            self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()\n"
        "            for part in (body[:100], body[100:]):\n"
        "                self.wfile.write(b'%x\\r\\n%s\\r\\n' % (len(part), part))\n"
        "            self.wfile.write(b'0\\r\\n\\r\\n'); return\n"
        "        self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    processes.start(sys.executable, str(backend), str(backend_port), name="backend")
    config = tmp_path / "l.yaml"
    config.write_text(
        f"admin: {{ip: 127.0.0.1, port: {admin_port}}}\n"
        "routers:\n- protocol: http\n"
        f"  dtab: /svc/web => /$/inet/127.0.0.1/{backend_port};\n"
        f"  servers:\n  - ip: 127.0.0.1\n    port: {proxy_port}\n"
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", backend_port)
    wait_for_port("127.0.0.1", proxy_port)

    def get(path: str, accept: str | None) -> tuple[bytes, bytes]:
        head = f"GET {path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n"
        if accept:
            head += f"Accept-Encoding: {accept}\r\n"
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
            s.sendall((head + "\r\n").encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        fields, _, body = data.partition(b"\r\n\r\n")
        return fields.lower(), body

    fields, body = get("/", "gzip")
    assert b"content-encoding: gzip" in fields
    length = int(fields.split(b"content-length: ")[1].split(b"\r\n")[0])
    assert length == len(body) < len(TEXT)
    assert gzip.decompress(body) == TEXT
    fields, body = get("/", None)
    assert b"content-encoding" not in fields and body == TEXT
    fields, body = get("/chunked", "gzip")
    assert b"content-encoding: gzip" in fields and b"transfer-encoding: chunked" in fields
    decoded, rest = b"", body
    while True:  # de-chunk, then a real gzip decoder
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        decoded, rest = decoded + rest[:size], rest[size + 2 :]
    assert gzip.decompress(decoded) == TEXT
