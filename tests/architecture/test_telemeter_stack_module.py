"""A telemeter that inserts stack modules touches no core file (issue 13): a test-only
telemeter, registered here, contributes two modules through ``stack_edits``; a real Mesh
inserts them into every router's stacks (one in the server layer, one in the endpoint
layer, each next to a named role) and requests through the proxy show both at work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted
import treq
from l5d_testing import free_port
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Site

from l5d_twisted.config import load_config
from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request, Response
from l5d_twisted.mesh import Mesh
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.request_context import CONNECTION, Key
from l5d_twisted.router.stacks import DEFAULT_STACKS, StackEdit, StackParams
from l5d_twisted.service import Filter, Module, Params, Service
from l5d_twisted.telemetry.telemeter import TelemeterBase

KIND = "test.tagger"
PEER: Key[str] = Key("test.tagger.peer")  # a plugin's own typed context key


@dataclass(frozen=True)
class TaggerConfig:
    tag: str = knob("tagged", doc="the x-tag value")


class PeerFilter(Filter[Request, Response]):
    """Server layer: notes the client's address (from the connection in the context)."""

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        peer = request.ctx[CONNECTION].peer
        request.ctx[PEER] = f"{peer.host}:{peer.port}"
        return service(request)


class TagFilter(Filter[Request, Response]):
    """Endpoint layer: tags what goes upstream with the tag, the endpoint and the peer."""

    def __init__(self, tag: str, address: Any) -> None:
        self.value = f"{tag} {address.show()}".encode()

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        request.headers.set(b"x-tag", self.value)
        request.headers.set(b"x-peer", request.ctx.get(PEER, "?").encode())
        return service(request)


class Tagger(TelemeterBase):
    def __init__(self, config: TaggerConfig) -> None:
        self.stack_edits = (
            StackEdit("server", Module("peer", self._peer), before="stats"),
            StackEdit("endpoint", Module("tag", self._tag), before="failureAccrual"),
        )
        self.tag = config.tag

    def _peer(
        self, params: Params, next_: Service[Request, Response]
    ) -> Service[Request, Response]:
        return PeerFilter().and_then(next_)

    def _tag(self, params: Params, next_: Service[Request, Response]) -> Service[Request, Response]:
        return TagFilter(self.tag, params[StackParams.ADDRESS]).and_then(next_)


def make_tagger(config: TaggerConfig, ctx: PluginContext) -> Tagger:
    return Tagger(config)


@pytest.fixture
def tagger() -> Iterator[None]:
    TELEMETERS.register(KIND, TaggerConfig)(make_tagger)
    try:
        yield
    finally:
        TELEMETERS.unregister(KIND)


class Echo(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return request.getHeader(b"x-tag") + b"|" + request.getHeader(b"x-peer")


@pytest_twisted.async_yield_fixture
async def mesh(tagger: None) -> AsyncIterator[tuple[Mesh, int, int]]:
    backend = reactor.listenTCP(0, Site(Echo()), interface="127.0.0.1")
    backend_port = backend.getHost().port
    proxy_port = free_port()
    config = load_config(
        f"""
admin: {{ip: 127.0.0.1, port: 0}}
routers:
- protocol: http
  label: out
  servers: [{{ip: 127.0.0.1, port: {proxy_port}}}]
  dtab: /svc/hello => /$/inet/127.0.0.1/{backend_port}
telemetry:
- kind: {KIND}
  tag: blue
- kind: io.l5d.recentRequests
"""
    )
    running = Mesh(config, reactor, env={})
    await running.start()
    try:
        yield running, proxy_port, backend_port
    finally:
        await running.stop(0.0, drain_period_s=0.0)
        await backend.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_telemeter_inserts_modules_next_to_named_roles(mesh: tuple[Mesh, int, int]) -> None:
    running, proxy_port, backend_port = mesh
    stacks = DEFAULT_STACKS.edited(running.stack_edits)
    assert stacks.server.roles == ["peer", "stats", "recentRequests"]
    assert stacks.endpoint.roles == ["tag", "failureAccrual", "failFast", "attemptTimeout"]
    agent_response = await treq.get(
        f"http://127.0.0.1:{proxy_port}/", headers={b"Host": [b"hello"]}, persistent=False
    )
    body = await agent_response.content()
    tag, _, peer = body.partition(b"|")
    assert tag == f"blue 127.0.0.1:{backend_port}".encode()
    host, _, port = peer.partition(b":")
    assert host == b"127.0.0.1" and 0 < int(port) < 65536 and int(port) != proxy_port
    # both plugins' modules live side by side: recentRequests recorded the same request
    (record,) = running.recent_requests.recent_requests.to_json()
    assert (record["router"], record["dst_path"], record["status"]) == ("out", "/svc/hello", 200)


def test_an_edit_names_a_role_of_the_layer() -> None:
    module: Module[Request, Response] = Module("x", lambda params, next_: next_)
    with pytest.raises(ValueError, match="exactly one of before= or after="):
        StackEdit("service", module)
    with pytest.raises(KeyError, match="no module with role 'nope'"):
        DEFAULT_STACKS.edited([StackEdit("service", module, after="nope")])
    assert DEFAULT_STACKS.edited(
        [StackEdit("service", module, after="deadline")]
    ).service.roles == ["stats", "deadline", "x", "retries"]
