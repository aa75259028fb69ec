"""The proxy benchmark's parsing and report (the benchmark itself is run by hand)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from proxy_bench import Target, parse_wrk, report  # noqa: E402

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:40001/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  800.00us  12.00ms   90.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    2.50ms
     99%    1.05s
  60000 requests in 3.00s, 9.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  20000.50
Transfer/sec:      3.00MB
"""


def test_parse_wrk_units() -> None:
    r = parse_wrk(WRK_OUTPUT)
    assert r["rps"] == 20000.5
    assert r["p50"] == 0.85 and r["p75"] == 1.2 and r["p99"] == 1050.0
    assert r["non_2xx"] == 7
    assert r["socket_errors"] == "connect 0, read 2, write 0, timeout 0"


def test_report_shows_added_latency_ratios_rss_skips_start_up_and_targets() -> None:
    def t(key: str, name: str, rps: float, p50: float, p99: float, rss: float | None) -> Target:
        target = Target(key, name, 1)
        rate: dict[str, object] = {
            "p50": p50 + 1,
            "p99": p99 + 1,
            "service_p50": p50,
            "service_p99": p99,
            "service_p99_rounds": [p99, p99],
            "send_lag_p99": 0.1,
            "send_lag_p99_median": 0.05,
            "failed": 0,
            "dropped": 0,
            "achieved_rps": 1000.0,
        }
        if key != "direct":
            rate["added_p50"] = p50 - 0.5
            rate["added_p99"] = p99 - 1.0
            rate["added_p99_rounds"] = [p99 - 1.0, p99 - 1.0]
        target.results = {
            "wrk": {"rps": rps, "p50": 1.0, "p99": 2.0, "non_2xx": 0, "socket_errors": ""},
            "rate": rate,
        }
        if rss is not None:
            target.results["rss_after_load_mb"] = rss
            target.results["rss_peak_mb"] = rss + 1
        return target

    skipped = Target("l5d2", "l5d-twisted workers: 2", 1, skipped="no workers key")
    args = argparse.Namespace(
        connections=50,
        rate=1000.0,
        rate_rounds=2,
        rate_seconds=10.0,
        rate_warmup=2.0,
        breakdown_seconds=5.0,
    )
    startup = {
        "l5d1": {
            "runs_s": [0.3, 0.4, 0.35],
            "median_s": 0.35,
            "max_s": 0.4,
            "median_cpu_s": 0.3,
            "rss_at_first_request_mb": 44.4,
        }
    }
    text = report(
        [
            t("direct", "direct", 20000, 0.5, 1.0, None),
            t("nginx", "nginx (1 worker)", 16000, 0.7, 1.5, 15.0),
            t("haproxy", "haproxy (1 thread)", 10000, 0.7, 1.5, 16.0),
            t("l5d1", "l5d-twisted workers: 1", 8000, 1.0, 1.8, 40.0),
            skipped,
        ],
        args,
        startup,
    )
    assert "| l5d-twisted workers: 1 | 8,000 | 0.50x |" in text
    assert "| 40.0 | 41.0 | none |" in text  # RSS after load, peak
    assert "| l5d-twisted workers: 2 | skipped: no workers key |" in text
    assert "+0.50 / +0.80" in text  # added p50 / p99 of the l5d row
    assert "median 0.35 s, max 0.40 s; CPU used by then median 0.30 s; RSS then 44.4 MB" in text
    # the done-when table judges this run
    assert "| l5d-twisted >= 0.5x nginx req/s per core | **met**: 0.50x" in text
    assert "| p99 added <= 0.5 ms at 1,000 req/s | **not met**: +0.80 ms" in text
    assert "| RSS <= 40 MB after load | **met**: 40.0 MB (peak 41.0) |" in text
    assert "| start-up < 1 s | **met**: median 0.35 s" in text
