"""``l5d-twisted run CONFIG``: run the mesh a config describes, in the foreground.

What the container runs.  A bad config prints every error and exits 2 before anything
listens; a port that cannot be bound stops everything and exits 1; SIGTERM or SIGINT
drains (``GET /ready`` fails at once; the listeners stay open for ``admin.drainPeriodMs``
while responses close their connections; then in-flight requests finish within
``admin.shutdownGraceMs``) and exits 0.  A second signal cuts the drain period short.
With ``workers`` above 1 this process supervises that many worker processes
(:mod:`l5d_twisted.workers`).
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from typing import Any

# Python's (700, 10, 10), but a full collection at most once per 1,000 generation-1
# collections instead of 10.  Under issue 10's mixed attack (1,000 cached routes and
# clients, ~1,000 connections) a full collection came every ~8 s at 60-430 ms each, which
# alone put the probe's p99 over 50 ms.  Closed connections and evicted routes are now
# freed by reference counting, so a full collection finds little garbage, but it still
# walks the live heap: 80-180 ms every ~20 s with the default, about one of 120-265 ms per
# 60-120 s with this (bench/README.md, mixed attack).
GC_THRESHOLDS = (700, 10, 1000)


def tune_gc() -> None:
    """Once the mesh has started (in a worker too)."""
    # Everything imported and configured so far lives as long as the process: move it
    # out of the collector's sight, so full collections stop re-scanning tens of MB
    # (measured: gen-2 pauses fell from 385 ms to 30 ms per 20 s under load).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()  # off since run() began


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the mesh described by a config file")
    parser.add_argument("config", help="linkerd-style YAML config file")
    parser.add_argument(
        "--log-format",
        choices=["json", "text"],
        default="json",
        help="log lines as JSON (default) or text",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warn", "error"],
        default="info",
        help="write log lines of this level and above (default %(default)s)",
    )
    parser.add_argument(
        "--admin-ip",
        metavar="IP",
        help="serve the admin server on this address instead of the config's admin.ip (the chart passes the pod's IP)",
    )
    # Internal: how the supervisor of `workers: N` starts each worker (l5d_twisted.workers).
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # No collections while starting: start-up creates ~50,000 objects that live as long as
    # the process, and the collector ran ~100 times over them (16-29 ms of a ~0.4 s start,
    # bench/README.md "Start-up"); tune_gc() freezes them and turns it back on.
    gc.disable()
    try:
        return _run(args)
    finally:
        gc.enable()


def _run(args: argparse.Namespace) -> int:
    from l5d_twisted import heap

    # before anything large is allocated: keeps MB-sized scrape buffers out of the heap
    heap.pin_mmap_threshold()
    from l5d_twisted.tls_imports import (
        leave_out_http2,
        leave_out_libyaml,
        leave_out_openssl_unless_named,
        leave_out_tls_unless_used,
    )

    leave_out_http2()  # before twisted.web, which the config's telemeters import
    leave_out_libyaml()  # before yaml: the config reader uses PyYAML's Python composer
    # ssl and _hashlib (libssl, libcrypto) before Twisted, which decoding the config imports
    leave_out_openssl_unless_named(args.config)
    from l5d_twisted.config import ConfigErrors, load_config_file

    try:
        config = load_config_file(args.config)
    except ConfigErrors as e:
        print(f"{args.config}: invalid config:\n{e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{args.config}: cannot read: {e.strerror}", file=sys.stderr)
        return 2
    if args.admin_ip is not None:
        import dataclasses
        import ipaddress

        try:
            ipaddress.ip_address(args.admin_ip)
        except ValueError:
            print(
                f"--admin-ip: expected an IP address such as 10.1.2.3, got {args.admin_ip!r}",
                file=sys.stderr,
            )
            return 2
        config = dataclasses.replace(
            config, admin=dataclasses.replace(config.admin, ip=args.admin_ip)
        )

    leave_out_tls_unless_used(config)  # before the reactor: Twisted imports TLS with it
    from l5d_twisted.eventloop import install as install_reactor

    install_reactor()  # epoll without the per-event legacy log context (issue 15), if on Linux
    if getattr(args, "worker_fd", None) is not None:  # one of `workers: N`
        from l5d_twisted.workers.worker import run_worker

        return run_worker(args)
    workers = config.workers.count
    if workers is None:  # auto
        from l5d_twisted.workers.cpus import available_cpus

        workers = available_cpus()
    if workers > 1:
        from l5d_twisted.workers.run import run_supervisor

        gc.enable()  # the supervisor does not call tune_gc()
        return run_supervisor(args, config, workers)
    from twisted.internet import reactor as global_reactor
    from twisted.internet.error import ReactorNotRunning

    from l5d_twisted.logs import start_logging
    from l5d_twisted.mesh import Mesh

    reactor: Any = global_reactor
    start_logging(args.log_format, args.log_level)
    mesh = Mesh(config, reactor)
    exit_code = [0]

    def stop_reactor() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass  # a signal and the admin shutdown can both ask

    def failed_to_start(failure: Any) -> None:
        print(f"l5d-twisted: cannot start: {failure.getErrorMessage()}", file=sys.stderr)
        exit_code[0] = 1
        stop_reactor()

    def shut_down_or_hurry() -> None:
        if mesh.draining:  # asked again: stop waiting for the drain period
            mesh.end_drain_period()
            return
        mesh.shutdown().addBoth(lambda _: stop_reactor())

    def on_signal(signum: int, frame: Any) -> None:
        reactor.callFromThread(shut_down_or_hurry)

    mesh.on_shutdown(stop_reactor)

    def started(_: Any) -> None:
        tune_gc()

    reactor.callWhenRunning(lambda: mesh.start().addCallbacks(started, failed_to_start))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reactor.run(installSignalHandlers=False)
    return exit_code[0]
