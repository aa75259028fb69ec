"""Admin hardening (issue 10, finding 8): long metrics.json q, CSP on every response,
and the metrics endpoints rendered in steps."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest_twisted
import treq
from fake_mesh import FakeMesh, Traffic
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from l5d_twisted.admin.server import CONTENT_SECURITY_POLICY, AdminServer
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.metrics_json import MAX_QUERY_CHARS, metrics_json


@pytest_twisted.async_yield_fixture
async def admin() -> AsyncIterator[tuple[str, FakeMesh]]:
    mesh = FakeMesh(Clock())
    Traffic(mesh, hello_rps=50, world_rps=30).step(1.0)
    plugin = TELEMETERS.get("io.l5d.prometheus")
    mesh.telemeters = [
        plugin.factory(
            plugin.config_type(path="/metrics"),
            PluginContext(reactor=Clock(), stats=mesh.metrics.stats),
        )
    ]
    port = AdminServer(mesh, reactor).listen("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port.getHost().port}", mesh
    await port.stopListening()


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    response = await treq.get(url)
    body = await response.content()
    headers = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
    headers["content-length"] = str(response.length)  # the Agent keeps it apart from the headers
    return response.code, headers, body


def raw_get(port: int, target: bytes) -> bytes:
    """A request whose line is longer than treq would send; everything until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest_twisted.ensureDeferred
async def test_a_long_q_gets_a_400_with_the_reason(admin: tuple[str, FakeMesh]) -> None:
    base, mesh = admin
    code, _, body = await get(base + "/admin/metrics.json?q=" + "a" * (MAX_QUERY_CHARS + 1))
    assert code == 400
    assert f"at most {MAX_QUERY_CHARS}" in json.loads(body)["error"]
    code, _, body = await get(base + "/admin/metrics.json?q=" + "a" * MAX_QUERY_CHARS)
    assert (code, json.loads(body)) == (200, {})
    code, _, body = await get(base + "/admin/metrics.json?q=svc/hello/requests")
    assert code == 200 and body == metrics_json(mesh.metrics, "svc/hello/requests")


@pytest_twisted.ensureDeferred
async def test_a_request_line_over_the_limit_is_answered_not_dropped(
    admin: tuple[str, FakeMesh],
) -> None:
    base, _ = admin
    port = int(base.rsplit(":", 1)[1])
    for length in (17_000, 300_000):  # twisted.web closed these without a word
        data = await deferToThread(raw_get, port, b"/admin/metrics.json?q=" + b"a" * length)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 414 "), data[:200]
        assert b"content-security-policy: " + CONTENT_SECURITY_POLICY.encode() in head
        assert b"at most 1024 characters" in body


@pytest_twisted.ensureDeferred
async def test_every_admin_response_carries_csp_and_nosniff(admin: tuple[str, FakeMesh]) -> None:
    base, _ = admin
    paths = [
        "/",
        "/delegator",
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/requests",
        "/requests.json",
        "/admin/metrics.json",
        "/admin/metrics/prometheus",
        "/metrics",
        "/config.json",
        "/admin/ping",
        "/nope",
        "/static/nope.js",
        "/delegator.json?router=nope&path=/svc/a",
        "/admin/shutdown",
        "/admin/metrics.json?q=" + "a" * 2000,
    ]
    for path in paths:
        code, headers, _ = await get(base + path)
        assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, (path, code)
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("x-frame-options") == "DENY", path
    # Only its own scripts, styles and fetches; nothing inline, no framing.
    policy = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and "unsafe-inline" not in CONTENT_SECURITY_POLICY


@pytest_twisted.ensureDeferred
async def test_scrapes_keep_their_exposition_and_length(admin: tuple[str, FakeMesh]) -> None:
    base, mesh = admin
    code, headers, body = await get(base + "/admin/metrics.json")
    assert code == 200 and body == metrics_json(mesh.metrics)
    assert headers["content-length"] == str(len(body))
    for path in ("/admin/metrics/prometheus", "/metrics"):
        code, headers, body = await get(base + path)
        assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert headers["content-length"] == str(len(body))
        assert b'rt:service:requests{rt="outgoing",service="svc/hello"} 50.0\n' in body


def test_the_admin_server_renders_metrics_on_its_cooperator() -> None:
    """With a cooperator that runs one step per clock turn, a scrape takes many turns."""
    from twisted.web.test.requesthelper import DummyRequest

    from l5d_twisted.telemetry.render import stepping_cooperator

    clock = Clock()
    mesh = FakeMesh(Clock())
    Traffic(mesh, hello_rps=50, world_rps=30).step(1.0)
    server = AdminServer(mesh, clock, cooperator=stepping_cooperator(clock))
    for path in (b"/admin/metrics/prometheus", b"/admin/metrics.json"):
        request = DummyRequest([b""])
        request.path = path
        written: list[bytes] = []
        request.write = written.append  # type: ignore[method-assign]
        server.handle(request)
        clock.advance(1)
        assert not request.finished  # not rendered in one turn
        turns = 1
        while not request.finished and turns < 10_000:
            clock.advance(1)
            turns += 1
        assert request.finished and turns > 2 and written, path
        if path.endswith(b".json"):
            assert b"".join(written) == metrics_json(mesh.metrics)
