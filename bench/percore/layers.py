"""CPU per request of single service layers, on the real reactor, with requests in flight.

    python3 bench/percore/layers.py [--requests 20000] [--rounds 11] [--in-flight 50]

Each variant calls a fake endpoint that answers the oldest call once ``--in-flight`` are
pending (so timers and queues see a steady load), and reports the median over interleaved
rounds of the process CPU per request (``time.process_time``), minus nothing: subtract
the ``endpoint alone`` row for a layer's own cost.

* ``deadline (totalTimeoutMs)``: the service stack's deadline filter with the default
  15 s total timeout (``resilience/deadline.py``);
* ``stats x1`` / ``stats x3``: ``StatsFilter`` layers (the server, service and client
  stats of a routed request are three).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from l5d_twisted.http.body import BufferedBody  # noqa: E402
from l5d_twisted.http.message import Headers, Request, Response  # noqa: E402
from l5d_twisted.registry import CLASSIFIERS, load_plugins  # noqa: E402
from l5d_twisted.resilience.deadline import DeadlineFilter  # noqa: E402
from l5d_twisted.service import FunctionService, Service  # noqa: E402
from l5d_twisted.telemetry.filters import StatsFilter  # noqa: E402
from l5d_twisted.telemetry.metrics import MetricsTree  # noqa: E402

RESPONSE = Response(200, Headers([(b"Content-Type", b"text/plain")]), BufferedBody(b"ok"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    load_plugins()
    classifier = CLASSIFIERS.get("io.l5d.http.nonRetryable5XX").factory({})
    pending: deque[Deferred[Any]] = deque()

    def endpoint(request: Request) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        pending.append(d)
        return d

    base: Service[Request, Response] = FunctionService(endpoint)
    tree = MetricsTree(reactor)

    def stats(name: str, inner: Service[Request, Response]) -> Service[Request, Response]:
        return StatsFilter(tree.stats.scope(name), classifier, reactor).and_then(inner)

    variants: dict[str, Service[Request, Response]] = {
        "endpoint alone": base,
        "deadline (totalTimeoutMs)": DeadlineFilter(reactor, 15.0).and_then(base),
        "stats x1": stats("a", base),
        "stats x3": stats("c", stats("b", stats("a", base))),
    }

    def run(service: Callable[[Request], Deferred[Any]], n: int) -> float:
        got: list[Any] = []
        start = time.process_time()
        for _ in range(n):
            request = Request(b"GET", b"/", Headers([(b"Host", b"x")]), BufferedBody(b""))
            service(request).addBoth(got.append)
            if len(pending) >= args.in_flight:
                pending.popleft().callback(RESPONSE)
        while pending:
            pending.popleft().callback(RESPONSE)
        return (time.process_time() - start) / n * 1e6

    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, service in variants.items():
            results[name].append(run(service, args.requests))
    print(f"{args.in_flight} in flight, median of {args.rounds} interleaved rounds:")
    for name, values in results.items():
        print(f"  {name:28} {statistics.median(values):6.2f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
