"""``l5d-twisted namerd CONFIG``: run namerd, the dtab store and name interpreter.

``--check`` validates the config and exits (``ok``, or every problem and exit status 2);
a bad config also exits 2 without ``--check``.  SIGTERM or SIGINT stops it (exit 0).
See docs/namerd.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "namerd",
        help="run namerd: stores dtabs by namespace and binds names with them (HTTP API)",
        description="Run namerd from a namerd config (storage, namers, interfaces, admin). "
        "Exit status: 0 stopped by a signal (or --check found no problem), 1 could not "
        "start (a port in use), 2 invalid config.",
    )
    parser.add_argument("config", metavar="CONFIG", help="the namerd YAML config file ('-': stdin)")
    parser.add_argument(
        "--check", action="store_true", help="validate the config, print ok or its problems, exit"
    )
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from l5d_twisted import heap
    from l5d_twisted.config.errors import ConfigErrors

    heap.pin_mmap_threshold()  # as `run`: large, short-lived buffers stay out of the heap
    from l5d_twisted.namerd.config import load_namerd_config, load_namerd_config_file

    try:
        if args.config == "-":
            config = load_namerd_config(sys.stdin.read(), "<stdin>")
        else:
            config = load_namerd_config_file(args.config)
    except ConfigErrors as e:
        count = len(e.errors)
        print(f"{args.config}: invalid namerd config:\n{e}", file=sys.stderr)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 2
    if args.check:
        print("ok")
        return 0
    from twisted.internet import reactor as global_reactor
    from twisted.internet.error import ReactorNotRunning

    from l5d_twisted.logs import start_logging
    from l5d_twisted.namerd.server import Namerd

    reactor: Any = global_reactor
    start_logging(args.log_format, args.log_level)
    namerd = Namerd(config, reactor)
    exit_code = [0]

    def stop_reactor(_: Any = None) -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    def start() -> None:
        try:
            namerd.start()
        except Exception as e:
            print(f"l5d-twisted namerd: cannot start: {e}", file=sys.stderr)
            exit_code[0] = 1
            namerd.stop().addBoth(stop_reactor)

    def on_signal(signum: int, frame: Any) -> None:
        reactor.callFromThread(lambda: namerd.stop().addBoth(stop_reactor))

    reactor.callWhenRunning(start)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reactor.run(installSignalHandlers=False)
    return exit_code[0]
