"""Idle expiry end to end, in process: the lead's Mesh with io.l5d.prometheus
``metricsExpiryTtlSecs: 1``; an idle service leaves the exposition, a busy one stays, and
the idle one comes back (its count continuing) when it gets traffic again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from l5d_twisted.config import load_config
from l5d_twisted.mesh import Mesh


class Ok(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"ok"


@pytest_twisted.async_yield_fixture
async def mesh() -> AsyncIterator[tuple[str, str]]:
    backend = reactor.listenTCP(0, Site(Ok()), interface="127.0.0.1")
    config = load_config(
        f"""
admin: {{ip: 127.0.0.1, port: 0}}
routers:
- protocol: http
  label: out
  servers: [{{ip: 127.0.0.1, port: 0}}]
  dtab: /svc => /$/inet/127.0.0.1/{backend.getHost().port}
telemetry:
- kind: io.l5d.prometheus
  metricsExpiryTtlSecs: 1
"""
    )
    running = Mesh(config, reactor, env={})
    await running.start()
    ports = running.ports()
    try:
        yield f"http://127.0.0.1:{ports['out/0']}", f"http://127.0.0.1:{ports['admin']}"
    finally:
        await running.stop(0.0)
        await backend.stopListening()


async def service_requests(admin: str) -> dict[str, float]:
    text = (await (await treq.get(admin + "/admin/metrics/prometheus")).content()).decode()
    return {
        s.labels["service"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "rt:service:requests"
    }


async def send(proxy: str, host: bytes) -> None:
    response = await treq.get(proxy + "/", headers={b"Host": [host]})
    await response.content()
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_idle_service_expires_and_returns(mesh: tuple[str, str]) -> None:
    proxy, admin = mesh
    await send(proxy, b"idle")
    await send(proxy, b"busy")
    assert await service_requests(admin) == {"svc/idle": 1.0, "svc/busy": 1.0}
    for _ in range(60):  # up to 3 s, busy all along
        await send(proxy, b"busy")
        await deferLater(reactor, 0.05, lambda: None)
        if "svc/idle" not in await service_requests(admin):
            break
    seen = await service_requests(admin)
    assert "svc/idle" not in seen and "svc/busy" in seen
    await send(proxy, b"idle")
    assert (await service_requests(admin))["svc/idle"] == 2.0
