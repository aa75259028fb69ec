"""Failure accrual counts what the request's *service* classifier calls a failure (issue 16).

The reported case: world (hello's dependency) was down, hello answered 502 for it, and the
mesh ejected hello (``lb 0/1``).  linkerd 1 does the same by default: its failure accrual
(router/core ``com.twitter.finagle.buoyant.FailureAccrualFactory``) classifies with the
request's ``ResponseClassifierCtx``, the service's ``responseClassifier``, whose default
(``io.l5d.http.nonRetryable5XX``) calls every 5XX a failure; and Finagle's balancers pick
among all endpoints when none is available, so the ejected hello still serves.  A service
whose 5XX must not eject its instances says so with its classifier, per prefix.

These run a real :class:`~l5d_twisted.router.router.Router` over in-memory endpoints on a
``task.Clock`` (default ``client.failureAccrual``: 5 consecutive failures, jittered
backoff 5..300 s).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from l5d_twisted.admin.endpoints import read_client
from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.naming.addr import AddrBound, Address, BoundName
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, Var
from l5d_twisted.resilience.accrual import ENDPOINT
from l5d_twisted.router.router import Router
from l5d_twisted.service import Service
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics

HELLO = "127.0.0.1:7777"
WORLD = ("127.0.0.1:7778", "127.0.0.1:7779")

DEFAULT = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: incoming
  dtab: /svc => /#/mem;
"""

# hello's 5XX are its dependency's: its classifier says they are no failure of hello's.
HELLO_ALL_SUCCESSFUL = (
    DEFAULT
    + """  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc/hello
      responseClassifier:
        kind: io.l5d.http.allSuccessful
"""
)


class MemoryNamer:
    def __init__(self) -> None:
        self.prefix = Path.read("/mem")
        self.addrs: dict[str, Var[Any]] = {}

    def set(self, name: str, *hostports: str) -> None:
        addresses = frozenset(Address(h, int(p)) for h, p in (hp.split(":") for hp in hostports))
        self.addrs.setdefault(name, Var(AddrBound(frozenset()))).update(AddrBound(addresses))

    def lookup(self, path: Path) -> Var[Any]:
        var = self.addrs.get(path.segments[0] if path.segments else "")
        if var is None:
            return Var(Ok(NEG))
        bound = BoundName(Path.of("#", "mem", path.segments[0]), var, path.drop(1))
        return Var(Ok(Leaf(bound)))

    def state(self) -> Any:
        return {}


@dataclass
class App(Service[Request, Response]):
    """An app instance answering ``status`` (hello answers 502 while world is down)."""

    status_code: int = 200
    received: int = 0
    seen: list[str] = field(default_factory=list)

    def __call__(self, request: Request) -> Deferred[Response]:
        self.received += 1
        self.seen.append(request.ctx.get(ENDPOINT, ""))
        return succeed(Response(self.status_code, Headers([(b"content-length", b"0")])))


class Mesh:
    def __init__(self, config: str) -> None:
        self.clock = Clock()
        self.metrics = MetricsTree(self.clock)
        self.namer = MemoryNamer()
        self.namer.set("hello", HELLO)
        self.namer.set("world", *WORLD)
        self.apps: dict[str, App] = {hp: App() for hp in (HELLO, *WORLD)}
        self.router = Router(
            load_config(config).routers[0],
            Interpreter({Path.read("/mem"): self.namer}, (), self.clock),
            reactor=self.clock,
            stats=self.metrics.stats,
            ctx=PluginContext(reactor=self.clock),
            rng=random.Random(7),
            endpoint_factory=lambda reactor, address, *a, **k: self.apps[address.show()],
        )

    def call(self, host: str) -> int:
        got: list[Any] = []
        self.router(Request(b"GET", b"/", Headers([(b"Host", host.encode())]))).addBoth(got.append)
        assert got and isinstance(got[0], Response), got
        return got[0].status

    def metric(self, name: str) -> Any:
        return flat_metrics(self.metrics).get(name)

    def states(self, service: str) -> dict[str, str]:
        (client,) = [c for c in self.router.clients() if c.id_text == f"/#/mem/{service}"]
        readings, _ = read_client(client, 10)
        return {r.address: r.state for r in readings}


def test_default_classifier_ejects_a_hello_whose_dependency_is_down_as_linkerd_1_does() -> None:
    mesh = Mesh(DEFAULT)
    hello = mesh.apps[HELLO]
    hello.status_code = 502  # world is down; hello says so
    for _ in range(5):
        assert mesh.call("hello") == 502
    assert mesh.states("hello") == {HELLO: "ejected"}
    assert mesh.metric("rt/incoming/client/#/mem/hello/loadbalancer/available") == 0
    assert mesh.metric("rt/incoming/client/#/mem/hello/failure_accrual/removals") == 1
    # No request is refused: with every endpoint ejected the balancer fails open (Finagle's
    # balancers pick among all nodes when none is available), so hello still gets them.
    for _ in range(20):
        assert mesh.call("hello") == 502
    assert hello.received == 25
    assert mesh.metric("rt/incoming/client/#/mem/hello/loadbalancer/fail_open") == 20
    # world is back: hello's next answer is a success, which revives it at once.
    hello.status_code = 200
    assert mesh.call("hello") == 200
    assert mesh.states("hello") == {HELLO: "ok"}
    assert mesh.metric("rt/incoming/client/#/mem/hello/failure_accrual/revivals") == 1
    assert set(hello.seen) == {HELLO}  # each request's context names the endpoint it reached


def test_a_service_classifier_that_calls_the_5xx_success_keeps_hello_in() -> None:
    mesh = Mesh(HELLO_ALL_SUCCESSFUL)
    mesh.apps[HELLO].status_code = 502
    mesh.apps[WORLD[1]].status_code = 500  # one world instance is broken for real
    for _ in range(30):
        assert mesh.call("hello") == 502
        mesh.call("world")
    # hello: its service's classifier calls its 502s a success, so accrual never counts them
    # (and neither do the success rates: one classifier decides both, as in linkerd 1).
    assert mesh.states("hello") == {HELLO: "ok"}
    assert mesh.metric("rt/incoming/client/#/mem/hello/failure_accrual/removals") == 0
    assert mesh.metric("rt/incoming/service/svc/hello/failures") == 0
    # world keeps the default classifier: its broken instance is ejected, the other serves.
    assert mesh.states("world") == {WORLD[0]: "ok", WORLD[1]: "ejected"}
    assert mesh.metric("rt/incoming/client/#/mem/world/failure_accrual/removals") == 1
    broken_before = mesh.apps[WORLD[1]].received
    for _ in range(10):
        assert mesh.call("world") == 200
    assert mesh.apps[WORLD[1]].received == broken_before  # nothing more while ejected
