"""What one routed name costs in memory, and where (tracemalloc), in-process (issue 17).

    python3 bench/scale/name_bytes.py [--names 2000] [--max-metric-scopes 1] [--top 15]

A real outgoing router (``/svc => /#/io.l5d.fs``, an ``io.l5d.fs`` namer over a temporary
directory of ``--names`` files, default client and service stacks, real endpoint clients
over in-memory transports, one pooled connection each) on a fake clock serves one request
per name, as ``bench/scrape/stall.py`` does.  tracemalloc compares the heap before and
after: bytes per name, and the allocation sites that grew most, per name.  Then every
route and client expires (idle TTL passed on the fake clock) and the heap is compared
again: what an expired name leaves behind.

``--max-metric-scopes 1`` (the default here) sends every name's metrics to the shared
overflow scope, so the figure is the name's cost beyond its metrics; ``0`` gives every
name its own service and client scopes.  Nothing leaves the process.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path as FsPath
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.error import ConnectionDone  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from l5d_twisted.config import load_config  # noqa: E402
from l5d_twisted.context import PluginContext  # noqa: E402
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol  # noqa: E402
from l5d_twisted.http.server import HttpServer, ServerSettings  # noqa: E402
from l5d_twisted.namers.fs import FsNamer  # noqa: E402
from l5d_twisted.naming.interpreter import Interpreter  # noqa: E402
from l5d_twisted.naming.path import Path  # noqa: E402
from l5d_twisted.router.router import Router  # noqa: E402
from l5d_twisted.telemetry.filters import StatsFilter  # noqa: E402
from l5d_twisted.telemetry.metrics import MetricsTree  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n"


class NullTransport:
    """Writes nowhere; closing it tells its protocol, as a real transport does."""

    protocol: Any = None

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: list[bytes]) -> None:
        pass

    def loseConnection(self) -> None:
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connectionLost(Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        self.loseConnection()

    def getPeer(self) -> Any:
        return None

    def getHost(self) -> Any:
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--max-metric-scopes", type=int, default=1)
    parser.add_argument("--ttl", type=int, default=60)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--frames",
        type=int,
        default=1,
        help="stack frames kept per allocation; above 1, the top sites are also listed by"
        " their call stacks (who made the object, not only which line)",
    )
    args = parser.parse_args()
    clock = Clock()
    tmp = tempfile.TemporaryDirectory(prefix="l5d-name-bytes-")
    root = FsPath(tmp.name)
    for i in range(args.names):
        (root / f"s{i}").write_text("127.0.0.1 8080\n")
    (root / "warm").write_text("127.0.0.1 8080\n")
    config = load_config(
        f"namers:\n- kind: io.l5d.fs\n  rootDir: {root}\n"
        "routers:\n- protocol: http\n  label: outgoing\n  dtab: /svc => /#/io.l5d.fs;\n"
        f"  maxMetricScopes: {args.max_metric_scopes}\n"
        f"  bindingCache: {{idleTtlSecs: {args.ttl}}}\n"
    )
    metrics = MetricsTree(clock, expiry_ttl_s=args.ttl)
    namer = FsNamer(str(root), Path.read("/io.l5d.fs"), clock, 3600.0)
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
        transport = NullTransport()
        transport.protocol = upstream
        upstream.makeConnection(transport)
        client._pool._open.add(upstream)
        client._pool.release(upstream)
        clients.append(client)
        return client

    router = Router(
        config.routers[0],
        Interpreter({Path.read("/io.l5d.fs"): namer}, (), clock),
        reactor=clock,
        stats=metrics.stats,
        ctx=PluginContext(reactor=clock),
        endpoint_factory=endpoint,
    )
    server_stats = metrics.stats.scope("rt", "outgoing", "server", "127.0.0.1", "4140")
    service = StatsFilter(server_stats, router.context_classifier, clock).and_then(router)
    server = HttpServer(clock, service, ServerSettings(), server_stats)
    conn: Any = server.factory.buildProtocol(None)
    conn.makeConnection(NullTransport())

    upstreams: dict[str, Any] = {}

    def route(host: str) -> None:
        before = len(clients)
        conn.dataReceived(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
        clock.advance(0.001)
        if len(clients) > before:
            upstreams[host] = next(iter(clients[-1]._pool._open))
        upstream = upstreams.get(host)
        if upstream is not None:
            upstream.dataReceived(RESPONSE)

    for _ in range(3):
        route("warm")
    gc.collect()
    tracemalloc.start(args.frames)
    base = tracemalloc.take_snapshot()
    base_size = sum(s.size for s in base.statistics("filename"))
    for i in range(args.names):
        route(f"s{i}")
    clients.clear()  # the benchmark's own lists
    upstreams.clear()
    gc.collect()
    after = tracemalloc.take_snapshot()
    size = sum(s.size for s in after.statistics("filename"))
    n = args.names
    print(f"names {n}, maxMetricScopes {args.max_metric_scopes}")
    print(f"bytes per routed name: {(size - base_size) / n:,.0f}")
    print(f"top allocation sites per name (of {args.top}):")
    by_file = after.compare_to(base, "filename")
    print("by module, per name:")
    for stat in by_file[: args.top]:
        print(f"  {stat.size_diff / n:8,.0f} B  {os.path.relpath(stat.traceback[0].filename)}")
    for stat in after.compare_to(base, "lineno")[: args.top]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
        print(f"  {stat.size_diff / n:8,.0f} B  {stat.count_diff / n:6.1f} blocks  {where}")
    if args.frames > 1:
        print(f"top call stacks per name (of {args.top}, innermost first):")
        for stat in after.compare_to(base, "traceback")[: args.top]:
            print(f"  {stat.size_diff / n:8,.0f} B  {stat.count_diff / n:6.1f} blocks")
            for frame in reversed(stat.traceback):
                print(f"      {os.path.relpath(frame.filename)}:{frame.lineno}")
    for _ in range(int(2.5 * args.ttl)):  # idle: every route, client and scope expires
        clock.advance(1)
    gc.collect()
    expired = tracemalloc.take_snapshot()
    left = sum(s.size for s in expired.statistics("filename"))
    print(f"left per name after expiry: {(left - base_size) / n:,.0f} B")
    for stat in expired.compare_to(base, "lineno")[:8]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
        print(f"  {stat.size_diff / n:8,.0f} B  {stat.count_diff / n:6.1f} blocks  {where}")
    upstreams.clear()
    conn = server.factory.buildProtocol(None)  # the first one timed out while idle
    conn.makeConnection(NullTransport())
    for i in range(n):
        route(f"s{i}")
    clients.clear()
    upstreams.clear()
    gc.collect()
    again = tracemalloc.take_snapshot()
    print(
        f"second round, per name: {(sum(s.size for s in again.statistics('filename')) - base_size) / n:,.0f} B"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
