"""``admin.tls`` (issue 12): the admin server over TLS with a server's tls keys
(certPath, keyPath, intermediateCertsPath, caCertPath, requireClientAuth), checked by
real TLS clients (Python's ssl, in a thread, and a real ``l5d-twisted run``) against
throwaway certificates; without it the admin server stays plain HTTP."""

from __future__ import annotations

import http.client
import ssl
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from fake_mesh import FakeMesh
from l5d_pki import make_chain_pki, make_pki
from l5d_testing import Processes, free_port, wait_for_port
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from l5d_twisted.admin.server import AdminServer
from l5d_twisted.config import load_config
from l5d_twisted.config.model import AdminConfig
from l5d_twisted.config.tls import ServerTlsConfig
from l5d_twisted.tls_imports import config_uses_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"), server_name="admin.mesh")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_chain_pki(tmp_path_factory.mktemp("chain"), server_name="admin.mesh")


Serve = Callable[[ServerTlsConfig | None], int]


@pytest_twisted.async_yield_fixture
async def serve() -> AsyncIterator[Serve]:
    ports: list[Any] = []

    def start(tls: ServerTlsConfig | None) -> int:
        mesh: Any = FakeMesh(Clock())
        mesh.config = types.SimpleNamespace(admin=AdminConfig(tls=tls))
        port = AdminServer(mesh, reactor).listen("127.0.0.1", 0)
        ports.append(port)
        return int(port.getHost().port)

    yield start
    for port in ports:
        await port.stopListening()


def https_get(
    port: int, path: str, ca: str, cert: tuple[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """A GET over TLS validating the server as admin.mesh against ``ca`` (blocking)."""
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    # the certificate's names are admin.mesh and 127.0.0.1
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def plain_get(port: int, path: str) -> tuple[int, bytes] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None  # not HTTP on that port
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_admin_over_tls_answers_a_validating_client_and_not_plain_http(
    serve: Serve, pki: dict[str, str]
) -> None:
    port = serve(ServerTlsConfig(cert_path=pki["server_crt"], key_path=pki["server_key"]))
    assert await deferToThread(https_get, port, "/admin/ping", pki["ca"]) == (200, b"pong")
    status, body = await deferToThread(https_get, port, "/config.json", pki["ca"])
    assert status == 200 and body.startswith(b"{")
    answered = await deferToThread(plain_get, port, "/admin/ping")
    assert answered is None or answered[0] == 400, answered  # never pong in the clear


@pytest_twisted.ensureDeferred
async def test_admin_without_tls_stays_plain_http(serve: Serve, pki: dict[str, str]) -> None:
    port = serve(None)
    assert await deferToThread(plain_get, port, "/admin/ping") == (200, b"pong")
    # a plain HTTP server never completes a handshake (it waits for a request line: the
    # client gives up after 2 s)
    with pytest.raises((ssl.SSLError, OSError)):
        await deferToThread(https_get, port, "/admin/ping", pki["ca"], None, 2.0)


@pytest_twisted.ensureDeferred
async def test_admin_tls_sends_intermediates_and_requires_client_certificates(
    serve: Serve, chain: dict[str, str], tmp_path: Path
) -> None:
    port = serve(
        ServerTlsConfig(
            cert_path=chain["server_crt"],
            key_path=chain["server_key"],
            intermediate_certs_path=chain["intermediate"],
            ca_cert_path=chain["root"],
            require_client_auth=True,
        )
    )
    bundle = tmp_path / "client-bundle.pem"  # the client sends its intermediate too
    bundle.write_bytes(
        Path(chain["client_crt"]).read_bytes() + Path(chain["intermediate"]).read_bytes()
    )
    client = (str(bundle), chain["client_key"])
    # the client trusts only the root: the server's intermediate must come with it
    assert await deferToThread(https_get, port, "/admin/ping", chain["root"], client) == (
        200,
        b"pong",
    )
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        await deferToThread(https_get, port, "/admin/ping", chain["root"])  # no certificate


def test_admin_tls_is_read_from_the_config_and_loads_tls() -> None:
    config = load_config(
        "admin:\n  tls: {certPath: /c.pem, keyPath: /k.pem}\n"
        "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n"
    )
    assert config.admin.tls == ServerTlsConfig("/c.pem", "/k.pem")
    assert config_uses_tls(config)  # the TLS modules are not left out of such a process
    plain = load_config("routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n")
    assert plain.admin.tls is None and not config_uses_tls(plain)


def test_a_running_mesh_serves_its_admin_over_tls(
    processes: Processes, tmp_path: Path, pki: dict[str, str]
) -> None:
    admin_port, router_port = free_port(), free_port()
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"""
admin:
  ip: 127.0.0.1
  port: {admin_port}
  tls: {{certPath: {pki["server_crt"]}, keyPath: {pki["server_key"]}}}
routers:
- protocol: http
  dtab: /svc => /$/inet/127.1/1;
  servers: [{{ip: 127.0.0.1, port: {router_port}}}]
"""
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", admin_port)
    assert https_get(admin_port, "/admin/ping", pki["ca"]) == (200, b"pong")
    assert https_get(admin_port, "/ready", pki["ca"]) == (200, b"ready")


def test_the_workers_supervisor_serves_its_admin_over_tls(
    processes: Processes, tmp_path: Path, pki: dict[str, str]
) -> None:
    """``workers: 2``: the supervisor's admin server (which adopts a reserved socket)
    takes admin.tls as a single process does."""
    admin_port, router_port = free_port(), free_port()
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"""
workers: 2
admin:
  ip: 127.0.0.1
  port: {admin_port}
  tls: {{certPath: {pki["server_crt"]}, keyPath: {pki["server_key"]}}}
routers:
- protocol: http
  dtab: /svc => /$/inet/127.1/1;
  servers: [{{ip: 127.0.0.1, port: {router_port}}}]
"""
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", admin_port, timeout=60)
    assert https_get(admin_port, "/admin/ping", pki["ca"]) == (200, b"pong")
    assert plain_get(admin_port, "/admin/ping") in (None, (400, b""))


def test_a_bad_admin_certificate_path_stops_the_start_with_the_reason(
    processes: Processes, tmp_path: Path, pki: dict[str, str]
) -> None:
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"""
admin:
  ip: 127.0.0.1
  port: {free_port()}
  tls: {{certPath: {tmp_path / "missing.pem"}, keyPath: {pki["server_key"]}}}
routers:
- protocol: http
  dtab: /svc => /$/inet/127.1/1;
  servers: [{{ip: 127.0.0.1, port: {free_port()}}}]
"""
    )
    proc = processes.l5d("run", str(config), name="mesh")
    code = proc.wait(timeout=60)
    assert code != 0
    log = processes.log(proc)
    assert "cannot read certificate" in log and "missing.pem" in log
