"""What a request's own dtab may do (issue 10, finding 2): address built-ins, the mesh's
own ports, metadata addresses, and the loop marker.

The router runs in memory on a ``Clock`` with fake endpoints that record what they were
sent: a refused request must reach no endpoint at all.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import CallDepthExceeded, Forbidden, RoutingLoop
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.server import REQUEST_DTAB_ADDRESSES
from l5d_twisted.naming.addr import AddrBound, Address, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, Var
from l5d_twisted.router import headers as h
from l5d_twisted.router.router import Router
from l5d_twisted.router.trust import OwnAddresses, address_rule, reaches_addresses
from l5d_twisted.service import Service, Status
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics
from l5d_twisted.transformers.port import PortTransformer


class MemoryNamer:
    def __init__(self) -> None:
        self.addrs: dict[str, Var[Any]] = {}

    def set(self, name: str, *hostports: str) -> None:
        addresses = frozenset(
            Address(hp.rsplit(":", 1)[0], int(hp.rsplit(":", 1)[1])) for hp in hostports
        )
        self.addrs.setdefault(name, Var(AddrBound(frozenset()))).update(AddrBound(addresses))

    def lookup(self, path: Path) -> Var[Any]:
        var = self.addrs.get(path.segments[0] if path.segments else "")
        if var is None:
            return Var(Ok(NEG))
        return Var(Ok(Leaf(BoundName(Path.of("#", "mem", path.segments[0]), var, path.drop(1)))))


class Endpoint(Service[Request, Response]):
    def __init__(self, address: Address, sent: list[tuple[Address, Request]]) -> None:
        self.address = address
        self.sent = sent

    def __call__(self, request: Request) -> Deferred[Response]:
        self.sent.append((self.address, request))
        return succeed(Response(200, Headers([(b"content-length", b"0")])))


CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: outgoing
  dtab: |
    /svc => /#/mem;
    /svc/admin => /$/inet/127.0.0.1/9990;
"""
ADMIN = 9990
ROUTER = 4140


class Harness:
    def __init__(
        self,
        config: str = CONFIG,
        transformers: tuple[Any, ...] = (),
        own: OwnAddresses | None = None,
    ) -> None:
        self.clock = Clock()
        self.namer = MemoryNamer()
        self.sent: list[tuple[Address, Request]] = []
        if own is None:
            own = OwnAddresses()
            own.add("127.0.0.1", ROUTER, router=True)
            own.add("127.0.0.1", ADMIN)
        self.own = own

        # DNS: localhost is this host, every other name is TEST-NET
        def resolve(host: str, port: int) -> Deferred[list[str]]:
            return succeed(["127.0.0.1"] if host == "localhost" else ["192.0.2.10"])

        interpreter = Interpreter(
            {Path.read("/mem"): self.namer}, transformers, self.clock, resolve=resolve
        )
        self.metrics = MetricsTree(self.clock)
        self.router = Router(
            load_config(config).routers[0],
            interpreter,
            reactor=self.clock,
            stats=self.metrics.stats,
            ctx=PluginContext(reactor=self.clock),
            rng=random.Random(3),
            endpoint_factory=lambda reactor, address, *a, **kw: Endpoint(address, self.sent),
            own_addresses=own,
        )

    def call(
        self,
        host: str = "hello",
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        addresses_allowed: bool = False,
    ) -> Any:
        request = Request(b"GET", b"/", Headers([(b"Host", host.encode())] + (headers or [])))
        if addresses_allowed:
            request.ctx[REQUEST_DTAB_ADDRESSES] = True
        results: list[Any] = []
        self.router(request).addBoth(lambda r: results.append(getattr(r, "value", r)))
        assert results, "the router answered synchronously"
        return results[0]


def dtab(text: str) -> list[tuple[bytes, bytes]]:
    return [(b"l5d-dtab", text.encode())]


# -- which request dtabs reach addresses ---------------------------------------------------


@pytest.mark.parametrize(
    "dst",
    [
        "/$/inet/127.0.0.1/9990",
        "/$/inet",
        "/$/io.buoyant.rinet/9990/127.0.0.1",
        "/$/io.buoyant.porthostPfx/ph",
        "/$/io.buoyant.hostportPfx/hp",
        "/$",  # the name would pick the built-in
        "/$/io.buoyant.http.domainToPathPfx/$",  # rewrites into /$/inet/...
        "/$/io.buoyant.http.domainToPathPfx",  # its prefix would come from the name
        "/$/io.buoyant.http.subdomainOfPfx/example.com/$",
        "/$/some.future.namer/x",  # unknown built-ins: refused (an allowlist)
    ],
)
def test_address_builtins_are_recognised(dst: str) -> None:
    assert reaches_addresses(Path.read(dst))
    assert (
        address_rule(
            Dtab.read(f"/svc/a => /#/mem/a; /svc/b => /#/mem/x | 1 * /#/mem/y & 1 * {dst}")
        )
        is not None
    )


@pytest.mark.parametrize(
    "dst",
    [
        "/#/mem/hello-v2",
        "/srv/world-v2",
        "/$/nil",
        "/$/fail",
        "/$/io.buoyant.http.domainToPathPfx/host",
        "/$/io.buoyant.http.subdomainOfPfx/example.com/svc",
    ],
)
def test_names_the_operator_routes_are_not_addresses(dst: str) -> None:
    assert not reaches_addresses(Path.read(dst))
    assert address_rule(Dtab.read(f"/svc/a => {dst}")) is None


# -- allowAddresses ------------------------------------------------------------------------


@pytest.mark.parametrize("header", [b"l5d-dtab", b"l5d-ctx-dtab", b"L5D-Dtab"])
def test_a_request_dtab_naming_an_address_is_403_and_reaches_nothing(header: bytes) -> None:
    h = Harness()
    h.namer.set("hello", "127.0.0.1:8080")
    error = h.call("hello", [(header, b"/svc/hello => /$/inet/127.0.0.1/9990")])
    assert isinstance(error, Forbidden) and error.status == 403
    assert "/$/inet/127.0.0.1/9990" in error.message
    assert h.sent == []


def test_an_address_request_dtab_is_routed_where_the_server_allows_it() -> None:
    h = Harness()
    response = h.call("hello", dtab("/svc/hello => /$/inet/127.0.0.1/8081"), addresses_allowed=True)
    assert isinstance(response, Response) and response.status == 200
    assert [a for a, _ in h.sent] == [Address("127.0.0.1", 8081)]


def test_a_request_dtab_may_delegate_to_names_the_operator_routes() -> None:
    # part VI of the series: per-request staging
    h = Harness()
    h.namer.set("hello", "127.0.0.1:8080")
    h.namer.set("hello-v2", "127.0.0.1:8082")
    response = h.call("hello", dtab("/svc/hello => /#/mem/hello-v2"))
    assert isinstance(response, Response) and response.status == 200
    assert h.sent[-1][0] == Address("127.0.0.1", 8082)


# -- the mesh's own ports and metadata addresses -------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        f"/$/inet/127.0.0.1/{ADMIN}",
        f"/$/inet/127.0.0.1/{ROUTER}",
        f"/$/inet/127.0.0.7/{ADMIN}",  # another loopback address of the same host
        f"/$/inet/0.0.0.0/{ADMIN}",  # connecting to 0.0.0.0 reaches this host
        f"/$/inet/localhost/{ADMIN}",
        "/$/inet/169.254.169.254/80",
    ],
)
def test_own_ports_and_metadata_are_refused_even_where_addresses_are_allowed(target: str) -> None:
    h = Harness()
    error = h.call("hello", dtab(f"/svc/hello => {target}"), addresses_allowed=True)
    assert isinstance(error, Forbidden) and error.status == 403, error
    assert "may not route here" in error.message
    assert h.sent == []


def test_the_operators_own_route_to_an_own_port_still_works_and_shares_the_endpoint() -> None:
    h = Harness()
    first = h.call("admin")
    assert isinstance(first, Response) and first.status == 200
    refused = h.call(
        "hello", dtab(f"/svc/hello => /$/inet/127.0.0.1/{ADMIN}"), addresses_allowed=True
    )
    assert isinstance(refused, Forbidden)
    again = h.call("admin")
    assert isinstance(again, Response) and again.status == 200
    assert [a for a, _ in h.sent] == [Address("127.0.0.1", ADMIN)] * 2
    client = h.router._clients[
        next(b for b in h.router._clients if b.id.show().endswith(f"/{ADMIN}"))
    ]
    assert all(e.status is Status.OPEN for e in client._endpoints.values()), (
        "a refusal is no endpoint failure"
    )


def test_a_request_dtab_reaching_an_own_port_through_a_namer_is_refused() -> None:
    # allowAddresses off, but the operator's namer lists the admin port: still refused
    h = Harness()
    h.namer.set("hello", "127.0.0.1:8080")
    h.namer.set("sneaky", f"127.0.0.1:{ADMIN}")
    for _ in range(10):
        error = h.call("hello", dtab("/svc/hello => /#/mem/sneaky"))
        assert isinstance(error, Forbidden)
    assert h.sent == []
    # the client's doing: counted apart, never a failure of the service or the endpoint
    flat = flat_metrics(h.metrics)
    assert flat["rt/outgoing/service/svc/hello/client_errors"] == 10
    assert flat.get("rt/outgoing/service/svc/hello/failures", 0) == 0
    assert flat.get("rt/outgoing/client/#/mem/sneaky/failures", 0) == 0
    assert flat.get("rt/outgoing/client/#/mem/sneaky/failure_accrual/removals", 0) == 0


def test_a_transformer_may_send_a_request_dtab_to_a_mesh_router_port_but_not_to_admin() -> None:
    # the daemonset transformer sends outgoing traffic to the incoming router, which may be
    # this very process: per-request staging must keep working through it
    h = Harness(transformers=(PortTransformer(ROUTER),))
    h.namer.set("hello", "127.0.0.1:8080")
    h.namer.set("hello-v2", "127.0.0.1:8082")
    response = h.call("hello", dtab("/svc/hello => /#/mem/hello-v2"))
    assert isinstance(response, Response) and response.status == 200
    assert h.sent[-1][0] == Address("127.0.0.1", ROUTER)
    to_admin = Harness(transformers=(PortTransformer(ADMIN),))
    to_admin.namer.set("hello-v2", "127.0.0.1:8082")
    assert isinstance(to_admin.call("hello", dtab("/svc/hello => /#/mem/hello-v2")), Forbidden)


def test_own_addresses() -> None:
    own = OwnAddresses()
    own.add("127.0.0.1", 4140, router=True)
    own.add("0.0.0.0", 9990)
    own.add("::", 4141, router=True)
    forbidden = own.forbidden
    assert forbidden(Address("127.0.0.1", 4140))
    assert forbidden(Address("127.0.0.1", 9990)) and forbidden(Address("127.1.2.3", 9990))
    assert forbidden(Address("::1", 4141)) and forbidden(Address("::ffff:127.0.0.1", 4141))
    assert forbidden(Address("169.254.169.254", 80)) and forbidden(Address("fd00:ec2::254", 80))
    assert forbidden(Address("fe80::1", 8080)) and forbidden(Address("::ffff:169.254.169.254", 80))
    assert forbidden(Address("metadata-or-me.example", 9990)), (
        "a host name on an own port: cannot tell, refused"
    )
    assert forbidden(Address("localhost", 4140))
    assert not forbidden(Address("127.0.0.1", 8080))
    assert not forbidden(Address("192.0.2.10", 9990)), "TEST-NET: not an address of this host"
    assert not forbidden(Address("world.example", 8080))
    assert not forbidden(Address("127.0.0.1", 4140), transformed=True)
    assert forbidden(Address("127.0.0.1", 9990), transformed=True)
    assert forbidden(Address("169.254.169.254", 4140), transformed=True)


# -- loops -----------------------------------------------------------------------------------


def test_the_loop_marker_cuts_a_loop_at_its_second_visit() -> None:
    h = Harness()
    h.namer.set("hello", "127.0.0.1:8080")
    response = h.call("hello")
    assert isinstance(response, Response)
    forwarded = h.sent[-1][1]
    markers = forwarded.headers.get_all(h_loop := h_LOOP)
    assert len(markers) == 1 and markers[0].startswith(h.router.loop_id)
    # the request comes back to the same router (through /$/inet to itself): cut, unsent
    error = h.call("hello", [(b"Via", b"1.1 linkerd"), (h_loop, markers[0])])
    assert (
        isinstance(error, RoutingLoop)
        and isinstance(error, CallDepthExceeded)
        and error.status == 400
    )
    assert len(h.sent) == 1


def test_the_loop_marker_lets_other_routers_and_other_names_pass() -> None:
    a, b = Harness(), Harness()
    for x in (a, b):
        x.namer.set("hello", "127.0.0.1:8080")
        x.namer.set("world", "127.0.0.1:8081")
    assert isinstance(a.call("hello"), Response)
    marker = a.sent[-1][1].headers.get_all(h_LOOP)
    # outgoing -> incoming: another router passes it on (and adds its own marker)
    assert isinstance(b.call("hello", [(h_LOOP, marker[0])]), Response)
    assert len(b.sent[-1][1].headers.get_all(h_LOOP)) == 2
    # an app that copies every header into a call for another name is no loop
    assert isinstance(a.call("world", [(h_LOOP, marker[0])]), Response)
    assert a.router.loop_id != b.router.loop_id


h_LOOP = h.LOOP
