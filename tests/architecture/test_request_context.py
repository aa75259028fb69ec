"""The typed seams: request context keys (with the connection the HTTP server puts in), and
typed stack params."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from cryptography.x509.oid import NameOID
from l5d_pki import make_pki
from twisted.internet import reactor
from twisted.internet.defer import succeed

from l5d_twisted.config.tls import ClientAuthConfig, ClientTlsConfig, ServerTlsConfig
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.server import ServerSettings, serve_http
from l5d_twisted.http.tls import client_tls, server_tls
from l5d_twisted.naming.addr import Address
from l5d_twisted.request_context import CONNECTION, DST, Connection, Context, Key
from l5d_twisted.service import FunctionService, Param, Params
from l5d_twisted.telemetry.stats import NULL_STATS


def test_keys_are_distinct_by_identity_not_name() -> None:
    ctx = Context()
    mine: Key[str] = Key("dst")
    ctx[mine] = "a plugin's"
    assert DST not in ctx and ctx[mine] == "a plugin's"
    assert ctx.get(DST) is None and ctx.get(DST, 0) == 0


def test_params_are_typed_keys_with_defaults() -> None:
    size: Param[int] = Param("size", 3)
    name: Param[str] = Param("name")
    params = Params().plus(name, "x")
    assert (params[size], params[name]) == (3, "x")
    assert params.plus(size, 5)[size] == 5 and params[size] == 3  # immutable
    with pytest.raises(KeyError, match="'name' is not set and has no default"):
        Params()[name]


def serve_recording(seen: list[Connection], tls: Any = None) -> Any:
    def record(request: Request) -> Any:
        seen.append(request.ctx[CONNECTION])
        return succeed(Response(200))

    return serve_http(
        reactor, "127.0.0.1", 0, FunctionService(record), ServerSettings(tls=tls), NULL_STATS
    )


@pytest_twisted.ensureDeferred
async def test_the_http_server_puts_the_peer_address_in_the_context() -> None:
    seen: list[Connection] = []
    server = serve_recording(seen)
    client = EndpointClient(
        reactor, Address("127.0.0.1", server.getHost().port), PoolSettings(), NULL_STATS, 2.0
    )
    try:
        await client(Request(b"GET", b"/a"))
        await client(Request(b"GET", b"/b"))  # same connection, same object
        first, second = seen
        assert first is second
        assert first.peer.host == "127.0.0.1" and first.peer.port > 0
        assert first.peer_certificate is None and not first.tls
    finally:
        await client.close()
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_a_tls_server_puts_the_client_certificate_in_the_context(tmp_path: Any) -> None:
    pki = make_pki(tmp_path)
    seen: list[Connection] = []
    tls = server_tls(
        ServerTlsConfig(
            cert_path=pki["server_crt"],
            key_path=pki["server_key"],
            ca_cert_path=pki["ca"],
            require_client_auth=True,
        )
    )
    server = serve_recording(seen, tls)
    auth = ClientAuthConfig(cert_path=pki["client_crt"], key_path=pki["client_key"])
    client = EndpointClient(
        reactor,
        Address("127.0.0.1", server.getHost().port),
        PoolSettings(),
        NULL_STATS,
        2.0,
        tls=client_tls(
            ClientTlsConfig(
                common_name="hello.mesh", trust_certs_bundle=pki["ca"], client_auth=auth
            )
        ),
    )
    try:
        assert (await client(Request(b"GET", b"/"))).status == 200
        (connection,) = seen
        assert connection.tls and connection.peer.host == "127.0.0.1"
        certificate = connection.peer_certificate
        assert certificate is not None
        subject = certificate.to_cryptography().subject
        assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "client"
    finally:
        await client.close()
        await server.drain(1.0)
