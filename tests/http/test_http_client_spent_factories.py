"""A connected upstream connection lets go of the factories that made it (issue 17: ~200
bytes per pooled connection), and still closes and reconnects as before."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol

from l5d_twisted.http.client import _LOGSTR, EndpointClient, PoolSettings
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.http.pool import SPENT_FACTORY
from l5d_twisted.naming.addr import Address
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor


class _Ok(Protocol):
    transport: Any

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest_twisted.ensureDeferred
async def test_a_connected_connection_keeps_no_connect_factories() -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(_Ok), interface="127.0.0.1")
    client = EndpointClient(
        reactor, Address("127.0.0.1", port.getHost().port), PoolSettings(), NULL_STATS
    )
    try:
        for _ in range(2):  # a new connection, then the same one reused
            response = await client(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
            assert response.status == 200
            response.body.discard()
            assert client._pool.size == 1
            conn: Any = next(iter(client._pool._open))
            assert conn.transport.connector.factory is SPENT_FACTORY
            assert conn.transport.logstr is _LOGSTR  # one shared string, not one each
    finally:
        # closing it goes through Twisted's connector with the spent factory
        await client.close()
        await port.stopListening()
    assert client._pool.size == 0
