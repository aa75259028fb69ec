"""The lead's Mesh with our telemeters, in process: a request through the proxy shows up in
the telemeter's Prometheus path, metrics.json, /requests.json and the delegator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
import treq
from l5d_testing import free_port
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from l5d_twisted.config import load_config
from l5d_twisted.mesh import Mesh


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


@pytest_twisted.async_yield_fixture
async def mesh() -> AsyncIterator[tuple[Mesh, int, int]]:
    backend = reactor.listenTCP(0, Site(Hello()), interface="127.0.0.1")
    backend_port = backend.getHost().port
    proxy_port, admin_port = free_port(), free_port()
    config = load_config(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
routers:
- protocol: http
  label: out
  servers: [{{ip: 127.0.0.1, port: {proxy_port}}}]
  dtab: /svc/hello => /$/inet/127.0.0.1/{backend_port}
telemetry:
- kind: io.l5d.prometheus
  path: /metrics
  prefix: l5d_
- kind: io.l5d.recentRequests
  capacity: 5
"""
    )
    running = Mesh(config, reactor, env={})
    await running.start()
    try:
        yield running, proxy_port, admin_port
    finally:
        await running.stop(0.0)
        await backend.stopListening()


@pytest_twisted.ensureDeferred
async def test_requests_are_counted_and_recorded(mesh: tuple[Mesh, int, int]) -> None:
    _, proxy_port, admin_port = mesh
    for host in (b"hello", b"hello", b"nowhere"):
        response = await treq.get(f"http://127.0.0.1:{proxy_port}/x", headers={b"Host": [host]})
        await response.content()
    admin = f"http://127.0.0.1:{admin_port}"

    text = (await (await treq.get(admin + "/metrics")).content()).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("l5d_rt:service:requests", (("rt", "out"), ("service", "svc/hello")))] == 2
    assert samples[("l5d_rt:service:success", (("rt", "out"), ("service", "svc/hello")))] == 2
    assert (
        samples[("l5d_rt:server:requests", (("rt", "out"), ("server", f"127.0.0.1/{proxy_port}")))]
        == 3
    )
    assert (
        samples[
            ("l5d_rt:server:status:5XX", (("rt", "out"), ("server", f"127.0.0.1/{proxy_port}")))
        ]
        >= 1
    )

    metrics = json.loads(
        await (await treq.get(admin + "/admin/metrics.json?q=rt/out/service")).content()
    )
    assert metrics["rt/out/service/svc/hello/requests"] == 2

    records = json.loads(await (await treq.get(admin + "/requests.json")).content())
    assert len(records) == 3
    newest, _, oldest = records
    assert (
        oldest["dst_path"] == "/svc/hello" and oldest["status"] == 200 and oldest["method"] == "GET"
    )
    assert "inet" in oldest["client_id"]
    assert (
        newest["dst_path"] == "/svc/nowhere"
        and newest["status"] is not None
        and newest["status"] >= 400
    )
    assert newest["error"]

    explained = json.loads(
        await (await treq.get(admin + "/delegator.json?path=/svc/hello")).content()
    )
    assert explained["router"] == "out" and explained["text"]
