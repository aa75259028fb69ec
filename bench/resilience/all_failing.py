"""Scenario (d): every backend fails; the retry budget bounds the extra load.

    python3 bench/resilience/all_failing.py [--rps 200] [--seconds 30]

Five world backends with ``--failure-rate 1`` behind one router (p2c, accrual none).  For
each retry setting, on a fresh mesh: a warm-up of one budget ttl (10 s) at the same rate so
the budget's start-up reserve is spent, then ``--seconds`` measured.  Requests reaching the
backends are the router's client-layer ``requests`` (every attempt, retries included).
Target with the default budget (20 %, 10/s): attempts/s <= 1.2 x offered/s + 10.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from harness import Load, MeshSettings, cluster, table

VARIANTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("no retries (nonRetryable5XX)", "io.l5d.http.nonRetryable5XX", None),
    ("retries, default budget (20 %, 10/s, ttl 10 s)", "io.l5d.http.retryableRead5XX", None),
    ("retries, budget 100 %, 10/s", "io.l5d.http.retryableRead5XX", {"percentCanRetry": 1.0}),
]


async def main(reactor: Any, args: argparse.Namespace) -> str:
    rows: list[list[Any]] = []
    with cluster() as c:
        c.start_backends(5, failure_rates={i: 1.0 for i in range(5)})
        for label, classifier, budget in VARIANTS:
            c.start_mesh(
                MeshSettings(accrual={"kind": "none"}, classifier=classifier, budget=budget)
            )
            load = Load(reactor, c.port)
            try:
                await load.run(args.rps, args.warmup, record=False)
                before = c.client_metric("requests")
                result = await load.run(args.rps, args.seconds, record=False)
                after = c.client_metric("requests")
            finally:
                load.close()
            attempts = after - before
            percent = (
                (budget or {}).get("percentCanRetry", 0.2)
                if classifier.endswith("Read5XX")
                else 0.0
            )
            offered_rate = result.sent / args.seconds
            attempt_rate = attempts / args.seconds
            bound = (1 + percent) * offered_rate + (10 if percent else 0)
            rows.append(
                [
                    label, result.sent, int(attempts), f"{attempts / max(result.sent, 1):.3f}x",
                    f"{offered_rate:.0f}", f"{attempt_rate:.0f}", f"{bound:.0f}",
                    "yes" if attempt_rate <= bound * 1.005 else "NO",
                ]
            )  # fmt: skip
            print(f"{label}: {attempts / max(result.sent, 1):.3f}x", flush=True)
        c.stop_mesh()
    header = [
        "retries",
        "offered",
        "reached backends",
        "ratio",
        "offered/s",
        "attempts/s",
        "bound/s",
        "within bound",
    ]
    today = datetime.date.today().isoformat()
    return (
        f"### (d) every backend failing ({today}; {args.rps:g} req/s, {args.warmup:g} s warm-up then "
        f"{args.seconds:g} s measured, accrual none)\n\n" + table(header, rows)
    )


if __name__ == "__main__":
    from harness import run_scenario

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    cli_args = parser.parse_args()
    raise SystemExit(run_scenario(lambda reactor: main(reactor, cli_args)))
