"""The router end to end in memory: identify -> bind -> balance -> endpoint.

Endpoints are fakes that record what they were sent, the namer is an in-memory one whose
address sets the tests change, and time is a ``Clock``: no network, no sleeps.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import (
    BadDtabHeader,
    BindingTimeout,
    CallDepthExceeded,
    ConnectionFailed,
    IdentificationError,
    MeshError,
    NoHostsAvailable,
)
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.naming.addr import AddrBound, Address, AddrPending, BoundName
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, Var
from l5d_twisted.router.router import SWEEP_INTERVAL_S, Router
from l5d_twisted.service import Service
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics


class MemoryNamer:
    """Names -> live address sets, changed by the test."""

    def __init__(self, prefix: str) -> None:
        self.prefix = Path.read(prefix)
        self.addrs: dict[str, Var[Any]] = {}

    def set(self, name: str, *hostports: str) -> None:
        addresses = frozenset(Address(hp.split(":")[0], int(hp.split(":")[1])) for hp in hostports)
        self.addrs.setdefault(name, Var(AddrBound(frozenset()))).update(AddrBound(addresses))

    def pending(self, name: str) -> Var[Any]:
        return self.addrs.setdefault(name, Var(AddrPending()))

    def lookup(self, path: Path) -> Var[Any]:
        name = path.segments[0] if path.segments else ""
        var = self.addrs.get(name)
        if var is None:
            return Var(Ok(NEG))
        bound = BoundName(Path.of("#", *self.prefix.segments, name), var, path.drop(1))
        return Var(Ok(Leaf(bound)))

    def state(self) -> Any:
        return {}


@dataclass
class FakeEndpoint(Service[Request, Response]):
    address: Address
    log: list[tuple[Address, Request]]
    status_code: int = 200
    hold: bool = False
    held: list[Deferred[Response]] = field(default_factory=list)
    error: BaseException | None = None

    def __call__(self, request: Request) -> Deferred[Response]:
        self.log.append((self.address, request))
        if self.error is not None:
            return fail(self.error)
        if self.hold:
            d: Deferred[Response] = Deferred()
            self.held.append(d)
            return d
        return succeed(Response(self.status_code, Headers([(b"content-length", b"0")])))


class Harness:
    def __init__(self, yaml_text: str) -> None:
        self.clock = Clock()
        self.config = load_config(yaml_text)
        self.namer = MemoryNamer("/mem")
        self.sent: list[tuple[Address, Request]] = []
        self.endpoints: dict[Address, FakeEndpoint] = {}
        self.metrics = MetricsTree(self.clock)
        interpreter = Interpreter({Path.read("/mem"): self.namer}, (), self.clock)
        self.router = Router(
            self.config.routers[0],
            interpreter,
            reactor=self.clock,
            stats=self.metrics.stats,
            ctx=PluginContext(reactor=self.clock),
            rng=random.Random(7),
            endpoint_factory=self._endpoint,
        )

    def _endpoint(
        self,
        reactor: Any,
        address: Address,
        pool: Any,
        stats: Any,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> FakeEndpoint:
        endpoint = self.endpoints.get(address)
        if endpoint is None:
            endpoint = self.endpoints[address] = FakeEndpoint(address, self.sent)
        return endpoint

    def call(
        self,
        host: str = "hello",
        headers: list[tuple[bytes, bytes]] | None = None,
        uri: bytes = b"/",
    ) -> Response | BaseException:
        hdrs = [(b"Host", host.encode())] + (headers or [])
        results: list[Any] = []
        d = self.router(Request(b"GET", uri, Headers(hdrs)))

        def capture(result: Any) -> Any:
            results.append(getattr(result, "value", result))
            return result

        d.addBoth(capture)
        if not results:
            return d  # type: ignore[return-value]
        return results[0]


CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: outgoing
  dtab: |
    /svc => /#/mem;
"""


def cached(config: str, **sizes: int) -> str:
    """``config`` with its router's ``bindingCache`` set to ``sizes`` (YAML keys)."""
    block = ", ".join(f"{key}: {value}" for key, value in sizes.items())
    return config.replace("label: outgoing", f"label: outgoing\n  bindingCache: {{{block}}}", 1)


def ok(result: Any) -> Response:
    assert isinstance(result, Response), result
    return result


def test_routes_by_host_and_adds_linkerd_headers() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    response = ok(h.call("hello"))
    assert response.status == 200
    address, sent = h.sent[-1]
    assert address == Address("127.0.0.1", 8080)
    assert sent.headers.get(b"l5d-dst-service") == b"/svc/hello"
    assert sent.headers.get(b"l5d-dst-client") == b"/#/mem/hello"
    assert len(sent.headers.get(b"l5d-reqid") or b"") == 16
    assert sent.headers.get_all(b"via") == [b"1.1 linkerd"]
    assert response.headers.get_all(b"via") == [b"1.1 linkerd"]


def test_reuses_upstream_request_id_and_appends_via() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    ok(h.call("hello", [(b"l5d-reqid", b"abc"), (b"Via", b"1.1 linkerd")]))
    sent = h.sent[-1][1]
    assert sent.headers.get(b"l5d-reqid") == b"abc"
    assert sent.headers.get_all(b"via") == [b"1.1 linkerd", b"1.1 linkerd"]


def test_override_dtab_header_reroutes_and_is_forwarded_as_context() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    h.namer.set("hello-v2", "127.0.0.1:9090")
    ok(h.call("hello", [(b"l5d-dtab", b"/svc/hello => /#/mem/hello-v2")]))
    address, sent = h.sent[-1]
    assert address.port == 9090
    assert b"l5d-dtab" not in sent.headers
    assert (sent.headers.get(b"l5d-ctx-dtab") or b"").replace(
        b" ", b""
    ) == b"/svc/hello=>/#/mem/hello-v2"
    ok(h.call("hello"))
    assert h.sent[-1][0].port == 8080, "the override applies to that request only"


def test_bad_override_dtab_is_400() -> None:
    h = Harness(CONFIG)
    error = h.call("hello", [(b"l5d-dtab", b"/svc => => nonsense")])
    assert isinstance(error, BadDtabHeader) and error.status == 400
    assert "l5d-dtab" in str(error)


def test_routing_loop_stops_at_max_call_depth() -> None:
    h = Harness(CONFIG.replace("label: outgoing", "label: outgoing\n  maxCallDepth: 3"))
    h.namer.set("hello", "127.0.0.1:8080")
    ok(h.call("hello", [(b"Via", b"1.1 linkerd, 1.1 linkerd, 1.1 linkerd")]))
    error = h.call(
        "hello", [(b"Via", b"1.1 linkerd, 1.1 linkerd"), (b"Via", b"1.1 linkerd, 1.1 linkerd")]
    )
    assert isinstance(error, CallDepthExceeded) and error.status == 400


def test_unidentifiable_request_is_400() -> None:
    h = Harness(CONFIG)
    results: list[Any] = []
    h.router(Request(b"GET", b"/", Headers())).addErrback(lambda f: results.append(f.value))
    assert isinstance(results[0], IdentificationError) and results[0].status == 400


def test_negative_name_explains_the_resolution() -> None:
    h = Harness(CONFIG)
    error = h.call("nobody")
    assert isinstance(error, NoHostsAvailable) and error.status == 502
    body = error.body()
    assert "/svc/nobody" in body
    assert "/svc=>/#/mem" in body.replace(" ", "")
    assert "override dtab" in body


def test_weighted_union_splits_traffic() -> None:
    h = Harness(
        CONFIG.replace(
            "/svc => /#/mem;", "/svc => /#/mem;\n    /svc/hello => 3 * /#/mem/a & 1 * /#/mem/b;"
        )
    )
    h.namer.set("a", "127.0.0.1:1001")
    h.namer.set("b", "127.0.0.1:1002")
    for _ in range(2000):
        ok(h.call("hello"))
    counts = collections.Counter(a.port for a, _ in h.sent)
    assert 0.70 < counts[1001] / 2000 < 0.80, counts


def test_alternation_falls_through_negative_branch() -> None:
    h = Harness(CONFIG.replace("/svc => /#/mem;", "/svc => /#/mem/missing | /#/mem/backup;"))
    h.namer.set("backup", "127.0.0.1:7000")
    ok(h.call("hello"))
    assert h.sent[-1][0].port == 7000


def test_live_address_changes_apply_to_the_next_request() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    ok(h.call("hello"))
    h.namer.set("hello", "127.0.0.1:8081")
    for _ in range(20):
        ok(h.call("hello"))
    assert {a.port for a, _ in h.sent[1:]} == {8081}
    h.namer.set("hello")
    error = h.call("hello")
    assert isinstance(error, NoHostsAvailable)


def test_pending_addresses_hold_requests_until_bound() -> None:
    h = Harness(CONFIG)
    h.namer.pending("hello")
    d = h.call("hello")
    assert isinstance(d, Deferred) and not d.called
    h.namer.set("hello", "127.0.0.1:8080")
    results: list[Any] = []
    d.addBoth(results.append)
    assert isinstance(results[-1], Response)


def test_pending_addresses_time_out_with_binding_timeout() -> None:
    h = Harness(CONFIG.replace("label: outgoing", "label: outgoing\n  bindingTimeoutMs: 500"))
    h.namer.pending("hello")
    d = h.call("hello")
    results: list[Any] = []
    d.addBoth(lambda r: results.append(getattr(r, "value", r)))  # type: ignore[union-attr]
    h.clock.advance(0.49)
    assert not results
    h.clock.advance(0.02)
    assert isinstance(results[-1], BindingTimeout) and results[-1].status == 503
    # (the client's waiters are made at the first wait: issue 17) the message says what
    assert "waiting for the addresses of /#/mem/hello" in str(results[-1])


def test_client_state_and_idle_expiry() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    ok(h.call("hello"))
    assert h.router.client_state() == {
        "/#/mem/hello": {"state": "bound", "addresses": ["127.0.0.1:8080"]}
    }
    steps = int(600 / SWEEP_INTERVAL_S) + 2  # bindingCache.idleTtlSecs' default, 600 s
    for _ in range(steps):
        h.clock.advance(SWEEP_INTERVAL_S)
    assert h.router.client_state() == {}, "an idle client is closed"
    ok(h.call("hello"))
    assert list(h.router.client_state()) == ["/#/mem/hello"], "and rebuilt on demand"


def test_service_and_client_stats_are_recorded() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    for _ in range(3):
        ok(h.call("hello"))
    h.call("nobody")
    flat = flat_metrics(h.metrics)
    assert flat["rt/outgoing/service/svc/hello/requests"] == 3
    assert flat["rt/outgoing/service/svc/hello/success"] == 3
    assert flat["rt/outgoing/client/#/mem/hello/requests"] == 3
    assert flat["rt/outgoing/client/#/mem/hello/status/2XX"] == 3
    assert flat["rt/outgoing/client/#/mem/hello/loadbalancer/size"] == 1
    assert flat["rt/outgoing/service/svc/nobody/failures"] == 1


def test_an_internal_error_costs_one_request_only() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")

    class Broken:
        def identify(self, request: Request) -> Any:
            raise RuntimeError("boom")

    h.router._identifiers = [Broken()]
    error = h.call("hello")
    assert isinstance(error, MeshError) and error.status == 502


def test_fail_fast_takes_an_endpoint_out_at_its_first_connection_failure() -> None:
    h = Harness(CONFIG.replace("label: outgoing", "label: outgoing\n  client:\n    failFast: true"))
    h.namer.set("hello", "127.0.0.1:1001", "127.0.0.1:1002")
    ok(h.call("hello"))  # creates both endpoints
    h.endpoints[Address("127.0.0.1", 1001)].error = ConnectionFailed("connection refused")
    for _ in range(60):
        ok(h.call("hello"))  # a refused connection is requeued to the other endpoint
    to_broken = [a for a, _ in h.sent[1:] if a.port == 1001]
    assert len(to_broken) == 1, (
        "after one refusal the endpoint gets no traffic until its backoff ends"
    )


def test_route_and_client_caches_are_bounded() -> None:
    """Names come from request headers: random ones must not grow the caches unbounded."""
    h = Harness(cached(CONFIG, paths=5, clients=3))
    for i in range(20):
        h.namer.set(f"svc{i}", f"127.0.0.1:{2000 + i}")
    for i in range(20):
        h.clock.advance(1)
        ok(h.call(f"svc{i}"))
    assert len(h.router._routes) == 5
    assert len(h.router.client_state()) == 3
    assert set(h.router.client_state()) == {"/#/mem/svc17", "/#/mem/svc18", "/#/mem/svc19"}, (
        "least recently used go first"
    )
    ok(h.call("svc0"))  # an evicted name is rebuilt on demand
    assert h.sent[-1][0].port == 2000


def test_failed_discovery_says_so_in_the_no_hosts_error() -> None:
    from l5d_twisted.naming.addr import AddrFailed

    h = Harness(CONFIG)
    h.namer.pending("hello").update(AddrFailed("the API server answered 403"))
    error = h.call("hello")
    assert isinstance(error, NoHostsAvailable)
    assert "discovery failed (the API server answered 403)" in error.message


def test_a_weight_change_keeps_the_endpoint_and_its_state() -> None:
    h = Harness(CONFIG)
    h.namer.set("hello", "127.0.0.1:8080")
    ok(h.call("hello"))
    assert len(h.endpoints) == 1
    h.namer.addrs["hello"].update(AddrBound(frozenset({Address("127.0.0.1", 8080, 2.0)})))
    ok(h.call("hello"))
    assert len(h.endpoints) == 1  # no second endpoint (new pool, lost accrual) was built
    (client,) = h.router._clients.values()
    (node,) = client.balancer.nodes  # type: ignore[attr-defined]
    assert node.weight == 2.0
