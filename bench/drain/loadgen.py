"""Fixed-rate GETs over a fixed number of keep-alive connections, every outcome recorded.

    python3 bench/drain/loadgen.py --port 4140 --host world --rps 200 --connections 8 --count 4000 --out result.json

Request ``i`` is due at ``start + i/rps`` (open loop) and goes to connection ``i mod
connections``: one ``HttpClient`` each, holding at most one connection (a request finds it
busy: it waits its turn).  A client behaves as HTTP/1.1 clients do: after a response with
``Connection: close`` it opens a new connection for its next request, and a request that
gets no byte back on a reused connection (the server closed it as the request left: the
keep-alive race) is resent once on a new connection; those resends are counted apart
(``stale_retries``).  Any other outcome than a 2xx (an error status, a reset, a timeout)
is a failure.

Stops after ``--count`` requests, or earlier on SIGUSR1 (then waits for what is in
flight), and writes one JSON object: totals, failures by reason, latency percentiles and
one ``[sent_at, body, ok, latency_ms]`` record per request (plus the error, if any)
(``sent_at`` in Unix seconds), so a caller can tell what happened around a moment it knows
(a signal sent to a proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from l5d_twisted.examples.client import ClientError, ClientResponse, HttpClient, Target  # noqa: E402
from l5d_twisted.examples.traffic import percentile  # noqa: E402


class CountingClient(HttpClient):
    """``HttpClient`` (which already resends once after the keep-alive race) counting resends and connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stale_retries = 0
        self.seen: set[Any] = set()  # every connection used (a few per client and switch)

    async def _connection(self, key: tuple[str, int], fresh: bool = False) -> Any:
        if fresh:
            self.stale_retries += 1  # only _exchange's resend asks for a fresh one
        conn = await super()._connection(key, fresh)
        self.seen.add(conn)
        return conn


class Load:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.target = Target(args.host.encode(), args.path.encode(), "127.0.0.1", args.port)
        self.clients = [
            CountingClient(reactor, timeout_s=args.timeout, max_connections_per_dest=1)
            for _ in range(args.connections)
        ]
        self.records: list[list[Any]] = []
        self.latencies_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.sent = 0
        self.done = 0
        self.stopping = False

    async def run(self) -> dict[str, Any]:
        args = self.args
        started = self.reactor.seconds()
        for i in range(args.count):
            if self.stopping:
                break
            due = started + i / args.rps
            delay = due - self.reactor.seconds()
            if delay > 0:
                await task.deferLater(self.reactor, delay, lambda: None)
            self._send(self.clients[i % len(self.clients)])
        elapsed = self.reactor.seconds() - started
        deadline = self.reactor.seconds() + args.timeout + 1.0
        while self.done < self.sent and self.reactor.seconds() < deadline:
            await task.deferLater(self.reactor, 0.05, lambda: None)
        for client in self.clients:
            client.close()
        return self._summary(elapsed)

    def _send(self, client: CountingClient) -> None:
        self.sent += 1
        record: list[Any] = [round(time.time(), 4), None, False, None]
        self.records.append(record)
        sent_at = self.reactor.seconds()
        d: Deferred[ClientResponse] = client.request(b"GET", self.target, [])
        d.addCallbacks(
            self._answered,
            self._errored,
            callbackArgs=(record, sent_at),
            errbackArgs=(record, sent_at),
        )

    def _answered(self, response: ClientResponse, record: list[Any], sent_at: float) -> None:
        self.done += 1
        self._latency(record, sent_at)
        status = str(response.status)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        record[1] = response.body.decode("utf-8", "replace")[:80]
        record[2] = 200 <= response.status < 300
        if not record[2]:
            self._error(f"status {status}")

    def _errored(self, failure: Any, record: list[Any], sent_at: float) -> None:
        self.done += 1
        self._latency(record, sent_at)
        failure.trap(ClientError, Exception)
        reason = failure.getErrorMessage()[:160]
        record.append(reason)
        self._error(reason)

    def _latency(self, record: list[Any], sent_at: float) -> None:
        ms = (self.reactor.seconds() - sent_at) * 1000.0
        self.latencies_ms.append(ms)
        record[3] = round(ms, 3)

    def _error(self, reason: str) -> None:
        if reason in self.errors or len(self.errors) < 20:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def _summary(self, elapsed: float) -> dict[str, Any]:
        ok = sum(1 for r in self.records if r[2])
        ms = self.latencies_ms
        return {
            "rps": self.args.rps,
            "connections": self.args.connections,
            "achieved_rps": round(self.sent / elapsed, 1) if elapsed > 0 else None,
            "sent": self.sent,
            "answered": self.done,
            "ok": ok,
            "failed": self.sent - ok,
            "statuses": self.statuses,
            "errors": self.errors,
            "stale_retries": sum(c.stale_retries for c in self.clients),
            "connections_used": sum(len(c.seen) for c in self.clients),
            "p50_ms": round(percentile(ms, 0.50), 3) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 3) if ms else None,
            "max_ms": round(max(ms), 3) if ms else None,
            "records": self.records,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="proxy port on 127.0.0.1")
    parser.add_argument("--host", default="world", help="Host header (the proxy routes by it)")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--count", type=int, default=4000, help="requests at most (SIGUSR1 stops earlier)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a request may take, waiting included"
    )
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if args.rps <= 0 or args.connections < 1 or args.count < 1:
        parser.error("--rps, --connections and --count must be positive")

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    load = Load(reactor, args)
    result: list[dict[str, Any]] = []

    def stop_sending(signum: int, frame: Any) -> None:
        reactor.callFromThread(setattr, load, "stopping", True)

    signal.signal(signal.SIGUSR1, stop_sending)

    def start() -> None:
        d = Deferred.fromCoroutine(load.run())
        d.addCallback(result.append)
        d.addErrback(lambda f: print(f.getTraceback(), file=sys.stderr))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    print("loadgen started", flush=True)
    reactor.run()
    if not result:
        return 1
    text = json.dumps(result[0])
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.out + ".tmp", args.out)  # readers never see half a file
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
