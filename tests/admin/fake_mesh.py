"""A stand-in mesh for admin tests: a MetricsTree fed with synthetic traffic + AdminServer.

In-process, :class:`FakeMesh` implements ``AdminTarget``.  As a process
(``python3 tests/admin/fake_mesh.py --port N``) it also drives deterministic traffic
through real ``StatsFilter`` s on router ``outgoing``:

* ``svc/hello`` at ``--hello-rps`` (default 50), every 5th request a 500 (success 0.8),
  client ``%/io.l5d.port/4141/#/io.l5d.fs/hello``;
* ``svc/world`` at ``--world-rps`` (default 30), every 20th a 404 (a success, 4XX),
  client ``$/inet/127.0.0.1/7778``;
* latencies cycle through 1..100 ms (so p50 ~50, p95 ~95, p99 ~99), and the server scope
  ``rt/outgoing/server/127.0.0.1/4140`` sees all of it;
* resilience stats as the router's modules name them: ``svc/hello`` counts one
  ``retries/total`` per failure (10/s at 50 rps) and a ``retries/budget_exhausted`` every
  50th request; its client has ``loadbalancer/size`` 3 and ``available`` 2, a
  ``retries/requeues`` every 25th and a ``failure_accrual/removals`` every 100th request.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed

from l5d_twisted.admin.server import AdminServer
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path
from l5d_twisted.resilience.classifier import ResponseClass
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.filters import StatsFilter
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.recent import RecentRequests

HELLO_CLIENT = "%/io.l5d.port/4141/#/io.l5d.fs/hello"
WORLD_CLIENT = "$/inet/127.0.0.1/7778"


class FiveXXIsFailure:
    def classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass:
        if isinstance(outcome, BaseException) or outcome.status >= 500:
            return ResponseClass.NON_RETRYABLE_FAILURE
        return ResponseClass.SUCCESS


class FakeExplanation:
    def __init__(self, dtab: Dtab, path: Path) -> None:
        self.dtab = dtab
        self.path = path

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "delegate",
            "path": self.path.show(),
            "dtab": self.dtab.show(),
            "children": [{"type": "leaf", "bound": "/#/io.l5d.fs" + self.path.show()}],
        }

    def to_text(self) -> str:
        return f"{self.path.show()}\n  {self.dtab.show()}\n  => /#/io.l5d.fs{self.path.show()}\n"


class FakeInterpreter:
    def __init__(self) -> None:
        self.calls: list[tuple[Dtab, Path]] = []

    def explain(self, dtab: Dtab, path: Path) -> FakeExplanation:
        self.calls.append((dtab, path))
        if path.show() == "/boom":
            raise RuntimeError("naming exploded")
        return FakeExplanation(dtab, path)


@dataclass
class FakeRouter:
    label: str
    dtab: Dtab
    dst_prefix: Path = field(default_factory=lambda: Path.read("/svc"))
    interpreter: FakeInterpreter = field(default_factory=FakeInterpreter)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def client_state(self) -> dict[str, dict[str, Any]]:
        return self.clients


class FakeNamer:
    def state(self) -> Any:
        return {"hello": ["127.0.0.1:7777"]}


class FakeMesh:
    def __init__(self, clock: Any, allow_shutdown: bool = False) -> None:
        self.metrics = MetricsTree(clock)
        self.routers = [
            FakeRouter(
                "outgoing",
                Dtab.read("/svc => /#/io.l5d.fs"),
                clients={HELLO_CLIENT: {"state": "bound", "addresses": ["127.0.0.1:4141"]}},
            ),
            FakeRouter("incoming", Dtab.read("/svc => /$/inet/127.0.0.1/7778")),
        ]
        self.namers = {"/io.l5d.fs": FakeNamer()}
        self.recent_requests: Any = RecentRequests(clock, capacity=10)
        self.telemeters: list[Any] = []
        self.allow_shutdown = allow_shutdown
        self.shutdowns: list[float] = []
        self.on_shutdown: Callable[[], None] | None = None

    def config_json(self) -> dict[str, Any]:
        return {"routers": [{"label": r.label} for r in self.routers]}

    def shutdown(self, grace_s: float) -> Deferred[None]:
        self.shutdowns.append(grace_s)
        if self.on_shutdown is not None:
            self.on_shutdown()
        return succeed(None)


class SyntheticClock:
    """A clock the fake backend moves forward by each request's latency."""

    def __init__(self) -> None:
        self.now = 0.0

    def seconds(self) -> float:
        return self.now


class Traffic:
    """Deterministic requests through real StatsFilters (see the module doc)."""

    def __init__(
        self, mesh: FakeMesh, hello_rps: float, world_rps: float, hello_failure_every: int = 5
    ) -> None:
        self.mesh = mesh
        self.hello_rps = hello_rps
        self.world_rps = world_rps
        self.hello_failure_every = hello_failure_every
        self.clock = SyntheticClock()
        self.n = 0
        self._carry = {"hello": 0.0, "world": 0.0}
        stats = mesh.metrics.stats
        classifier = FiveXXIsFailure()
        self.server = StatsFilter(
            stats.scope("rt", "outgoing", "server", "127.0.0.1", "4140"), classifier, self.clock
        )
        self.chains = {}
        for name, client in (("hello", HELLO_CLIENT), ("world", WORLD_CLIENT)):
            service_filter = StatsFilter(
                stats.scope("rt", "outgoing", "service", f"/svc/{name}"), classifier, self.clock
            )
            client_filter = StatsFilter(
                stats.scope("rt", "outgoing", "client", client), classifier, self.clock
            )
            backend = FunctionService(self._backend(name))
            self.chains[name] = self.server.and_then(
                service_filter.and_then(client_filter.and_then(backend))
            )
        hello_service = stats.scope("rt", "outgoing", "service", "/svc/hello")
        hello_client = stats.scope("rt", "outgoing", "client", HELLO_CLIENT)
        self.retries = hello_service.counter("retries", "total")
        self.budget_exhausted = hello_service.counter("retries", "budget_exhausted")
        self.requeues = hello_client.counter("retries", "requeues")
        self.removals = hello_client.counter("failure_accrual", "removals")
        self.gauges = [
            hello_client.gauge("loadbalancer", "size", fn=lambda: 3.0),
            hello_client.gauge("loadbalancer", "available", fn=lambda: 2.0),
        ]

    def _resilience(self, count: int) -> None:
        """What the retry, requeue and accrual modules would count for this hello request."""
        if count % self.hello_failure_every == 0:
            self.retries.incr()
        for every, counter in (
            (50, self.budget_exhausted),
            (25, self.requeues),
            (100, self.removals),
        ):
            if count % every == 0:
                counter.incr()

    def _backend(self, name: str) -> Callable[[Request], Deferred[Response]]:
        def answer(request: Request) -> Deferred[Response]:
            self.n += 1
            self.clock.now += (self.n % 100 + 1) / 1000.0
            count = request.ctx["count"]
            if name == "hello" and count % self.hello_failure_every == 0:
                return succeed(Response(500))
            if name == "world" and count % 20 == 0:
                return succeed(Response(404))
            return succeed(Response(200))

        return answer

    def step(self, dt: float) -> None:
        for name, rps in (("hello", self.hello_rps), ("world", self.world_rps)):
            self._carry[name] += rps * dt
            while self._carry[name] >= 1.0:
                self._carry[name] -= 1.0
                self.send(name)

    def send(self, name: str) -> None:
        counter = f"_{name}_count"
        count = getattr(self, counter, 0) + 1
        setattr(self, counter, count)
        request = Request(b"GET", f"http://{name}/".encode())
        request.ctx["count"] = count
        if name == "hello":
            self._resilience(count)
        start = self.clock.now
        d = self.chains[name](request)

        def observe(response: Response) -> Response:
            self.mesh.recent_requests.record(
                router="outgoing",
                method="GET",
                uri=f"http://{name}/",
                dst_path=f"/svc/{name}",
                client_id="/" + (HELLO_CLIENT if name == "hello" else WORLD_CLIENT),
                status=response.status,
                latency_ms=(self.clock.now - start) * 1000.0,
            )
            return response

        d.addCallback(observe)


def main(argv: list[str] | None = None) -> int:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    parser = argparse.ArgumentParser()
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hello-rps", type=float, default=50.0)
    parser.add_argument("--world-rps", type=float, default=30.0)
    parser.add_argument("--sample-interval", type=float, default=1.0)
    args = parser.parse_args(argv)

    mesh = FakeMesh(reactor, allow_shutdown=True)
    mesh.on_shutdown = lambda: reactor.callLater(0.1, reactor.stop)  # type: ignore[attr-defined]
    traffic = Traffic(mesh, args.hello_rps, args.world_rps)
    last = [reactor.seconds()]  # type: ignore[attr-defined]

    def pump() -> None:
        # Real elapsed time, so a late tick does not lose traffic.
        now = reactor.seconds()  # type: ignore[attr-defined]
        traffic.step(now - last[0])
        last[0] = now

    LoopingCall(pump).start(0.05)
    AdminServer(mesh, reactor, sample_interval_s=args.sample_interval).listen(args.ip, args.port)
    print(f"fake mesh admin on {args.ip}:{args.port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
