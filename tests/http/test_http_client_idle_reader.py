"""An idle pooled upstream connection holds no response reader (issue 17: 232 bytes per
warm connection, i.e. per name); it gives its reader back once a read ends its exchange,
and the next connection to send takes it, reset to that connection's own limits."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from l5d_twisted.errors import UpstreamProtocolError
from l5d_twisted.http import reader as reader_module
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol, PoolSettings
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.http.stream import read_body
from l5d_twisted.naming.addr import Address
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor

# a response head of ~3 KB: within the default 8 KB limit, over a 2 KB one
BIG_HEAD = b"X-Big: " + b"b" * 3000


class _Backend(Protocol):
    """Answers ``/big`` with a large head and a trailer-carrying chunked body, the rest
    with a plain 200 naming the path (so a stale parse state would show)."""

    transport: Any

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        for head in data.split(b"\r\n\r\n")[:-1]:
            path = head.split(b" ", 2)[1]
            if path == b"/big":
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\n" + BIG_HEAD + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nbig\r\n0\r\nX-Trailer: t\r\n\r\n"
                )
            else:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path)
                )


def _request(path: bytes) -> Request:
    return Request(b"GET", path, Headers([(b"Host", b"backend")]))


def _idle_connections(client: EndpointClient) -> list[HttpClientProtocol]:
    return list(client._pool._idle)


async def _read_returned() -> None:
    """Let the read that delivered a body return: a body's end wakes its reader inside
    that read, before the connection finishes the exchange (no timing: one reactor turn)."""
    await deferLater(reactor, 0, lambda: None)


@pytest.fixture
def idle_readers() -> Any:
    """The module's idle readers, emptied for the test and restored after it."""
    saved = list(reader_module._idle_response_readers)
    reader_module._idle_response_readers.clear()
    yield reader_module._idle_response_readers
    reader_module._idle_response_readers[:] = saved


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_gives_its_reader_to_the_next_one(idle_readers: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(_Backend), interface="127.0.0.1")
    address = Address("127.0.0.1", port.getHost().port)
    roomy = EndpointClient(reactor, address, PoolSettings(), NULL_STATS)
    strict = EndpointClient(reactor, address, PoolSettings(max_headers_kb=2), NULL_STATS)
    try:
        response = await roomy(_request(b"/big"))
        body = await read_body(response.body)
        assert (body.data, body.trailers) == (b"big", [(b"X-Trailer", b"t")])
        await _read_returned()
        [conn] = _idle_connections(roomy)
        assert conn._reader is None, "an idle pooled connection keeps its reader"
        [given_back] = idle_readers

        # the strict client's first connection takes that reader, with its own 2 KB limit
        with pytest.raises(UpstreamProtocolError, match="larger than 2 KB"):
            await strict(_request(b"/big"))
        assert given_back not in idle_readers  # taken (and closed with its connection)

        # the roomy connection, reused, reads a plain response: no state left from /big
        response = await roomy(_request(b"/plain"))
        assert response.status == 200
        assert (await read_body(response.body)).data == b"/plain"
        await _read_returned()
        assert _idle_connections(roomy) == [conn] and conn._reader is None
        assert len(idle_readers) == 1
    finally:
        await roomy.close()
        await strict.close()
        await port.stopListening()


def _reader(request: bool) -> reader_module.MessageReader:
    return reader_module.MessageReader(
        request, frozenset(), 1024, 1024, lambda: None, lambda _: None, lambda: None
    )


def test_readers_kept_idle_are_bounded_and_only_response_readers(idle_readers: Any) -> None:
    reader_module.give_back_response_reader(_reader(request=True))
    assert idle_readers == [], "a request reader is never handed to a client connection"
    for _ in range(reader_module.MAX_IDLE_READERS + 5):
        reader_module.give_back_response_reader(_reader(request=False))
    assert len(idle_readers) == reader_module.MAX_IDLE_READERS
