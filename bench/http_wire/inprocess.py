"""Python cost per proxied request of the HTTP wire alone, without sockets or a reactor.

    python3 bench/http_wire/inprocess.py [--requests 50000] [--rounds 1] [--profile]

A server protocol and a pooled client protocol on in-memory transports: each iteration
feeds one request to the server side and the upstream's response to the client side,
exactly what the proxy does per request minus the reactor and the system calls.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.task import Clock  # noqa: E402

from l5d_twisted.http.client import EndpointClient, PoolSettings  # noqa: E402
from l5d_twisted.http.server import HttpServer, ServerSettings  # noqa: E402
from l5d_twisted.naming.addr import Address  # noqa: E402
from l5d_twisted.telemetry.stats import NULL_STATS  # noqa: E402

REQUEST = b"GET /hello HTTP/1.1\r\nHost: localhost:4140\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 12:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n"
)


class NullTransport:
    """Enough of a transport for the protocols; drops what is written."""

    disconnecting = False
    connected = True

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writeSequence(self, seq: list[bytes]) -> None:
        for data in seq:
            self.write(data)

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.disconnecting = True


def measure(
    run: Callable[[int], None], requests: int, profile: bool, rounds: int, label: str
) -> int:
    """Warm up, then profile one run or time ``rounds`` runs and print the median cost.

    Shared with bench/router/cost.py so both report the same figure the same way.
    """
    run(1000)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(requests)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return 0
    per_request_us = []
    for _ in range(max(1, rounds)):
        start = time.process_time()
        run(requests)
        per_request_us.append((time.process_time() - start) / requests * 1e6)
    if len(per_request_us) > 1:
        print("rounds: " + " ".join(f"{us:.1f}" for us in per_request_us))
    print(f"{statistics.median(per_request_us):.1f} us of Python CPU per proxied request ({label})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="timed rounds in this process; prints each and the median",
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    clock = Clock()
    client = EndpointClient(clock, Address("127.0.0.1", 1), PoolSettings(), NULL_STATS)
    server = HttpServer(clock, client, ServerSettings(), NULL_STATS)
    server_conn = server.factory.buildProtocol(None)
    server_conn.makeConnection(NullTransport())
    # one pooled upstream connection
    from l5d_twisted.http.client import HttpClientProtocol

    upstream = HttpClientProtocol(client)
    upstream.makeConnection(NullTransport())
    client._pool._open.add(upstream)
    client._pool.release(upstream)

    def run(n: int) -> None:
        for _ in range(n):
            server_conn.dataReceived(REQUEST)
            upstream.dataReceived(RESPONSE)

    return measure(run, args.requests, args.profile, args.rounds, "wire only")


if __name__ == "__main__":
    sys.exit(main())
