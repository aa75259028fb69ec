"""``l5d-twisted demo``: run the hello-world mesh (routers + sample apps) on this machine.

This module is the command line; :mod:`l5d_twisted.cli.demo.runner` writes the files and
runs the processes (imported only when the command runs: ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
from typing import Any


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be an integer, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def _ports(text: str) -> tuple[int, ...]:
    from l5d_twisted.cli.demo.runner import parse_ports

    try:
        ports = parse_ports(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    for port in ports:
        _port(str(port))
    return ports


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"rate must be a number of requests per second, got {text!r}"
        ) from None
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError(
            f"rate must be in (0, 100000] requests per second, got {text}"
        )
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the hello-world demo mesh locally",
        description="Write an io.l5d.fs namer root and a two-router config (outgoing -> incoming, "
        "like linkerd's per-node DaemonSet), then run the mesh, one hello and the world instances "
        "as child processes until Ctrl-C/SIGTERM.",
    )
    parser.add_argument(
        "--traffic",
        type=_rate,
        default=None,
        metavar="RPS",
        help="send RPS steady GETs to hello through the outgoing router",
    )
    parser.add_argument(
        "--ip", default="127.0.0.1", help="address everything listens on (default %(default)s)"
    )
    parser.add_argument(
        "--outgoing-port",
        type=_port,
        default=4140,
        metavar="PORT",
        help="the outgoing router (apps' http_proxy) (default %(default)s)",
    )
    parser.add_argument(
        "--incoming-port",
        type=_port,
        default=4141,
        metavar="PORT",
        help="the incoming router (default %(default)s)",
    )
    parser.add_argument(
        "--admin-port",
        type=_port,
        default=9990,
        metavar="PORT",
        help="the admin server (default %(default)s)",
    )
    parser.add_argument(
        "--hello-port",
        type=_port,
        default=7777,
        metavar="PORT",
        help="the hello app (default %(default)s)",
    )
    parser.add_argument(
        "--world-ports",
        type=_ports,
        default=(7778, 7779),
        metavar="P1,P2,...",
        help="one world instance per port (default 7778,7779)",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="where to write the config, namer files and logs (default: a temporary directory removed at exit)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for every port (default %(default)s)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from l5d_twisted.cli.demo.runner import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            ip=args.ip,
            outgoing_port=args.outgoing_port,
            incoming_port=args.incoming_port,
            admin_port=args.admin_port,
            hello_port=args.hello_port,
            world_ports=tuple(args.world_ports),
            traffic_rps=args.traffic,
            dir=args.dir,
            start_timeout_s=args.start_timeout,
        )
    )
