"""TLS on both sides of the wire, with throwaway certificates (real reactor, loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from l5d_pki import make_pki
from twisted.internet import reactor as _reactor
from twisted.internet.defer import succeed
from twisted.internet.utils import getProcessOutputAndValue

from l5d_twisted.config.tls import ClientAuthConfig, ClientTlsConfig, ServerTlsConfig
from l5d_twisted.errors import ConnectionFailed, ConnectionReset
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import ServerSettings, serve_http
from l5d_twisted.http.tls import TlsConfigError, client_tls, server_tls
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS

reactor: Any = _reactor


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def hello(request: Request) -> Any:
    return succeed(
        Response(
            200,
            Headers([(b"Content-Type", b"text/plain")]),
            BufferedBody(b"hello over tls " + request.uri),
        )
    )


def listen(tls: Any) -> Any:
    return serve_http(
        reactor, "127.0.0.1", 0, FunctionService(hello), ServerSettings(tls=tls), NULL_STATS
    )


@pytest_twisted.ensureDeferred
async def test_tls_both_ways_with_validation(pki: dict[str, str]) -> None:
    server = listen(
        server_tls(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["server_key"]))
    )
    port = server.getHost().port
    client = EndpointClient(
        reactor,
        Address("127.0.0.1", port),
        PoolSettings(),
        NULL_STATS,
        2.0,
        tls=client_tls(ClientTlsConfig(common_name="hello.mesh", trust_certs_bundle=pki["ca"])),
    )
    try:
        for i in range(3):  # the TLS connection is kept alive and reused
            response = await client(Request(b"GET", b"/x%d" % i))
            assert response.status == 200 and response.body.data == b"hello over tls /x%d" % i
        assert client._pool.size == 1
    finally:
        await client.close()
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_wrong_name_fails_as_retryable_connection_failure(pki: dict[str, str]) -> None:
    server = listen(
        server_tls(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["server_key"]))
    )
    client = EndpointClient(
        reactor,
        Address("127.0.0.1", server.getHost().port),
        PoolSettings(),
        NULL_STATS,
        2.0,
        tls=client_tls(ClientTlsConfig(common_name="other.mesh", trust_certs_bundle=pki["ca"])),
    )
    try:
        with pytest.raises(ConnectionFailed) as raised:
            await client(Request(b"GET", b"/"))
        assert raised.value.retryable
    finally:
        await client.close()
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_client_auth_required(pki: dict[str, str]) -> None:
    tls = server_tls(
        ServerTlsConfig(
            cert_path=pki["server_crt"],
            key_path=pki["server_key"],
            ca_cert_path=pki["ca"],
            require_client_auth=True,
        )
    )
    server = listen(tls)
    port = server.getHost().port
    anonymous = EndpointClient(
        reactor,
        Address("127.0.0.1", port),
        PoolSettings(),
        NULL_STATS,
        2.0,
        tls=client_tls(ClientTlsConfig(disable_validation=True)),
    )
    authenticated = EndpointClient(
        reactor,
        Address("127.0.0.1", port),
        PoolSettings(),
        NULL_STATS,
        2.0,
        tls=client_tls(
            ClientTlsConfig(
                common_name="hello.mesh",
                trust_certs_bundle=pki["ca"],
                client_auth=ClientAuthConfig(
                    cert_path=pki["client_crt"], key_path=pki["client_key"]
                ),
            )
        ),
    )
    try:
        with pytest.raises((ConnectionFailed, ConnectionReset)):
            await anonymous(Request(b"GET", b"/"))
        response = await authenticated(Request(b"GET", b"/ok"))
        assert response.status == 200
    finally:
        await anonymous.close()
        await authenticated.close()
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_curl_validates_the_server_certificate(pki: dict[str, str]) -> None:
    server = listen(
        server_tls(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["server_key"]))
    )
    port = server.getHost().port
    try:
        out, err, code = await getProcessOutputAndValue(
            "/usr/bin/curl",
            [
                "-sS",
                "--cacert",
                pki["ca"],
                "--resolve",
                f"hello.mesh:{port}:127.0.0.1",
                f"https://hello.mesh:{port}/curl",
            ],
        )
        assert code == 0, err
        assert out == b"hello over tls /curl"
    finally:
        await server.drain(1.0)


def test_bad_paths_are_clear_errors(pki: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match="cannot read certificate"):
        server_tls(
            ServerTlsConfig(cert_path=str(tmp_path / "nope.crt"), key_path=pki["server_key"])
        )
    with pytest.raises(TlsConfigError, match="does not fit"):
        server_tls(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["client_key"]))
    (tmp_path / "empty.pem").write_text("nothing here")
    with pytest.raises(TlsConfigError, match="no certificate"):
        client_tls(ClientTlsConfig(common_name="x", trust_certs_bundle=str(tmp_path / "empty.pem")))
