"""Python cost per proxied request of the whole router, without sockets or a reactor.

    python3 bench/router/cost.py [--requests 30000] [--rounds 1] [--profile]

The outgoing router of a real config (identify by Host, bind through the dtab, p2c
balancer, failure accrual, retries, deadline, stats at server, service and client) over
the HTTP wire, on in-memory transports: what the mesh does per request minus the
system calls.  Compare with bench/http_wire/inprocess.py (the wire alone).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.task import Clock  # noqa: E402

from l5d_twisted.config import load_config  # noqa: E402
from l5d_twisted.context import PluginContext  # noqa: E402
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol  # noqa: E402
from l5d_twisted.http.server import HttpServer, ServerSettings  # noqa: E402
from l5d_twisted.namers.memory import MemoryNamer  # noqa: E402
from l5d_twisted.naming.interpreter import Interpreter  # noqa: E402
from l5d_twisted.naming.path import Path  # noqa: E402
from l5d_twisted.router.router import Router  # noqa: E402
from l5d_twisted.telemetry.filters import StatsFilter  # noqa: E402
from l5d_twisted.telemetry.metrics import MetricsTree  # noqa: E402


def _wire_bench() -> Any:
    """bench/http_wire/inprocess.py: the same request, response and null transport."""
    import importlib.util

    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "http_wire", "inprocess.py"
    )
    spec = importlib.util.spec_from_file_location("http_wire_inprocess", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_WIRE = _wire_bench()
REQUEST, RESPONSE, NullTransport = _WIRE.REQUEST, _WIRE.RESPONSE, _WIRE.NullTransport

CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
  names:
    hello: ["127.0.0.1:8080"]
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/mem/hello;
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="timed rounds in this process; prints each and the median",
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    clock = Clock()
    config = load_config(CONFIG)
    metrics = MetricsTree(clock)
    namer = MemoryNamer(Path.read("/mem"), {"hello": ("127.0.0.1:8080",)})
    clients: list[EndpointClient] = []

    def endpoint(
        reactor: Any,
        address: Any,
        pool: Any,
        stats: Any,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> EndpointClient:
        client = EndpointClient(
            reactor, address, pool, stats, connect_timeout_s=connect_timeout_s, tls=tls
        )
        upstream = HttpClientProtocol(client)
        upstream.makeConnection(NullTransport())
        client._pool._open.add(upstream)
        client._pool.release(upstream)
        clients.append(client)
        return client

    router = Router(
        config.routers[0],
        Interpreter({Path.read("/mem"): namer}, (), clock),
        reactor=clock,
        stats=metrics.stats,
        ctx=PluginContext(reactor=clock),
        endpoint_factory=endpoint,
    )
    server_stats = metrics.stats.scope("rt", "outgoing", "server", "127.0.0.1", "4140")
    service = StatsFilter(server_stats, router.context_classifier, clock).and_then(router)
    server = HttpServer(clock, service, ServerSettings(), server_stats)
    conn = server.factory.buildProtocol(None)
    conn.makeConnection(NullTransport())
    conn.dataReceived(REQUEST)  # binds the route and creates the client
    upstream = next(iter(clients[0]._pool._open))

    def run(n: int) -> None:
        for _ in range(n):
            upstream.dataReceived(RESPONSE)
            conn.dataReceived(REQUEST)

    return int(_WIRE.measure(run, args.requests, args.profile, args.rounds, "router + wire"))


if __name__ == "__main__":
    sys.exit(main())
