"""Scenario (b): one of five backends fails 40 % of requests; retries off; per accrual policy.

    python3 bench/resilience/failing_backend.py [--rps 500] [--seconds 30]

Five world backends, backend 0 with ``--failure-rate 0.4``, behind one router (p2c) whose
classifier is ``io.l5d.http.nonRetryable5XX`` (no retries).  For each failure accrual
policy on a fresh mesh: the success rate seen by clients at a fixed rate.  Target: >= 99 %
with ``io.l5d.successRate``.  ``--retries`` runs scenario (c) instead (see
``failing_backend_retries.py``).
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from harness import Load, MeshSettings, cluster, table

ACCRUALS: list[tuple[str, dict[str, Any]]] = [
    ("none", {"kind": "none"}),
    ("consecutiveFailures (failures 5)", {"kind": "io.l5d.consecutiveFailures"}),
    (
        "successRate (0.9 over 100 requests)",
        {"kind": "io.l5d.successRate", "successRate": 0.9, "requests": 100},
    ),
    (
        "successRateWindowed (0.9 over 5 s)",
        {"kind": "io.l5d.successRateWindowed", "successRate": 0.9, "window": 5},
    ),
]


async def main(reactor: Any, args: argparse.Namespace) -> str:
    classifier = "io.l5d.http.retryableRead5XX" if args.retries else "io.l5d.http.nonRetryable5XX"
    rows: list[list[Any]] = []
    with cluster() as c:
        c.start_backends(5, failure_rates={0: 0.4})
        for label, accrual in ACCRUALS:
            c.start_mesh(MeshSettings(accrual=accrual, classifier=classifier))
            load = Load(reactor, c.port)
            try:
                await load.run(min(args.rps, 50), 0.5, record=False)  # connections up
                result = await load.run(args.rps, args.seconds)
                m = c.metrics()
            finally:
                load.close()
            client = "rt/out/client/#/io.l5d.fs/world/"
            service = "rt/out/service/svc/world/"
            rows.append(
                [
                    label,
                    f"{100 * result.success_rate:.2f}%",
                    result.sent,
                    result.failed,
                    int(m.get(client + "failure_accrual/removals", 0)),
                    int(m.get(client + "failure_accrual/revivals", 0)),
                    int(m.get(service + "retries/total", 0)),
                    result.pct(0.99),
                ]
            )
            print(f"{label}: success {100 * result.success_rate:.2f}%", flush=True)
        c.stop_mesh()
    header = [
        "failure accrual",
        "success",
        "requests",
        "failed",
        "removals",
        "revivals",
        "retries",
        "p99 ms",
    ]
    today = datetime.date.today().isoformat()
    title = (
        "(c) one of five backends failing 40 %, retryableRead5XX retries"
        if args.retries
        else "(b) one of five backends failing 40 %, retries off"
    )
    return (
        f"### {title} ({today}; {args.rps:g} req/s for {args.seconds:g} s, p2c, classifier {classifier}, "
        "accrual backoff default jittered 5 s..300 s)\n\n" + table(header, rows)
    )


def cli(retries: bool) -> None:
    from harness import run_scenario

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--retries", action="store_true", default=retries, help="classify 5XX GETs as retryable"
    )
    args = parser.parse_args()
    raise SystemExit(run_scenario(lambda reactor: main(reactor, args)))


if __name__ == "__main__":
    cli(retries=False)
