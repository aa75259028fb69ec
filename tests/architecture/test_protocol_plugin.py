"""Adding a protocol touches no core file (issue 13): a test-only line protocol, registered
here, served on 127.0.0.1 through a real Mesh and routed like HTTP (identifier, dtab,
balancer, endpoint stack, pooled connections), with nothing in ``router/`` or ``mesh.py``
knowing it."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from l5d_testing import REPO, free_port
from line_echo import KIND, LINE_ECHO, EchoBackend, line_echo_protocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.mesh import Mesh
from l5d_twisted.protocols.base import NoConfig, protocol_named
from l5d_twisted.registry import PROTOCOLS
from l5d_twisted.telemetry.metrics_json import flat_metrics


@pytest.fixture
def line_protocol() -> Iterator[None]:
    PROTOCOLS.register(KIND, NoConfig)(line_echo_protocol)
    try:
        yield
    finally:
        PROTOCOLS.unregister(KIND)


class LineClient(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.lines: list[Deferred[bytes]] = []

    def ask(self, line: bytes) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.lines.append(d)
        self.sendLine(line)
        return d

    def lineReceived(self, line: bytes) -> None:
        self.lines.pop(0).callback(line)


@pytest_twisted.async_yield_fixture
async def line_mesh(line_protocol: None) -> AsyncIterator[tuple[Mesh, int, int]]:
    backend = reactor.listenTCP(0, Factory.forProtocol(EchoBackend), interface="127.0.0.1")
    port = free_port()
    config = load_config(
        f"""
admin: {{ip: 127.0.0.1, port: 0}}
routers:
- protocol: {KIND}
  label: lines
  servers: [{{ip: 127.0.0.1, port: {port}}}]
  dtab: /svc/echo => /$/inet/127.0.0.1/{backend.getHost().port}
"""
    )
    mesh = Mesh(config, reactor, env={})
    await mesh.start()
    try:
        yield mesh, port, backend.getHost().port
    finally:
        await mesh.stop(0.0, drain_period_s=0.0)
        await backend.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_registered_protocol_is_served_and_routed_by_a_real_mesh(
    line_mesh: tuple[Mesh, int, int],
) -> None:
    mesh, port, backend_port = line_mesh
    assert mesh.routers[0].protocol.name == KIND
    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), LineClient())
    try:
        assert await client.ask(b"echo hello") == b"echo: hello"
        assert await client.ask(b"echo again") == b"echo: again"  # on the pooled connection
        answer = await client.ask(b"nowhere hi")
        assert answer.startswith(b"error: Unable to route request! service name: /svc/nowhere"), (
            answer
        )
    finally:
        client.transport.loseConnection()
    metrics = flat_metrics(mesh.metrics)
    # the default stacks did their work for this protocol as for http
    assert metrics[f"rt/lines/server/127.0.0.1/{port}/requests"] == 3
    assert metrics["rt/lines/service/svc/echo/requests"] == 2
    assert metrics[f"rt/lines/client/$/inet/127.0.0.1/{backend_port}/connects"] == 1


def test_check_refuses_a_protocol_no_module_registered() -> None:
    with pytest.raises(
        ConfigErrors,
        match=r"routers\[0\]\.protocol: unknown protocol 'gopher'; known protocols: http",
    ):
        load_config("routers:\n- protocol: gopher\n")
    # a linkerd 1 protocol is named as such (issue 12)
    with pytest.raises(ConfigErrors, match=r"protocol h2 is linkerd 1 configuration"):
        load_config("routers:\n- protocol: h2\n")


def test_check_accepts_the_protocol_once_registered(line_protocol: None) -> None:
    config = load_config(f"routers:\n- protocol: {KIND}\n  servers: [{{port: 0}}]\n")
    assert config.routers[0].protocol == KIND


# -- the core names no protocol ----------------------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _core_files() -> Iterator[Path]:
    yield REPO / "l5d_twisted" / "mesh.py"
    yield from sorted((REPO / "l5d_twisted" / "router").glob("*.py"))


@pytest.mark.parametrize("path", list(_core_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_the_core_imports_no_protocol_codec(path: Path) -> None:
    # messages (http.message) and TLS options (http.tls) are shared by protocols; the
    # HTTP/1 server, client, pool and codec are the http protocol's (protocols/http.py)
    forbidden = {
        f"l5d_twisted.http.{m}"
        for m in ("server", "client", "pool", "codec", "reader", "exchange", "timeouts", "listen")
    }
    assert not _imports(path) & forbidden


def test_mesh_has_no_plugin_kind_branch() -> None:
    source = (REPO / "l5d_twisted" / "mesh.py").read_text()
    literals = [
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    assert not [s for s in literals if s.startswith("io.l5d.")]


def test_a_router_gets_its_protocols_default_port_and_identifier() -> None:
    other = dataclasses.replace(
        LINE_ECHO, name="test.other", default_port=4777, default_identifier="io.l5d.path"
    )
    PROTOCOLS.register("test.other", NoConfig)(lambda config: other)
    try:
        router = load_config("routers:\n- protocol: test.other\n").routers[0]
        assert [s.port for s in router.servers] == [4777]
        assert [spec.kind for spec in router.identifier] == ["io.l5d.path"]
        listed = load_config(
            "routers:\n- protocol: test.other\n  servers: [{ip: 127.0.0.2}]\n"
        ).routers[0]
        assert listed.servers[0].port == 4777
        chosen = load_config(
            "routers:\n- protocol: test.other\n  identifier: {kind: io.l5d.header.token}\n"
        ).routers[0]
        assert [spec.kind for spec in chosen.identifier] == ["io.l5d.header.token"]
    finally:
        PROTOCOLS.unregister("test.other")


def test_the_http_protocol_supplies_the_config_defaults() -> None:
    # the default classifier is still the config's (ServiceParams), held equal to http's
    http = protocol_named("http")
    router = load_config("routers: [{}]").routers[0]
    assert [spec.kind for spec in router.identifier] == [http.default_identifier]
    assert (
        router.service.params_for(router.dst_prefix).response_classifier.kind
        == http.default_classifier
    )
    assert router.servers[0].port == http.default_port
