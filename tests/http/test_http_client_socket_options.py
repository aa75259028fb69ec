"""``routers[].client.socketOptions``: real socket options on the connections to endpoints,
read back with getsockopt on the connected client socket."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.params import ClientSocketOptions
from l5d_twisted.http.client import EndpointClient
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.http.sockopts import socket_of
from l5d_twisted.naming.addr import Address
from l5d_twisted.protocols.http import client_socket_options, pool_settings
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor


class _Ok(Protocol):
    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def _options(sock: socket.socket) -> dict[str, int]:
    return {
        "noDelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
        "reuseAddr": sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
        "reusePort": sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
        "keepAlive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    }


async def _connected_socket_options(yaml_options: str) -> dict[str, int]:
    config = load_config(
        f"routers:\n- protocol: http\n  client:\n    socketOptions: {yaml_options}\n"
    )
    router = config.routers[0]
    params = router.client.params_for(router.dst_prefix)
    port = reactor.listenTCP(0, Factory.forProtocol(_Ok), interface="127.0.0.1")
    client = EndpointClient(
        reactor,
        Address("127.0.0.1", port.getHost().port),
        pool_settings(router, params),
        NULL_STATS,
    )
    try:
        response = await client(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
        assert response.status == 200
        response.body.discard()
        conn = client._pool.take_idle()
        assert conn is not None
        sock = socket_of(conn.transport)
        assert sock is not None
        assert sock.getsockname()[0] == "127.0.0.1"  # the outgoing connection's own socket
        options = _options(sock)
        client._pool.release(conn)
        return options
    finally:
        await client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_defaults_are_linkerd_1s() -> None:
    options = await _connected_socket_options("{}")
    assert options["noDelay"] != 0 and options["reuseAddr"] != 0
    assert options["reusePort"] == 0 and options["keepAlive"] == 0


@pytest_twisted.ensureDeferred
async def test_each_option_reaches_the_socket() -> None:
    options = await _connected_socket_options(
        "{noDelay: false, reuseAddr: false, reusePort: true, keepAlive: true}"
    )
    assert options == {"noDelay": 0, "reuseAddr": 0, "reusePort": 1, "keepAlive": 1}


def test_options_as_setsockopt_triples() -> None:
    assert client_socket_options(ClientSocketOptions()) == (
        (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
    )


def test_per_prefix_and_refused_keys() -> None:
    config = load_config(
        "routers:\n- protocol: http\n  client:\n    kind: io.l5d.static\n    configs:\n"
        "    - prefix: /#/io.l5d.fs/slow\n      socketOptions: {keepAlive: true}\n"
    )
    from l5d_twisted.naming.path import Path

    client = config.routers[0].client
    assert client.params_for(Path.read("/#/io.l5d.fs/slow")).socket_options.keep_alive is True
    assert client.params_for(Path.read("/#/io.l5d.fs/fast")).socket_options.keep_alive is False
    with pytest.raises(ConfigErrors) as e:
        load_config(
            "routers:\n- protocol: http\n  client:\n    socketOptions: {readTimeoutMs: 100}\n"
        )
    assert (
        "readTimeoutMs is linkerd 1 configuration that l5d-twisted does not support yet "
        "(socket read timeouts)"
    ) in str(e.value)
