"""``l5d-twisted example hello|world``: the sample apps of the hello-world demo."""

from __future__ import annotations

import argparse
from typing import Any

from l5d_twisted.examples.knobs import KnobError, parse_failure_rate, parse_latency_ms


def _latency(text: str) -> float:
    try:
        return parse_latency_ms(text)
    except KnobError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _failure_rate(text: str) -> float:
    try:
        return parse_failure_rate(text)
    except KnobError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _timeout(text: str) -> float:
    value = _latency(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"timeout must be positive, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be an integer, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser, default_port: int) -> None:
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument(
        "--port", type=_port, default=default_port, help="port to listen on (default %(default)s)"
    )
    p.add_argument(
        "--latency-ms", type=_latency, default=0.0, metavar="N", help="delay added to every answer"
    )
    p.add_argument(
        "--failure-rate",
        type=_failure_rate,
        default=0.0,
        metavar="F",
        help="fraction (0..1) of answers that are 500s",
    )


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "example",
        help="run a sample app (hello or world)",
        description="Run one of the hello-world sample apps. Both report POD_IP if set, else "
        "their bound ip, and change their knobs at run time with POST /setLatency (body: ms) "
        "and POST /setFailureRate (body: 0..1). GET /health answers ok.",
    )
    apps = parser.add_subparsers(dest="app", metavar="APP", required=True)
    world = apps.add_parser("world", help="answers 'world (<ip>)!'")
    _add_common(world, 7778)
    hello = apps.add_parser(
        "hello", help="answers 'Hello (<ip>) ' + the body of a call to --target through http_proxy"
    )
    _add_common(hello, 7777)
    hello.add_argument(
        "--target",
        default="http://world/",
        help="URL to call through the proxy in http_proxy (default %(default)s)",
    )
    hello.add_argument(
        "--timeout-ms",
        type=_timeout,
        default=10_000.0,
        metavar="N",
        help="bound on the call to --target (default %(default)s)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from l5d_twisted.examples.runner import AppOptions, run_app

    return run_app(
        AppOptions(
            app=args.app,
            ip=args.ip,
            port=args.port,
            latency_ms=args.latency_ms,
            failure_rate=args.failure_rate,
            target=getattr(args, "target", "http://world/"),
            timeout_ms=getattr(args, "timeout_ms", 10_000.0),
        )
    )
