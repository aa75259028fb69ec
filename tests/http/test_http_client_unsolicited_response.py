"""A backend that answers one request with two responses (a second, unasked one in the
same read) must not have that second response handed to the next request on the pooled
connection: response desynchronisation would give one caller another's answer."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol

from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.http.stream import read_body
from l5d_twisted.naming.addr import Address
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor

TWO = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nunasked"
)


class _AnswersTwiceThenOnce(Protocol):
    transport: Any
    seen = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if b"\r\n\r\n" not in data:
            return
        type(self).seen += 1
        n = type(self).seen
        self.transport.write(
            TWO if n == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nanswer%d" % (7, n)
        )


@pytest_twisted.ensureDeferred
async def test_an_unasked_response_is_never_the_next_requests_answer() -> None:
    backend = _AnswersTwiceThenOnce
    backend.seen = 0
    port = reactor.listenTCP(0, Factory.forProtocol(backend), interface="127.0.0.1")
    client = EndpointClient(
        reactor, Address("127.0.0.1", port.getHost().port), PoolSettings(), NULL_STATS
    )
    try:
        bodies = []
        for _ in range(3):
            response = await client(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
            assert response.status == 200
            bodies.append((await read_body(response.body)).data)
        assert bodies == [b"first", b"answer2", b"answer3"]
        assert backend.seen == 3  # every request reached the backend
    finally:
        await client.close()
        await port.stopListening()
