"""Scenario (c): scenario (b) with ``io.l5d.http.retryableRead5XX`` retries (default budget).

    python3 bench/resilience/failing_backend_retries.py [--rps 500] [--seconds 30]

Target: >= 99.9 % success.
"""

from __future__ import annotations

from failing_backend import cli

if __name__ == "__main__":
    cli(retries=True)
