"""``l5d-twisted smoke``: check a running mesh end to end, with deadlines (exit 0 or 1).

    l5d-twisted smoke --admin http://l5d:9990 --proxy $HOST_IP:4140 --target http://hello/
    l5d-twisted smoke --prometheus http://mesh-prometheus:9090
    l5d-twisted smoke --grafana http://mesh-grafana:3000 --dashboard l5d-twisted-top-line

Each check is retried until it passes or ``--timeout`` seconds have passed; one line per
check says what passed or why it failed.  The chart's ``helm test`` pods run these.

This module is the command line; the checks are :mod:`l5d_twisted.cli.smoke.checks`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from l5d_twisted.cli.smoke.checks import (
    AdminPing,
    Check,
    GrafanaServes,
    PrometheusScrapes,
    ProxyRequest,
    run_check,
    split_host_port,
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "smoke",
        help="check a running mesh: admin ping, a request through the proxy, Prometheus, Grafana",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--admin", metavar="URL", help="admin server base URL: /admin/ping must answer pong"
    )
    parser.add_argument(
        "--proxy", metavar="HOST:PORT", help="the mesh's outgoing router, used as http_proxy"
    )
    parser.add_argument(
        "--target",
        metavar="URL",
        default="http://hello/",
        help="URL requested through --proxy (default %(default)s)",
    )
    parser.add_argument(
        "--expect",
        metavar="REGEX",
        default=r"Hello .*world",
        help="the answer through the proxy must match it (default %(default)s)",
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL: mesh targets up and a non-zero request rate",
    )
    parser.add_argument(
        "--prometheus-job",
        metavar="JOB",
        default="l5d-twisted",
        help="scrape job of the mesh (default %(default)s)",
    )
    parser.add_argument(
        "--grafana",
        metavar="URL",
        help="Grafana base URL: /api/health ok and the dashboards served",
    )
    parser.add_argument(
        "--dashboard",
        metavar="UID",
        action="append",
        help="dashboard uid Grafana must serve (repeatable; default: the chart's two)",
    )
    parser.add_argument(
        "--grafana-auth",
        metavar="USER:PASSWORD",
        default=os.environ.get("L5D_SMOKE_GRAFANA_AUTH"),
        help="basic auth for Grafana (default: $L5D_SMOKE_GRAFANA_AUTH, else anonymous)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="deadline of each check (default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause between attempts (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the result lines")
    parser.set_defaults(func=run)


def build_checks(args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = []
    if args.admin:
        checks.append(AdminPing(args.admin))
    if args.proxy:
        split_host_port(args.proxy, default_port=4140)  # reject a bad value now, not per attempt
        checks.append(ProxyRequest(args.proxy, args.target, args.expect))
    if args.prometheus:
        checks.append(PrometheusScrapes(args.prometheus, args.prometheus_job))
    if args.grafana:
        uids = tuple(args.dashboard) if args.dashboard else GrafanaServes.dashboard_uids
        checks.append(GrafanaServes(args.grafana, uids, args.grafana_auth))
    return checks


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0 or args.interval < 0:
        print("smoke: --timeout must be > 0 and --interval >= 0", file=sys.stderr)
        return 2
    try:
        checks = build_checks(args)
    except ValueError as e:
        print(f"smoke: --proxy: {e}", file=sys.stderr)
        return 2
    if not checks:
        print(
            "smoke: nothing to check: give --admin, --proxy, --prometheus and/or --grafana",
            file=sys.stderr,
        )
        return 2

    def waiting(name: str, reason: str) -> None:
        if not args.quiet:
            print(f"  ... {name}: {reason} (retrying)", flush=True)

    failed = 0
    for check in checks:
        result = run_check(check, args.timeout, args.interval, on_retry=waiting)
        timing = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}, {result.elapsed_s:.1f}s"
        if result.ok:
            print(f"PASS {result.name}: {result.detail} ({timing})", flush=True)
        else:
            failed += 1
            print(f"FAIL {result.name}: {result.detail} (gave up after {timing})", flush=True)
    print(f"smoke: {len(checks) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0
