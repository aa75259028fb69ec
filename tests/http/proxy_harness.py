"""A minimal proxy on the HTTP wire alone: ``serve_http`` forwarding to one ``EndpointClient``.

Run as ``python3 tests/http/proxy_harness.py --listen PORT --upstream HOST:PORT``; it prints
``listening on PORT`` once bound.  Used by the wire tests and by ``bench/http_wire``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from typing import Any  # noqa: E402

from twisted.internet import reactor as _reactor  # noqa: E402

from l5d_twisted.http.client import EndpointClient, PoolSettings  # noqa: E402
from l5d_twisted.http.server import ServerSettings, serve_http  # noqa: E402
from l5d_twisted.naming.addr import Address  # noqa: E402
from l5d_twisted.telemetry.stats import NULL_STATS  # noqa: E402

reactor: Any = _reactor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument("--max-headers-kb", type=int, default=8)
    parser.add_argument("--max-initial-line-kb", type=int, default=4)
    parser.add_argument("--pool-max", type=int, default=None)
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    client = EndpointClient(
        reactor, Address(host, int(port)), PoolSettings(max_size=args.pool_max), NULL_STATS
    )
    settings = ServerSettings(
        idle_timeout_s=args.idle_timeout,
        header_read_timeout_s=args.header_timeout,
        max_concurrent_requests=args.max_concurrent,
        max_headers_kb=args.max_headers_kb,
        max_initial_line_kb=args.max_initial_line_kb,
    )
    server = serve_http(reactor, args.ip, args.listen, client, settings, NULL_STATS)

    # SIGTERM stops the reactor; shutdown waits for the drain (in-flight requests finish)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: server.drain(5.0))
    print(f"listening on {server.getHost().port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
