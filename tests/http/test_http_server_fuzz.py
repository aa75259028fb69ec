"""Whatever bytes arrive, the server answers or closes; it never raises or hangs half-way."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS

PIECES = [
    b"GET / HTTP/1.1\r\n",
    b"POST /x HTTP/1.1\r\n",
    b"HEAD / HTTP/1.0\r\n",
    b"Host: a\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 40000\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Connection: upgrade\r\nUpgrade: x\r\n",
    b"Expect: 100-continue\r\n",
    b"\r\n",
    b"abc",
    b"3\r\nabc\r\n",
    b"0\r\n\r\n",
    b" \t",
    b"\x00\xff",
    b"\n",
]


def echo(request: Request) -> object:
    body = request.body
    if isinstance(body, StreamBody):
        return succeed(Response(200, body=body))
    return succeed(Response(200, body=BufferedBody(b"ok")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=20)), max_size=14),
    split=st.integers(min_value=1, max_value=64),
)
def test_arbitrary_input_never_breaks_the_server(pieces: list[bytes], split: int) -> None:
    clock = Clock()
    server = HttpServer(
        clock,
        FunctionService(echo),
        ServerSettings(max_buffered_body_kb=1, header_read_timeout_s=1, idle_timeout_s=2),
        NULL_STATS,
    )
    proto = server.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    data = b"".join(pieces)
    for i in range(0, len(data), split):
        proto.dataReceived(data[i : i + split])  # must not raise
    clock.advance(3)  # timeouts settle whatever was left half-way
    out = transport.value()
    assert out == b"" or out.startswith(b"HTTP/1.1 ")
    # every connection ends up closed or idle and answered in whole responses
    assert transport.disconnecting or transport.disconnected or not proto._reader.in_head
