"""CPU of rendering the metrics endpoints in-process, A/B between two trees.

    python3 bench/scrape/render_cpu.py [--scopes 5000] [--rounds 5] [--touch 0.1]
                                       [--repo /tmp/l5d-before] [--endpoint prometheus|json|both]

Builds the metrics of ``--scopes`` services with their clients exactly as
``bench/scrape/stall.py`` does (a real router on a fake clock, one request per name), then
renders the exposition the way the admin server does (``render_steps`` drained in full),
``--rounds`` times per endpoint, and prints per render the CPU (``time.process_time``),
the number of steps and the longest (CPU of the thread: what a slice of the reactor can
not be shorter than), the garbage collections it caused (``gc.callbacks``: count and time of
each generation) and the body's size.  Between renders, ``--touch`` (a fraction)
of the service and client scopes see activity: every counter incremented and every
histogram given a value, so what changed has to be rendered again.

``--repo`` runs the same against another checkout (``git archive <commit> | tar -x -C
/tmp/l5d-before``): the tree and its ``bench/scrape/stall.py`` are imported from there.
Run the two alternately for an A/B on a shared machine.  The collector runs with the
proxy's thresholds (``GC_THRESHOLDS`` of ``l5d-twisted run``), here for both trees.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import os
import random
import sys
import time
from typing import Any

GC_THRESHOLDS = (700, 10, 1000)  # l5d_twisted/cli/run.py, as of issue 17


def _load_stall(repo: str) -> Any:
    sys.path.insert(0, repo)
    spec = importlib.util.spec_from_file_location(
        "stall", os.path.join(repo, "bench", "scrape", "stall.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GcTimer:
    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.time = [0.0, 0.0, 0.0]
        self.longest = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            spent = time.perf_counter() - self.started
            generation = info["generation"]
            self.count[generation] += 1
            self.time[generation] += spent
            self.longest = max(self.longest, spent)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.time = [0.0, 0.0, 0.0]
        self.longest = 0.0


def touch(tree: Any, fraction: float, rng: random.Random) -> int:
    """Activity in ``fraction`` of the expirable scopes: counters +1, histograms a value."""
    from l5d_twisted.telemetry.histogram import Histogram
    from l5d_twisted.telemetry.metrics import CounterMetric

    touched = 0
    for key, metrics in tree.scopes():
        if len(key) != 4 or rng.random() >= fraction:
            continue
        touched += 1
        for metric in list(metrics.values()):
            if isinstance(metric, CounterMetric):
                metric.incr()
            elif isinstance(metric, Histogram):
                metric.add(rng.uniform(0.5, 20.0))
    return touched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scopes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--touch", type=float, default=0.1)
    parser.add_argument(
        "--repo",
        default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    parser.add_argument("--endpoint", choices=("prometheus", "json", "both"), default="both")
    parser.add_argument("--tag", default="", help="a label printed on every row")
    args = parser.parse_args()

    stall = _load_stall(os.path.abspath(args.repo))
    from l5d_twisted.telemetry import metrics_json as mj
    from l5d_twisted.telemetry.prometheus import PrometheusExposition

    tree, build_s = stall.populate(args.scopes, 0, False)
    # the proxy's collector thresholds (l5d_twisted/cli/run.py GC_THRESHOLDS)
    gc.set_threshold(*GC_THRESHOLDS)
    exposition = PrometheusExposition(tree, process_metrics=False)  # comparable bytes
    json_state: dict[str, Any] = {}

    def prometheus_steps(out: list[bytes]) -> Any:
        return exposition.render_steps(out)

    def json_steps(out: list[bytes]) -> Any:
        exposition_cls = getattr(mj, "MetricsJsonExposition", None)
        if exposition_cls is None:  # before issue 17's cache
            return mj.metrics_json_steps(tree, out)
        if "x" not in json_state:
            json_state["x"] = exposition_cls(tree)
        return json_state["x"].render_steps(out)

    endpoints = []
    if args.endpoint in ("prometheus", "both"):
        endpoints.append(("prometheus", prometheus_steps))
    if args.endpoint in ("json", "both"):
        endpoints.append(("metrics.json", json_steps))

    timer = GcTimer()
    gc.callbacks.append(timer)
    rng = random.Random(7)
    print(f"# {args.tag} repo={args.repo} built {args.scopes} names in {build_s:.1f} s")
    for round_ in range(args.rounds):
        for label, steps in endpoints:
            touched = touch(tree, args.touch, rng) if round_ else 0
            out: list[bytes] = []
            timer.reset()
            started = time.process_time()
            n = 0
            longest_step = 0.0
            iterator = steps(out)
            while True:
                step_started = time.thread_time()
                try:
                    next(iterator)
                except StopIteration:
                    break
                finally:
                    longest_step = max(longest_step, time.thread_time() - step_started)
                n += 1
            cpu = time.process_time() - started
            size = sum(len(p) for p in out)
            digest = hashlib.sha1(b"".join(out)).hexdigest()[:10]
            print(
                f"{args.tag} {label:<12} round {round_} touched {touched:>5} "
                f"cpu {cpu * 1000:7.1f} ms  steps {n:>6} (longest {longest_step * 1000:4.1f} ms)  "
                f"bytes {size:>9}  sha {digest}  "
                f"gc {timer.count} {[round(t * 1000, 1) for t in timer.time]} ms "
                f"longest {timer.longest * 1000:.1f} ms",
                flush=True,
            )
            del out
    gc.callbacks.remove(timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
