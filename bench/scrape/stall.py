"""How long a metrics scrape stalls the reactor, with many service and client scopes.

    python3 bench/scrape/stall.py [--scopes 5000] [--scrapes 3] [--max-scopes 0]
                                   [--path /admin/metrics/prometheus] [--random-hosts]
                                   [--repo /tmp/l5d-before]

1. Builds the metrics of ``--scopes`` distinct services, each with its own client, the way
   the mesh makes them: a real outgoing router (header-token identifier, dtab
   ``/svc => /#/mem``, an ``io.l5d.memory`` namer knowing every name, p2c balancer,
   failure accrual, retries, stats on service, client and endpoint) serves one request per
   ``Host: s<i>`` over in-memory transports, on a fake clock (no sockets, nothing leaves
   the process).  ``--random-hosts`` sends random Host values instead, which no namer
   knows (issue 10's attack: only service scopes).  ``--max-scopes`` sets the router's
   ``maxMetricScopes`` (0: no cap, the default here, so all scopes exist).
2. Serves them with the real admin server on a free 127.0.0.1 port, on the real reactor,
   while a probe (a ``LoopingCall`` every 5 ms) records how late each of its calls runs.
3. Scrapes ``--path`` once ("first": caches are filled) and then ``--scrapes`` times from
   a thread, one at a time, and prints per scrape the wall time to the full response, the
   body's size and lines, and the worst probe lateness seen during it (the longest the
   reactor could not run anything else; "worst stall" is over the scrapes after the first).

``--repo`` measures another checkout's mesh with this script (``git archive <commit> |
tar -x -C /tmp/l5d-before``); the collector runs with the proxy's thresholds either way.

Target (issue 10): worst stall under 50 ms with 5,000 scopes.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import subprocess
import sys
import time
import urllib.request
from typing import Any

# --repo: the mesh to measure (another checkout, e.g. a git archive of an older commit)
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if "--repo" in sys.argv[:-1]:
    _REPO = os.path.abspath(sys.argv[sys.argv.index("--repo") + 1])
sys.path.insert(0, _REPO)

import gc  # noqa: E402

from twisted.internet import reactor as _reactor  # noqa: E402
from twisted.internet.defer import Deferred, succeed  # noqa: E402
from twisted.internet.task import Clock, LoopingCall  # noqa: E402
from twisted.internet.threads import deferToThread  # noqa: E402

from l5d_twisted.admin.server import AdminServer  # noqa: E402
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

reactor: Any = _reactor

GC_THRESHOLDS = (700, 10, 1000)  # l5d_twisted/cli/run.py, as of issue 17

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
    b"Connection: keep-alive\r\n\r\nhello world\n"
)


class NullTransport:
    """Enough of an ITransport for the proxy to write into and forget."""

    disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: Any) -> None:
        pass

    def loseConnection(self) -> None:
        pass

    def abortConnection(self) -> None:
        pass

    def getPeer(self) -> Any:
        return None

    def getHost(self) -> Any:
        return None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


def populate(scopes: int, max_scopes: int, random_hosts: bool) -> tuple[MetricsTree, float]:
    """A metrics tree as the router leaves it after one request to each of ``scopes`` names."""
    clock = Clock()
    cap = f"  maxMetricScopes: {max_scopes}\n" if max_scopes >= 0 else ""
    config = load_config(
        "namers:\n- kind: io.l5d.memory\n  prefix: /mem\n"
        "routers:\n- protocol: http\n  label: outgoing\n  dtab: /svc => /#/mem;\n" + cap
    )
    metrics = MetricsTree(clock, start=False)
    names = {f"s{i}": ("127.0.0.1:8080",) for i in range(scopes)}
    namer = MemoryNamer(Path.read("/mem"), names)
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
        upstream.makeConnection(NullTransport())  # type: ignore[arg-type]
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
    rng = random.Random(10)
    started = time.perf_counter()
    for i in range(scopes):
        host = "".join(rng.choices(string.ascii_lowercase, k=12)) if random_hosts else f"s{i}"
        before = len(clients)
        conn.dataReceived(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
        clock.advance(0.001)  # 1 ms of latency in every histogram
        if len(clients) > before:
            upstream = next(iter(clients[-1]._pool._open))
            upstream.dataReceived(RESPONSE)
    return metrics, time.perf_counter() - started


class Target:
    """The AdminTarget the benchmark serves: just the metrics."""

    def __init__(self, metrics: MetricsTree) -> None:
        self.metrics = metrics
        self.routers: list[Any] = []
        self.namers: dict[str, Any] = {}
        self.recent_requests = None
        self.telemeters: list[Any] = []
        self.allow_shutdown = False

    def config_json(self) -> dict[str, Any]:
        return {}

    def shutdown(self, grace_s: float) -> Deferred[None]:
        return succeed(None)


class StallProbe:
    """Records how late a 5 ms LoopingCall runs: the reactor's longest stall."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.worst_s = 0.0
        self.worst_gc_s = 0.0
        self._gc_started = 0.0
        self._last = 0.0
        self._loop = LoopingCall(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._loop.start(self.interval_s, now=False)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst_s = max(self.worst_s, now - self._last - self.interval_s)
        self._last = now

    def reset(self) -> None:
        self.worst_s = 0.0
        self.worst_gc_s = 0.0
        self._last = time.perf_counter()

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.worst_gc_s = max(self.worst_gc_s, time.perf_counter() - self._gc_started)

    def stop(self) -> None:
        self._loop.stop()


def scrape(url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    if SCRAPER == "curl":
        # another process, as a real scraper is: the thread's reading and counting of a
        # 20 MB body held the GIL against the reactor, itself a stall of a few ms
        done = subprocess.run(
            ["curl", "-sS", "--max-time", "120", url], capture_output=True, check=True
        )
        body = done.stdout
    else:
        with urllib.request.urlopen(url, timeout=120) as response:
            body = response.read()
    return time.perf_counter() - started, len(body), body.count(b"\n")


SCRAPER = "thread"


async def run(
    args: argparse.Namespace, metrics: MetricsTree
) -> list[tuple[float, int, int, float, float]]:
    admin = AdminServer(Target(metrics), reactor, sample_interval_s=3600.0)  # type: ignore[arg-type]
    port = admin.listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port.getHost().port}{args.path}"
    probe = StallProbe()
    probe.start()
    gc.callbacks.append(probe.gc_callback)
    rows = []
    try:
        # the first scrape (imports, first allocation, exposition caches filled): its own row
        probe.reset()
        wall, size, lines = await deferToThread(scrape, url)
        rows.append((wall, size, lines, probe.worst_s, probe.worst_gc_s))
        for _ in range(args.scrapes):
            probe.reset()
            wall, size, lines = await deferToThread(scrape, url)
            rows.append((wall, size, lines, probe.worst_s, probe.worst_gc_s))
    finally:
        gc.callbacks.remove(probe.gc_callback)
        probe.stop()
        await port.stopListening()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scopes",
        type=int,
        default=5000,
        help="distinct Host values sent (one service + one client scope each)",
    )
    parser.add_argument("--scrapes", type=int, default=3)
    parser.add_argument(
        "--max-scopes",
        type=int,
        default=0,
        help="the router's maxMetricScopes (0: no cap; -1: leave the key out)",
    )
    parser.add_argument(
        "--random-hosts", action="store_true", help="random Host values no namer knows"
    )
    parser.add_argument("--path", default="/admin/metrics/prometheus")
    parser.add_argument("--repo", default=_REPO, help="the checkout whose mesh is measured")
    parser.add_argument(
        "--scraper",
        choices=("thread", "curl"),
        default="thread",
        help="scrape from a thread of this process (urllib) or from a curl process",
    )
    args = parser.parse_args()
    global SCRAPER
    SCRAPER = args.scraper

    metrics, build_s = populate(args.scopes, args.max_scopes, args.random_hosts)
    # the proxy's collector thresholds (l5d_twisted/cli/run.py GC_THRESHOLDS)
    gc.set_threshold(*GC_THRESHOLDS)
    groups = metrics.group_keys()
    services = sum(1 for k in groups if k[2] == "service")
    clients = sum(1 for k in groups if k[2] == "client")
    print(
        f"{args.repo}: built {services} service and {clients} client scopes "
        f"({sum(1 for _ in metrics.metrics())} metrics) in {build_s:.1f} s"
    )

    result: dict[str, Any] = {}

    def done(rows: Any) -> None:
        result["rows"] = rows
        reactor.stop()

    def failed(f: Any) -> None:
        result["error"] = f
        reactor.stop()

    reactor.callWhenRunning(
        lambda: Deferred.fromCoroutine(run(args, metrics)).addCallbacks(done, failed)
    )
    reactor.run()
    if "error" in result:
        result["error"].printTraceback()
        return 1
    print(
        f"{'scrape':>6} {'render+transfer s':>18} {'bytes':>10} {'lines':>8} {'worst stall ms':>15}"
        f" {'longest GC ms':>14}"
    )
    for i, (wall, size, lines, worst, worst_gc) in enumerate(result["rows"]):
        label = str(i) if i else "first"
        print(
            f"{label:>6} {wall:>18.3f} {size:>10} {lines:>8} {worst * 1000:>15.1f}"
            f" {worst_gc * 1000:>14.1f}"
        )
    worst_all = max(r[3] for r in result["rows"][1:]) * 1000
    print(
        f"worst stall {worst_all:.1f} ms (target < 50 ms): {'met' if worst_all < 50 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
