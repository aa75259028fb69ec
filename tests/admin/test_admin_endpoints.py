"""Admin endpoints against a fake AdminTarget, over real loopback HTTP (treq)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
import treq
from fake_mesh import FakeMesh, Traffic
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from l5d_twisted.admin.server import AdminServer
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.registry import TELEMETERS


class Admin:
    def __init__(self, mesh: FakeMesh, port: Any) -> None:
        self.mesh = mesh
        self.port = port
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    async def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        response = await treq.request(method, self.base + path)
        body = await response.content()
        headers = {
            k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()
        }
        return response.code, headers, body

    async def json(self, path: str) -> tuple[int, Any]:
        code, _, body = await self.get(path)
        return code, json.loads(body)


@pytest_twisted.async_yield_fixture
async def admin_for() -> AsyncIterator[Any]:
    ports = []

    def start(mesh: FakeMesh) -> Admin:
        port = AdminServer(mesh, reactor).listen("127.0.0.1", 0)
        ports.append(port)
        return Admin(mesh, port)

    yield start
    for port in ports:
        await port.stopListening()


def fed_mesh(allow_shutdown: bool = False) -> FakeMesh:
    mesh = FakeMesh(Clock(), allow_shutdown=allow_shutdown)
    traffic = Traffic(mesh, hello_rps=50, world_rps=30)
    traffic.step(1.0)
    return mesh


@pytest_twisted.ensureDeferred
async def test_ping_and_unknown_path_lists_endpoints(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, _, body = await admin.get("/admin/ping")
    assert (code, body) == (200, b"pong")
    code, headers, body = await admin.get("/nope")
    assert code == 404
    text = body.decode()
    assert (
        "no admin endpoint at /nope" in text
        and "/delegator.json" in text
        and "/admin/metrics.json" in text
    )
    assert "Traceback" not in text


@pytest_twisted.ensureDeferred
async def test_metrics_json_names_filter_and_pretty(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, metrics = await admin.json("/admin/metrics.json")
    assert code == 200
    assert metrics["rt/outgoing/service/svc/hello/requests"] == 50
    assert metrics["rt/outgoing/service/svc/hello/success"] == 40
    assert metrics["rt/outgoing/service/svc/hello/failures"] == 10
    assert metrics["rt/outgoing/server/127.0.0.1/4140/requests"] == 80
    assert "rt/outgoing/service/svc/hello/request_latency_ms.p99" in metrics
    code, filtered = await admin.json("/admin/metrics.json?q=svc/world")
    assert filtered and all("svc/world" in k for k in filtered)
    _, _, pretty = await admin.get("/admin/metrics.json?pretty=1&q=status")
    assert pretty.startswith(b"{\n  ")


@pytest_twisted.ensureDeferred
async def test_default_prometheus_path_is_valid_exposition(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, headers, body = await admin.get("/admin/metrics/prometheus")
    assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["rt:service:requests"].samples
    }
    assert samples[("rt:service:requests", (("rt", "outgoing"), ("service", "svc/hello")))] == 50


@pytest_twisted.ensureDeferred
async def test_telemeter_resources_are_mounted(admin_for: Any) -> None:
    mesh = fed_mesh()
    plugin = TELEMETERS.get("io.l5d.prometheus")
    telemeter = plugin.factory(
        plugin.config_type(path="/metrics", prefix="l5d_"),
        PluginContext(reactor=Clock(), stats=mesh.metrics.stats),
    )
    mesh.telemeters.append(telemeter)
    admin = admin_for(mesh)
    code, _, body = await admin.get("/metrics")
    assert (
        code == 200 and b'l5d_rt:service:requests{rt="outgoing",service="svc/hello"} 50.0' in body
    )
    _, _, listing = await admin.get("/missing")
    assert b"/metrics" in listing
    # A telemeter's path refuses other methods like every GET endpoint (not a 500).
    code, headers, body = await admin.get("/metrics", method="POST")
    assert code == 405 and headers["allow"] == "GET, HEAD" and b"internal error" not in body


@pytest_twisted.ensureDeferred
async def test_config_client_and_namer_state(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    assert await admin.json("/config.json") == (
        200,
        {"routers": [{"label": "outgoing"}, {"label": "incoming"}]},
    )
    code, state = await admin.json("/client_state.json")
    assert code == 200
    assert state["outgoing"]["%/io.l5d.port/4141/#/io.l5d.fs/hello"] == {
        "state": "bound",
        "addresses": ["127.0.0.1:4141"],
    }
    assert state["incoming"] == {}
    assert await admin.json("/namer_state/io.l5d.fs.json") == (200, {"hello": ["127.0.0.1:7777"]})
    code, body = await admin.json("/namer_state/io.l5d.k8s.json")
    assert code == 404 and "io.l5d.k8s" in body["error"] and "/io.l5d.fs" in body["error"]


@pytest_twisted.ensureDeferred
async def test_delegator_json_explains_with_override(admin_for: Any) -> None:
    mesh = fed_mesh()
    admin = admin_for(mesh)
    code, body = await admin.json(
        "/delegator.json?router=incoming&path=/svc/hello&dtab=/svc/hello%3D%3E/%23/io.l5d.fs/v2"
    )
    assert code == 200, body
    assert body["router"] == "incoming" and body["path"] == "/svc/hello"
    assert body["override"] == Dtab.read("/svc/hello=>/#/io.l5d.fs/v2").show()
    assert body["explanation"]["children"][0]["bound"] == "/#/io.l5d.fs/svc/hello"
    dtab, path = mesh.routers[1].interpreter.calls[-1]
    assert dtab == Dtab.read("/svc=>/$/inet/127.0.0.1/7778;/svc/hello=>/#/io.l5d.fs/v2")
    code, body = await admin.json("/delegator.json?path=/svc/x")  # default: first router
    assert code == 200 and body["router"] == "outgoing"


@pytest_twisted.ensureDeferred
async def test_delegator_json_errors_are_clear(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, body = await admin.json("/delegator.json?path=/svc/x&dtab=/svc%3D%3E%3D%3E")
    assert code == 400 and body["error"].startswith("bad dtab: ")
    code, body = await admin.json("/delegator.json?path=svc")
    assert code == 400 and "bad path" in body["error"]
    code, body = await admin.json("/delegator.json")
    assert code == 400 and "path" in body["error"]
    code, body = await admin.json("/delegator.json?router=nope&path=/svc/x")
    assert code == 404 and "outgoing" in body["error"]
    code, body = await admin.json("/delegator.json?path=/boom")
    assert code == 500 and "naming exploded" in body["error"] and "Traceback" not in body["error"]


@pytest_twisted.ensureDeferred
async def test_pages_and_static_files(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    for path, marker in (
        ("/", b"dashboard.js"),
        ("/delegator", b"delegator.js"),
        ("/static/dashboard.css", b"prefers-color-scheme"),
    ):
        code, headers, body = await admin.get(path)
        assert code == 200 and marker in body, path
    code, headers, _ = await admin.get("/static/dashboard.js")
    assert headers["content-type"].endswith("javascript; charset=utf-8")
    for bad in ("/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/nothing.js"):
        code, _, body = await admin.get(bad)
        assert code == 404 and b"Traceback" not in body, bad


@pytest_twisted.ensureDeferred
async def test_recent_requests_json_and_page(admin_for: Any) -> None:
    mesh = fed_mesh()
    mesh.recent_requests.record(
        router="outgoing",
        method="GET",
        uri="/<script>",
        dst_path="/svc/x",
        client_id="/$/inet/a/1",
        status=None,
        latency_ms=1.5,
        error="ConnectionFailed: refused",
    )
    admin = admin_for(mesh)
    code, records = await admin.json("/requests.json")
    assert code == 200 and len(records) == 10
    assert records[0]["uri"] == "/<script>" and records[0]["error"] == "ConnectionFailed: refused"
    code, _, page = await admin.get("/requests")
    assert code == 200 and b"&lt;script&gt;" in page and b"<script>" not in page


@pytest_twisted.ensureDeferred
async def test_requests_page_without_the_telemeter(admin_for: Any) -> None:
    mesh = fed_mesh()
    mesh.recent_requests = None
    admin = admin_for(mesh)
    code, _, page = await admin.get("/requests")
    assert code == 200 and b"io.l5d.recentRequests" in page
    assert await admin.json("/requests.json") == (200, [])


@pytest_twisted.ensureDeferred
async def test_shutdown_needs_post_and_permission(admin_for: Any) -> None:
    denied = admin_for(fed_mesh(allow_shutdown=False))
    code, headers, _ = await denied.get("/admin/shutdown")
    assert code == 405 and headers["allow"] == "POST"
    code, _, body = await denied.get("/admin/shutdown", method="POST")
    assert code == 403 and b"allowShutdown" in body
    assert denied.mesh.shutdowns == []
    allowed = admin_for(fed_mesh(allow_shutdown=True))
    code, _, body = await allowed.get("/admin/shutdown?graceMs=250", method="POST")
    assert code == 202
    await deferLater(reactor, 0.05, lambda: None)  # the shutdown is scheduled after the reply
    assert allowed.mesh.shutdowns == [0.25]


@pytest_twisted.ensureDeferred
async def test_other_methods_are_rejected(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, headers, _ = await admin.get("/admin/metrics.json", method="POST")
    assert code == 405 and "GET" in headers["allow"]


@pytest_twisted.ensureDeferred
async def test_a_failing_handler_gives_500_without_traceback(admin_for: Any) -> None:
    mesh = fed_mesh()

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret internals")

    mesh.config_json = broken  # type: ignore[method-assign]
    admin = admin_for(mesh)
    code, _, body = await admin.get("/config.json")
    assert code == 500 and b"secret" not in body and b"Traceback" not in body
    code, _, _ = await admin.get("/admin/ping")
    assert code == 200


@pytest_twisted.ensureDeferred
async def test_head_answers_without_body(admin_for: Any) -> None:
    admin = admin_for(fed_mesh())
    code, headers, body = await admin.get("/admin/metrics.json", method="HEAD")
    assert code == 200 and body == b"" and headers["content-type"] == "application/json"
