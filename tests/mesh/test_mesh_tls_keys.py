"""linkerd 1's TLS keys (issue 12): ``client.tls.trustCerts``, ``client.tls.enabled``
(per prefix), ``clientAuth.intermediateCertsPath``, and the server's
``intermediateCertsPath``, ``caCertPath`` and ``requireClientAuth``.

Each is shown by what happens on the wire: real TLS handshakes over loopback between the
project's own HTTP server and client (real reactor), and one real mesh process whose
per-prefix client config turns TLS off under a narrower prefix.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from l5d_pki import make_chain_pki, make_pki
from l5d_testing import Processes, free_port, wait_for_port
from twisted.internet import reactor as _reactor
from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.tls import ClientAuthConfig, ClientTlsConfig, ServerTlsConfig
from l5d_twisted.errors import ConnectionFailed, ConnectionReset
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import ServerSettings, serve_http
from l5d_twisted.http.tls import client_tls, server_tls
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path as NPath
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS
from l5d_twisted.tls_imports import config_uses_tls

reactor: Any = _reactor
HANDSHAKE_FAILED = (ConnectionFailed, ConnectionReset)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_chain_pki(tmp_path_factory.mktemp("chain-pki"))


def hello(request: Request) -> Any:
    return succeed(Response(200, Headers(), BufferedBody(b"hello " + request.uri)))


def listen(tls: Any) -> Any:
    return serve_http(
        reactor, "127.0.0.1", 0, FunctionService(hello), ServerSettings(tls=tls), NULL_STATS
    )


async def fetch(port: int, tls: Any) -> int:
    """One request over a fresh client with ``tls``; the status (raises if no TLS)."""
    client = EndpointClient(
        reactor, Address("127.0.0.1", port), PoolSettings(), NULL_STATS, 2.0, tls=tls
    )
    try:
        response = await client(Request(b"GET", b"/"))
        return int(response.status)
    finally:
        await client.close()


def router_yaml(client_block: str) -> str:
    return "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n  client:\n" + "".join(
        f"    {line}\n" for line in client_block.strip().splitlines()
    )


# -- client.tls.trustCerts (deprecated list) ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_trust_certs_files_are_trusted_together(
    pki: dict[str, str], chain: dict[str, str]
) -> None:
    server = listen(
        server_tls(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["server_key"]))
    )
    port = server.getHost().port
    try:
        # the server's CA is the second file of the list: every file counts
        both = ClientTlsConfig(common_name="hello.mesh", trust_certs=(chain["other_ca"], pki["ca"]))
        assert await fetch(port, client_tls(both)) == 200
        # only an unrelated CA: the server's certificate is not trusted
        other = ClientTlsConfig(common_name="hello.mesh", trust_certs=(chain["other_ca"],))
        with pytest.raises(HANDSHAKE_FAILED):
            await fetch(port, client_tls(other))
    finally:
        await server.drain(1.0)


def test_trust_certs_is_read_from_yaml_with_prefix_captures() -> None:
    config = load_config(
        router_yaml(
            """
kind: io.l5d.static
configs:
- prefix: /#/io.l5d.fs/{service}
  tls:
    commonName: "{service}.linkerd.io"
    trustCerts:
    - /certificates/{service}-ca.pem
    - /certificates/shared-ca.pem
"""
        )
    )
    tls = config.routers[0].client.params_for(NPath.read("/#/io.l5d.fs/hello")).tls
    assert tls is not None
    assert tls.common_name == "hello.linkerd.io"
    assert tls.trust_certs == ("/certificates/hello-ca.pem", "/certificates/shared-ca.pem")


def test_trust_certs_with_trust_certs_bundle_is_refused_as_linkerd_1_did() -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(
            router_yaml(
                """
tls:
  commonName: linkerd
  trustCerts: [/a.pem]
  trustCertsBundle: /b.pem
"""
            )
        )
    assert "trustCerts and trustCertsBundle are both set; use only trustCertsBundle" in str(
        raised.value
    )


# -- client.tls.enabled, per prefix -------------------------------------------------------

STATIC_TLS_THEN_OFF = """
kind: io.l5d.static
configs:
- prefix: /#/io.l5d.fs
  tls:
    commonName: incoming.mesh
    trustCertsBundle: {ca}
- prefix: /#/io.l5d.fs/world
  tls:
    enabled: false
"""


def test_enabled_false_under_a_narrower_prefix_replaces_the_broader_tls() -> None:
    config = load_config(router_yaml(STATIC_TLS_THEN_OFF.format(ca="/ca.pem")))
    client = config.routers[0].client
    on = client.params_for(NPath.read("/#/io.l5d.fs/secure")).tls
    off = client.params_for(NPath.read("/#/io.l5d.fs/world")).tls
    assert on is not None and on.enabled and on.common_name == "incoming.mesh"
    assert off is not None and not off.enabled
    assert client_tls(off) is None  # plain TCP
    # a config whose only tls block is off needs no TLS modules at all
    only_off = load_config(router_yaml("tls: {enabled: false}"))
    assert not config_uses_tls(only_off) and config_uses_tls(config)


def test_enabled_false_then_a_narrower_prefix_turns_it_back_on() -> None:
    config = load_config(
        router_yaml(
            """
kind: io.l5d.static
configs:
- prefix: /
  tls: {enabled: false}
- prefix: /#/io.l5d.fs/secure
  tls: {commonName: secure.mesh}
"""
        )
    )
    client = config.routers[0].client
    assert client.params_for(NPath.read("/#/io.l5d.fs/world")).tls == ClientTlsConfig(enabled=False)
    secure = client.params_for(NPath.read("/#/io.l5d.fs/secure")).tls
    assert secure is not None and secure.enabled and secure.common_name == "secure.mesh"


def test_mesh_sends_plain_http_where_a_prefix_turns_tls_off(
    processes: Processes, tmp_path: Path
) -> None:
    """One mesh: ``outgoing`` originates TLS for /#/io.l5d.fs/* but not for
    /#/io.l5d.fs/world; ``world`` is a plain HTTP server, ``secure`` is the mesh's own
    TLS-terminating ``incoming`` router, which forwards to world."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki", server_name="incoming.mesh")
    world_port, out_port, in_port, admin_port = (free_port() for _ in range(4))
    disco = tmp_path / "disco"
    disco.mkdir()
    (disco / "world").write_text(f"127.0.0.1 {world_port}\n")
    (disco / "secure").write_text(f"127.0.0.1 {in_port}\n")
    client = STATIC_TLS_THEN_OFF.format(ca=pki["ca"])
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs;
  servers: [{{ip: 127.0.0.1, port: {out_port}}}]
  client:
{"".join(f"    {line}{chr(10)}" for line in client.strip().splitlines())}
- protocol: http
  label: incoming
  dtab: /svc => /#/io.l5d.fs/world;
  servers:
  - ip: 127.0.0.1
    port: {in_port}
    tls: {{certPath: {pki["server_crt"]}, keyPath: {pki["server_key"]}}}
"""
    )
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    processes.l5d("run", str(config), name="mesh")
    for port in (world_port, out_port, in_port, admin_port):
        wait_for_port("127.0.0.1", port)
    world = f"world (127.0.0.1:{world_port})!".encode()
    for host in ("world", "secure"):  # plain to world; TLS to incoming, then plain to world
        conn = http.client.HTTPConnection("127.0.0.1", out_port, timeout=10)
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        assert (host, response.status, response.read()) == (host, 200, world)
        conn.close()


# -- client.tls.clientAuth.intermediateCertsPath ------------------------------------------


@pytest_twisted.ensureDeferred
async def test_client_sends_its_intermediate_certificates(
    chain: dict[str, str], tmp_path: Path
) -> None:
    """The server trusts only the root; the client's certificate was signed by an
    intermediate, which the client must send for the handshake to pass."""
    bundle = tmp_path / "server-bundle.pem"  # the server sends its chain (certPath bundle)
    bundle.write_bytes(
        Path(chain["server_crt"]).read_bytes() + Path(chain["intermediate"]).read_bytes()
    )
    server = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=str(bundle),
                key_path=chain["server_key"],
                ca_cert_path=chain["root"],
                require_client_auth=True,
            )
        )
    )
    port = server.getHost().port

    def config(intermediates: str | None) -> ClientTlsConfig:
        auth = ClientAuthConfig(chain["client_crt"], chain["client_key"], intermediates)
        return ClientTlsConfig(
            common_name="hello.mesh", trust_certs_bundle=chain["root"], client_auth=auth
        )

    try:
        assert await fetch(port, client_tls(config(chain["intermediate"]))) == 200
        with pytest.raises(HANDSHAKE_FAILED):
            await fetch(port, client_tls(config(None)))
    finally:
        await server.drain(1.0)


# -- servers[].tls: intermediateCertsPath, caCertPath, requireClientAuth -------------------


@pytest_twisted.ensureDeferred
async def test_server_sends_its_intermediate_certificates(chain: dict[str, str]) -> None:
    """Clients trust only the root; the server's certificate was signed by an
    intermediate, which it sends only when intermediateCertsPath names it."""
    trusting_root = client_tls(
        ClientTlsConfig(common_name="hello.mesh", trust_certs_bundle=chain["root"])
    )
    with_chain = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=chain["server_crt"],
                key_path=chain["server_key"],
                intermediate_certs_path=chain["intermediate"],
            )
        )
    )
    without = listen(
        server_tls(ServerTlsConfig(cert_path=chain["server_crt"], key_path=chain["server_key"]))
    )
    try:
        assert await fetch(with_chain.getHost().port, trusting_root) == 200
        with pytest.raises(HANDSHAKE_FAILED):
            await fetch(without.getHost().port, trusting_root)
    finally:
        await with_chain.drain(1.0)
        await without.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_server_sends_its_intermediates_to_curl(chain: dict[str, str]) -> None:
    """Another TLS stack (curl, trusting the root only) validates the chain too."""
    from twisted.internet.utils import getProcessOutputAndValue

    server = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=chain["server_crt"],
                key_path=chain["server_key"],
                intermediate_certs_path=chain["intermediate"],
            )
        )
    )
    port = server.getHost().port
    try:
        out, err, code = await getProcessOutputAndValue(
            "/usr/bin/curl",
            [
                "-sS",
                "--cacert",
                chain["root"],
                "--resolve",
                f"hello.mesh:{port}:127.0.0.1",
                f"https://hello.mesh:{port}/curl",
            ],
        )
        assert code == 0, err
        assert out == b"hello /curl"
    finally:
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_require_client_auth_checks_client_certificates_against_ca_cert_path(
    pki: dict[str, str], chain: dict[str, str]
) -> None:
    """linkerd 1's server keys: requireClientAuth: true + caCertPath.  A client without a
    certificate, or with one another CA signed, is refused; one caCertPath's CA signed
    passes."""
    server = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=pki["server_crt"],
                key_path=pki["server_key"],
                ca_cert_path=pki["ca"],
                require_client_auth=True,
            )
        )
    )
    port = server.getHost().port

    def client(auth: ClientAuthConfig | None) -> Any:
        return client_tls(
            ClientTlsConfig(
                common_name="hello.mesh", trust_certs_bundle=pki["ca"], client_auth=auth
            )
        )

    ours = ClientAuthConfig(pki["client_crt"], pki["client_key"])
    foreign = ClientAuthConfig(chain["client_crt"], chain["client_key"], chain["intermediate"])
    try:
        assert await fetch(port, client(ours)) == 200
        for refused in (None, foreign):
            with pytest.raises(HANDSHAKE_FAILED):
                await fetch(port, client(refused))
    finally:
        await server.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_ca_cert_path_without_require_client_auth_asks_for_no_certificate(
    pki: dict[str, str], chain: dict[str, str]
) -> None:
    """As linkerd 1 (ClientAuth.Off): without requireClientAuth no client certificate is
    asked for, so a client holding one another CA signed is served like any other."""
    server = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=pki["server_crt"], key_path=pki["server_key"], ca_cert_path=pki["ca"]
            )
        )
    )
    foreign = ClientAuthConfig(chain["client_crt"], chain["client_key"], chain["intermediate"])
    try:
        for auth in (None, foreign):
            tls = client_tls(
                ClientTlsConfig(
                    common_name="hello.mesh", trust_certs_bundle=pki["ca"], client_auth=auth
                )
            )
            assert await fetch(server.getHost().port, tls) == 200
    finally:
        await server.drain(1.0)


def test_server_tls_keys_are_linkerd_1s() -> None:
    config = load_config(
        "routers:\n- servers:\n  - tls:\n      certPath: /c.pem\n      keyPath: /k.pem\n"
        "      intermediateCertsPath: /chain.pem\n      caCertPath: /ca.pem\n"
        "      requireClientAuth: true\n"
    )
    tls = config.routers[0].servers[0].tls
    assert tls == ServerTlsConfig("/c.pem", "/k.pem", "/chain.pem", "/ca.pem", True)
    # linkerd 1's server TLS has no clientAuth key (that is the client's block): the
    # error points to the key it has
    with pytest.raises(ConfigErrors) as raised:
        load_config(
            "routers:\n- servers:\n  - tls: {certPath: /c.pem, keyPath: /k.pem, clientAuth: true}\n"
        )
    assert "unknown key 'clientAuth' (did you mean 'requireClientAuth'?)" in str(raised.value)


# -- protocols (client and server) ---------------------------------------------------------


def negotiated(port: int, ca: str, maximum: ssl.TLSVersion | None) -> str | None:
    """The TLS version a Python client (capped at ``maximum``) agrees on, None if none."""
    context = ssl.create_default_context(cafile=ca)
    if maximum is not None:
        context.maximum_version = maximum
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="hello.mesh") as tls,
        ):
            return tls.version()
    except (ssl.SSLError, OSError):
        return None


@pytest_twisted.ensureDeferred
async def test_server_protocols_enable_only_the_listed_versions(pki: dict[str, str]) -> None:
    def server(*protocols: str) -> Any:
        return listen(
            server_tls(
                ServerTlsConfig(
                    cert_path=pki["server_crt"], key_path=pki["server_key"], protocols=protocols
                )
            )
        )

    default, only12, only13 = server(), server("TLSv1.2"), server("TLSv1.3")
    ca, v12 = pki["ca"], ssl.TLSVersion.TLSv1_2
    try:
        port = default.getHost().port
        assert await deferToThread(negotiated, port, ca, None) == "TLSv1.3"
        assert await deferToThread(negotiated, port, ca, v12) == "TLSv1.2"
        port = only12.getHost().port
        assert await deferToThread(negotiated, port, ca, None) == "TLSv1.2"
        port = only13.getHost().port
        assert await deferToThread(negotiated, port, ca, None) == "TLSv1.3"
        assert await deferToThread(negotiated, port, ca, v12) is None
    finally:
        for s in (default, only12, only13):
            await s.drain(1.0)


@pytest_twisted.ensureDeferred
async def test_client_protocols_enable_only_the_listed_versions(pki: dict[str, str]) -> None:
    only13 = listen(
        server_tls(
            ServerTlsConfig(
                cert_path=pki["server_crt"], key_path=pki["server_key"], protocols=("TLSv1.3",)
            )
        )
    )

    def client(*protocols: str) -> Any:
        return client_tls(
            ClientTlsConfig(
                common_name="hello.mesh", trust_certs_bundle=pki["ca"], protocols=protocols
            )
        )

    try:
        port = only13.getHost().port
        assert await fetch(port, client("TLSv1.3")) == 200
        assert await fetch(port, client("TLSv1.2", "TLSv1.3")) == 200
        with pytest.raises(HANDSHAKE_FAILED):
            await fetch(port, client("TLSv1.2"))
        with pytest.raises(HANDSHAKE_FAILED):  # TLSv1.1 is never enabled
            await fetch(port, client("TLSv1.1", "TLSv1.2"))
    finally:
        await only13.drain(1.0)


def test_protocols_are_checked() -> None:
    config = load_config(router_yaml("tls: {commonName: x, protocols: [TLSv1.2]}"))
    tls = config.routers[0].client.params_for(NPath.read("/#/io.l5d.fs/a")).tls
    assert tls is not None and tls.protocols == ("TLSv1.2",)
    for bad, message in (
        ("[TLSv1.4]", "unknown TLS protocol 'TLSv1.4'"),
        (
            "[TLSv1, TLSv1.1]",
            "protocols TLSv1, TLSv1.1: l5d-twisted speaks only TLSv1.2 and TLSv1.3",
        ),
    ):
        with pytest.raises(ConfigErrors) as raised:
            load_config(router_yaml(f"tls: {{commonName: x, protocols: {bad}}}"))
        assert "client.tls.protocols: " + message in str(raised.value)
