"""``servers[].addForwardedHeader``: linkerd 1's RFC 7239 ``Forwarded`` element, its labelers,
appending to a client's header, and a real router adding it on the way to the backend."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.forwarded import ForwardedConfig, LabelerConfig
from l5d_twisted.http.forwarded import ForwardedFilter, forwarded_filter
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.request_context import CONNECTION, Connection
from l5d_twisted.service import Service


class _Transport:
    def __init__(self, local: Any, peer: Any) -> None:
        self._local, self._peer = local, peer

    def getHost(self) -> Any:  # noqa: N802
        return self._local

    def getPeer(self) -> Any:  # noqa: N802
        return self._peer


V4 = Connection(
    _Transport(IPv4Address("TCP", "10.0.0.1", 4140), IPv4Address("TCP", "192.0.2.43", 50001))
)
V6 = Connection(
    _Transport(IPv6Address("TCP", "::", 4140), IPv6Address("TCP", "2001:db8:cafe::17", 50002))
)


class _Echo(Service[Request, Response]):
    def __init__(self) -> None:
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> defer.Deferred[Response]:
        self.seen.append(request)
        return defer.succeed(Response(200))


def _forwarded(
    config: ForwardedConfig | ForwardedFilter,
    connection: Connection | None = V4,
    uri: bytes = b"/a",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    echo = _Echo()
    request = Request(b"GET", uri, Headers(headers if headers is not None else [(b"Host", b"web")]))
    if connection is not None:
        request.ctx[CONNECTION] = connection
    made = config if isinstance(config, ForwardedFilter) else forwarded_filter(config, "incoming")
    made.and_then(echo)(request)
    values = echo.seen[0].headers.get_all(b"forwarded")
    assert len(values) == 1
    return values[0]


def _config(
    by_kind: str, for_kind: str, by: str | None = None, for_: str | None = None
) -> ForwardedConfig:
    return ForwardedConfig(LabelerConfig(by_kind, by), LabelerConfig(for_kind, for_))


def test_clear_ip_and_ip_port_labelers() -> None:
    assert _forwarded(_config("ip:port", "ip")) == b'by="10.0.0.1:4140";for=192.0.2.43;host=web'
    assert _forwarded(_config("ip", "ip:port")) == b'by=10.0.0.1;for="192.0.2.43:50001";host=web'
    # IPv6 is bracketed and quoted; an unspecified address (a server on ::) is unknown
    assert _forwarded(_config("ip", "ip"), V6) == b'by=unknown;for="[2001:db8:cafe::17]";host=web'
    assert (
        _forwarded(_config("ip:port", "ip:port"), V6)
        == b'by=unknown;for="[2001:db8:cafe::17]:50002";host=web'
    )
    # no connection known (a request made in memory): unknown, as linkerd 1
    assert _forwarded(_config("ip", "ip"), None) == b"by=unknown;for=unknown;host=web"


def test_static_and_router_labels_are_obfuscated() -> None:
    config = _config("static", "router", by="linkerd")
    assert _forwarded(config) == b"by=_linkerd;for=_incoming;host=web"
    assert _forwarded(_config("static", "ip", by="_already")).startswith(b"by=_already;")


_RANDOM = re.compile(rb"^by=(_[A-Za-z0-9]{6});for=(_[A-Za-z0-9]{6});host=web$")


def test_request_random_is_new_per_request() -> None:
    config = ForwardedConfig()  # addForwardedHeader: {} -> requestRandom both
    labels = set()
    for _ in range(20):
        match = _RANDOM.match(_forwarded(config))
        assert match is not None
        labels.add(match.group(2))
    assert len(labels) > 15


def test_connection_random_is_stable_per_connection() -> None:
    config = forwarded_filter(_config("connectionRandom", "connectionRandom"), "incoming")
    first = _RANDOM.match(_forwarded(config))
    again = _RANDOM.match(_forwarded(config))
    assert first is not None and again is not None
    assert first.groups() == again.groups()
    assert first.group(1) != first.group(2)
    other = Connection(
        _Transport(IPv4Address("TCP", "10.0.0.1", 4140), IPv4Address("TCP", "192.0.2.44", 50003))
    )
    third = _RANDOM.match(_forwarded(config, other))
    assert third is not None and third.group(2) != first.group(2)


def test_appended_to_the_clients_header_with_host_and_proto() -> None:
    value = _forwarded(
        _config("static", "ip", by="l5d"),
        uri=b"http://web:8080/x",
        headers=[(b"Forwarded", b"for=_a"), (b"forwarded", b"for=_b;by=_c")],
    )
    assert value == b'for=_a, for=_b;by=_c, by=_l5d;for=192.0.2.43;host="web:8080";proto=http'


def test_config_defaults_and_refusals() -> None:
    router = load_config(
        "routers:\n- protocol: http\n  servers:\n  - port: 0\n    addForwardedHeader: {}\n"
        "  - port: 0\n    addForwardedHeader:\n      by: {kind: static, label: linkerd}\n"
        "      for: {kind: 'ip:port'}\n  - port: 0\n"
    ).routers[0]
    assert router.servers[0].add_forwarded_header == ForwardedConfig()
    assert router.servers[0].add_forwarded_header.by.kind == "requestRandom"
    assert router.servers[1].add_forwarded_header == _config("static", "ip:port", by="linkerd")
    assert router.servers[2].add_forwarded_header is None  # off by default (RFC 7239 §8)
    for bad, message in (
        ("{by: {kind: static}}", "needs a label"),
        ("{for: {kind: mac}}", "mac"),
        ("{by: {kind: static, label: 'a b'}}", "obfnode"),
    ):
        with pytest.raises(ConfigErrors) as e:
            load_config(f"routers:\n- servers:\n  - addForwardedHeader: {bad}\n")
        assert message in str(e.value)


def test_a_real_router_adds_it_on_the_way_to_the_backend(processes: Any, tmp_path: Any) -> None:
    from l5d_testing import free_port, wait_for_port

    # a backend that answers with the Forwarded header it received
    backend_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    backend = tmp_path / "backend.py"
    backend.write_text(
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = (self.headers.get('Forwarded') or '').encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    import sys

    processes.start(sys.executable, str(backend), str(backend_port), name="backend")
    config = tmp_path / "l.yaml"
    config.write_text(
        f"admin: {{ip: 127.0.0.1, port: {admin_port}}}\n"
        "routers:\n- protocol: http\n  label: edge\n"
        f"  dtab: /svc/web => /$/inet/127.0.0.1/{backend_port};\n"
        f"  servers:\n  - ip: 127.0.0.1\n    port: {proxy_port}\n"
        "    addForwardedHeader: {by: {kind: router}, for: {kind: 'ip'}}\n"
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", backend_port)
    wait_for_port("127.0.0.1", proxy_port)
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
        s.sendall(
            b"GET /x HTTP/1.1\r\nHost: web\r\nForwarded: for=_client\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"\r\n\r\nfor=_client, by=_edge;for=127.0.0.1;host=web")
