"""``l5d-twisted demo``: run the hello-world mesh (routers + sample apps) on this machine.

This module is the command line; :mod:`l5d_twisted.cli.demo.runner` writes the files and
runs the processes (imported only when the command runs: ``--help`` stays fast).
``l5d-twisted demo stop|start|status`` talk to a running demo through its control channel
(:mod:`l5d_twisted.cli.demo.control`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# the control channel's default, without importing Twisted for --help
DEFAULT_CONTROL_PORT = 9992


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
        "as child processes until Ctrl-C/SIGTERM. Every port is checked first: a busy one is "
        "named with its flag and nothing starts. A sample app that dies is reported and the demo "
        "keeps running (the mesh routes around it); the mesh dying ends it. From another "
        "terminal, `demo stop NAME`, `demo start NAME` and `demo status` act on the running demo.",
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
        "--control-port",
        type=_port,
        default=DEFAULT_CONTROL_PORT,
        metavar="PORT",
        help="the demo's control channel on 127.0.0.1, used by `demo stop|start|status` "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="where to write the config, namer files and logs "
        "(default: a temporary directory removed at exit)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for every port (default %(default)s)",
    )
    parser.set_defaults(func=_run)
    actions = parser.add_subparsers(
        dest="action",
        metavar="[ACTION]",  # optional: without one the demo runs
        title="actions on a running demo (from another terminal)",
    )
    for action, text in (
        ("stop", "stop one sample app instance (SIGTERM); the mesh routes around it"),
        ("start", "start a stopped instance again and wait until it listens"),
    ):
        sub = actions.add_parser(action, help=text, description=text + ".")
        sub.add_argument("name", metavar="NAME", help="the instance: hello, world-1, world-2, ...")
        _add_control_port(sub)
        sub.set_defaults(func=_control)
    status = actions.add_parser(
        "status",
        help="list the demo's processes: pid and state",
        description="List the running demo's processes with their pid and state.",
    )
    _add_control_port(status)
    status.set_defaults(func=_control, name=None)


def _add_control_port(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `demo --control-port N stop world-1` (the demo's own flag) works too
    parser.add_argument(
        "--control-port",
        type=_port,
        default=argparse.SUPPRESS,
        metavar="PORT",
        help=f"the running demo's --control-port (default {DEFAULT_CONTROL_PORT})",
    )


def _control(args: argparse.Namespace) -> int:
    from l5d_twisted.cli.demo.control import CONTROL_IP, send

    if args.name is None:
        method, path = "GET", "/status"
    else:
        method, path = "POST", f"/{args.action}/{args.name}"
    try:
        status, text = send(method, path, args.control_port)
    except OSError as e:
        print(
            f"l5d-twisted demo {args.action}: no demo answers on {CONTROL_IP}:{args.control_port} "
            f"({e}); is `l5d-twisted demo` running (with this --control-port)?",
            file=sys.stderr,
        )
        return 1
    print(text, end="", file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else 1


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
            control_port=args.control_port,
            traffic_rps=args.traffic,
            dir=args.dir,
            start_timeout_s=args.start_timeout,
        )
    )
