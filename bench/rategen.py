"""Open-loop fixed-rate HTTP load with latency percentiles (what wrk cannot do; no wrk2).

    python3 bench/rategen.py --port 4140 --host backend --rps 1000 --duration 15

Sends GET / with ``Host: <host>`` to 127.0.0.1:<port> at exactly ``rps`` requests a second
(request ``i`` is due at ``start + i/rps`` whether or not earlier ones answered) over
pooled keep-alive connections, measures each latency from its due time (no coordinated
omission), and prints one JSON object: ``rps`` asked, ``achieved_rps``, ``sent``, ``ok``,
``failed``, ``dropped`` and latency percentiles in ms (``p50``, ``p90``, ``p99``, ``p999``,
``max``).  A warm-up (``--warmup`` s) at the same rate is not counted.

It runs on Twisted's ``select`` reactor, not epoll: ``epoll_wait`` takes its timeout in whole
milliseconds (Python rounds up), so with requests due every 1 ms each was sent 0-1 ms late,
and that lag, not the path measured, was most of every latency.  Against nginx directly at
1,000 req/s (2026-12-03): epoll p50 0.63-0.68 ms, p99 1.34-1.41, send lag p99 1.11-1.14;
select p50 0.22-0.23, p99 0.42-0.59, send lag p99 0.19-0.36.  ``--reactor epoll`` is the
old behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from l5d_twisted.examples.client import ClientResponse, HttpClient, Target  # noqa: E402
from l5d_twisted.examples.traffic import OpenLoopTraffic, percentile  # noqa: E402


async def measure(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = HttpClient(reactor, timeout_s=10.0, max_idle_per_dest=1024)
    target = Target(args.host.encode(), args.path.encode(), "127.0.0.1", args.port)

    def send() -> Deferred[ClientResponse]:
        return client.request(b"GET", target, [])

    if args.warmup > 0:
        warm = OpenLoopTraffic(reactor, send, args.rps)
        warm.start()
        await task.deferLater(reactor, args.warmup, lambda: None)
        warm.stop()
    traffic = OpenLoopTraffic(
        reactor, send, args.rps, max_outstanding=args.max_outstanding, record_latencies=True
    )
    started = reactor.seconds()
    traffic.start()
    await task.deferLater(reactor, args.duration, lambda: None)
    traffic.stop()
    elapsed = reactor.seconds() - started
    # let the stragglers answer (or time out) so they count
    deadline = reactor.seconds() + 11.0
    while traffic.stats.outstanding > 0 and reactor.seconds() < deadline:
        await task.deferLater(reactor, 0.05, lambda: None)
    client.close()
    s = traffic.stats
    ms = [v * 1000.0 for v in s.latencies_s]
    service_ms = [v * 1000.0 for v in s.service_times_s]
    lag_ms = [v * 1000.0 for v in s.send_lags_s]
    return {
        "rps": args.rps,
        "achieved_rps": round(s.sent / elapsed, 1),
        "sent": s.sent,
        "ok": s.succeeded,
        "failed": s.failed,
        "dropped": s.dropped,
        "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
        "errors": s.errors,
        "p50": round(percentile(ms, 0.50), 3),
        "p90": round(percentile(ms, 0.90), 3),
        "p99": round(percentile(ms, 0.99), 3),
        "p999": round(percentile(ms, 0.999), 3),
        "max": round(max(ms), 3) if ms else None,
        # from the moment each request was actually written: excludes the generator's own lag
        "service_p50": round(percentile(service_ms, 0.50), 3),
        "service_p99": round(percentile(service_ms, 0.99), 3),
        # how late the generator sent (CPU starvation of the generator itself shows here)
        "send_lag_p99": round(percentile(lag_ms, 0.99), 3),
        "send_lag_max": round(max(lag_ms), 3) if lag_ms else None,
    }


def install_reactor(kind: str) -> None:
    """Before anything imports ``twisted.internet.reactor`` (a reactor already there stays)."""
    from twisted.internet import epollreactor, selectreactor
    from twisted.internet.error import ReactorAlreadyInstalledError

    try:
        (selectreactor if kind == "select" else epollreactor).install()
    except ReactorAlreadyInstalledError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--host", default="backend", help="Host header (the proxy identifies by it)"
    )
    parser.add_argument("--path", default="/")
    parser.add_argument("--rps", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-outstanding", type=int, default=5000)
    parser.add_argument(
        "--reactor",
        choices=["select", "epoll"],
        default="select",
        help="select: sub-millisecond timers (default); epoll: whole milliseconds",
    )
    args = parser.parse_args(argv)
    install_reactor(args.reactor)
    result: list[dict[str, Any]] = []
    failure: list[str] = []

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    def run() -> None:
        d = Deferred.fromCoroutine(measure(reactor, args))
        d.addCallback(result.append)
        d.addErrback(lambda f: failure.append(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if failure:
        print(failure[0], file=sys.stderr)
        return 1
    print(json.dumps(result[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
