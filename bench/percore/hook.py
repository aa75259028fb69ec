"""Measure a proxy process from inside, in windows the benchmark driver opens and closes.

    python3 bench/percore/hook.py --out PREFIX [--gc-thresholds G0,G1,G2] [--reactor R] \\
        -m l5d_twisted run CONFIG --log-level warn
    python3 bench/percore/hook.py --out PREFIX bench/minimal_forwarder.py --port P --backend B

Runs the module (``-m``) or script it is given in this process, as ``python3 -m``/``python3``
would, with two signal handlers installed and nothing else: between windows the process is
the plain program. The driver (``bench/percore/breakdown.py``'s :class:`Instrumented`)
writes the window's mode to ``PREFIX.mode``, sends SIGUSR1 to open the window and SIGUSR2
to close it; at the close the window's figures are written as JSON to ``PREFIX.N`` (N: 0,
1, ... in order). Modes:

* ``plain``: the process's user and system CPU (``os.times``) and the CPU spent in garbage
  collections (``gc.callbacks``);
* ``profile``: cProfile over the window, each function's own time sorted into components
  (:func:`split_profile`), and the costliest functions;
* ``tail``: what could delay a request, for a fixed-rate window: every garbage collection's
  pause (wall time, per generation), and every reactor iteration's busy span (from the
  return of ``epoll_wait`` to the next call: dispatching the ready sockets, then the due
  timers), wall and thread CPU, with the timers that ran in the longest ones.

Everything it installs for a window is removed at the close.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import heapq
import os
import signal
import sys
import time
from array import array
from typing import Any

COMPONENTS = (
    "reactor",
    "syscalls",
    "Deferreds",
    "codec",
    "router",
    "resilience filters",
    "stats",
    "balancer",
    "GC",
    "other",
)

# C functions whose time is the kernel's (counted as system CPU in a plain window)
_SYSCALLS = (
    "'send'",
    "'recv'",
    "'recv_into'",
    "'sendmsg'",
    "'sendall'",
    "'accept'",
    "'poll' of 'select.epoll'",
    "'register' of 'select.epoll'",
    "'modify' of 'select.epoll'",
    "'unregister' of 'select.epoll'",
    "'select' of",
    "'run_once'",
    "'setsockopt'",
    "'shutdown'",
    "'close' of '_socket",
    "'connect_ex'",
)


def component(filename: str, name: str) -> str | None:
    """The component a Python function's own time belongs to (None: a C builtin)."""
    if filename == "~":
        return None
    f = filename.replace(os.sep, "/")
    if "/twisted/internet/defer.py" in f:
        return "Deferreds"
    if "/twisted/" in f or "/zope/" in f or "/asyncio/" in f or "/uvloop/" in f:
        return "reactor"
    if f.endswith("/bench/minimal_forwarder.py"):
        return "codec"  # the forwarder is parse, re-encode, write: nothing else
    if "/l5d_twisted/" in f:
        rel = f.rsplit("/l5d_twisted/", 1)[1]
        if rel == "eventloop.py":
            return "reactor"
        if rel.startswith("telemetry/"):
            return "stats"
        if (
            rel.startswith("balancers/")
            or rel == "http/pool.py"
            or rel in ("resilience/accrual.py", "resilience/fail_fast.py")
        ):
            return "balancer"
        if rel.startswith("http/"):
            return "codec"
        if rel.startswith("resilience/"):
            return "resilience filters"
        if rel.startswith(("router/", "naming/", "namers/")) or rel in (
            "service.py",
            "request_context.py",
        ):
            return "router"
        return "other"
    if "/httptools/" in f:
        return "codec"
    return "other"


def split_profile(stats: dict[Any, Any]) -> tuple[dict[str, float], float, int]:
    """Own time per component (syscall builtins apart), their total, and the call count."""
    own: dict[str, float] = {c: 0.0 for c in COMPONENTS}
    syscall_s = 0.0
    calls = 0
    for (filename, _line, name), (_cc, nc, tt, _ct, callers) in stats.items():
        calls += nc
        comp = component(filename, name)
        if comp is not None:
            own[comp] += tt
            continue
        if any(s in name for s in _SYSCALLS):
            syscall_s += tt
            continue
        # a builtin: its callers' components, weighted by each call site's time in it
        weights: dict[str, float] = {}
        for (cfile, _cline, cname), edge in callers.items():
            ccomp = component(cfile, cname) or "other"
            weights[ccomp] = weights.get(ccomp, 0.0) + edge[2]
        total = sum(weights.values())
        if total <= 0:
            own["other"] += tt
            continue
        for ccomp, w in weights.items():
            own[ccomp] += tt * w / total
    own.pop("syscalls")
    own.pop("GC")
    return own, syscall_s, calls


def _name(call: Any) -> str:
    func = getattr(call, "func", call)
    func = getattr(func, "func", func)  # functools.partial
    return str(getattr(func, "__qualname__", None) or type(func).__name__)


class _TimedPoller:
    """Stands in for the reactor's ``select.epoll``: times the spans between two polls.

    Keeps every span's wall and thread-CPU time in two ``array('d')`` (16 bytes a span:
    the window must not grow the RSS it is there to watch) and the longest ones, with the
    number of events dispatched and the GC pause inside them, in a small heap."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self._poller = windows.real_poller
        self.walls: Any = array("d")
        self.cpus: Any = array("d")
        self.longest: list[tuple[float, float, int, float]] = []  # min-heap of the top spans
        self._last: tuple[float, float, int] | None = None

    def poll(self, timeout: float = -1, maxevents: int = -1) -> Any:
        last = self._last
        if last is not None:
            wall = time.perf_counter() - last[0]
            cpu = time.thread_time() - last[1]
            self.walls.append(wall)
            self.cpus.append(cpu)
            longest = self.longest
            if len(longest) < self.windows.top or wall > longest[0][0]:
                heapq.heappush(longest, (wall, cpu, last[2], self.windows.span_gc))
                if len(longest) > self.windows.top:
                    heapq.heappop(longest)
        self.windows.span_gc = 0.0
        events = self._poller.poll(timeout, maxevents)
        self._last = (time.perf_counter(), time.thread_time(), len(events))
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


class Windows:
    def __init__(self, out: str, top: int) -> None:
        self.out = out
        self.top = top
        self.n = 0
        self.mode = ""
        self.gc_cpu = [0.0, 0.0, 0]  # total, start of the current collection, collections
        self.gc_by_generation = [0, 0, 0]
        self.gc_collected = 0
        self.gc_pauses: list[tuple[float, int]] = []  # (wall s, generation), tail mode
        self.gc_wall_start = 0.0
        self.poller: _TimedPoller | None = None
        self.span_gc = 0.0  # GC pause inside the current reactor iteration
        self.timer_runs: list[tuple[float, list[str]]] = []  # (wall s, timers), tail mode
        self.profiler: Any = None
        self.begin: Any = None
        self.reactor: Any = None
        self.real_poller: Any = None
        self.real_run_until_current: Any = None

    # -- garbage collections ------------------------------------------------------------
    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.gc_cpu[1] = time.process_time()
            self.gc_wall_start = time.perf_counter()
            return
        self.gc_cpu[0] += time.process_time() - self.gc_cpu[1]
        self.gc_cpu[2] += 1
        self.gc_by_generation[info["generation"]] += 1
        self.gc_collected += info["collected"]
        if self.mode == "tail":
            pause = time.perf_counter() - self.gc_wall_start
            self.gc_pauses.append((pause, info["generation"]))
            self.span_gc += pause

    # -- the reactor, tail mode ---------------------------------------------------------
    def timed_run_until_current(self) -> None:
        reactor = self.reactor
        now = reactor.seconds()
        due = [c for c in reactor._pendingTimedCalls if c.time <= now]
        due += [c for c in reactor._newTimedCalls if c.time <= now]
        started = time.perf_counter()
        self.real_run_until_current()
        took = time.perf_counter() - started
        if due or reactor.threadCallQueue:
            entry = (took, [_name(c) for c in due] if took > 0.0002 else [])
            if len(self.timer_runs) < self.top * 4 or took > self.timer_runs[0][0]:
                heapq.heappush(self.timer_runs, entry)  # the longest, min-heap
                if len(self.timer_runs) > self.top * 4:
                    heapq.heappop(self.timer_runs)

    def start_tail(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.gc_pauses = []
        self.timer_runs = []
        if hasattr(reactor, "_poller"):
            self.real_poller = reactor._poller
            self.poller = reactor._poller = _TimedPoller(self)
        self.real_run_until_current = reactor.runUntilCurrent
        reactor.runUntilCurrent = self.timed_run_until_current

    def stop_tail(self, result: dict[str, Any]) -> None:
        reactor = self.reactor
        if self.real_poller is not None:
            reactor._poller = self.real_poller
            self.real_poller = None
        reactor.runUntilCurrent = self.real_run_until_current
        poller, self.poller = self.poller, None
        walls = sorted(poller.walls) if poller is not None else []
        cpus = sorted(poller.cpus) if poller is not None else []

        def quantile(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(len(values) * q))] * 1000

        def count_over(values: list[float], ms: float) -> int:
            return len(values) - bisect.bisect_right(values, ms / 1000)

        result["iterations"] = len(walls)
        result["busy_wall_s"] = sum(walls)
        result["busy_cpu_s"] = sum(cpus)
        if walls:
            result["busy_p50_ms"] = quantile(walls, 0.5)
            result["busy_p99_ms"] = quantile(walls, 0.99)
            result["busy_max_ms"] = walls[-1] * 1000
            result["busy_cpu_p99_ms"] = quantile(cpus, 0.99)
            result["busy_max_cpu_ms"] = cpus[-1] * 1000
        thresholds = (0.25, 0.5, 1, 2, 5)
        result["busy_over_ms"] = {str(ms): count_over(walls, ms) for ms in thresholds}
        result["busy_cpu_over_ms"] = {str(ms): count_over(cpus, ms) for ms in thresholds}
        result["longest_spans"] = (
            [
                {"wall_ms": w * 1000, "cpu_ms": c * 1000, "events": e, "gc_ms": g * 1000}
                for w, c, e, g in sorted(poller.longest, reverse=True)
            ]
            if poller is not None
            else []
        )
        del walls, cpus
        pauses = self.gc_pauses
        result["gc_pauses"] = {
            str(g): {
                "count": sum(1 for _p, pg in pauses if pg == g),
                "max_ms": max((p for p, pg in pauses if pg == g), default=0.0) * 1000,
                "total_ms": sum(p for p, pg in pauses if pg == g) * 1000,
            }
            for g in (0, 1, 2)
        }
        runs = sorted(self.timer_runs, reverse=True)[: self.top]
        result["longest_timer_runs"] = [{"ms": t * 1000, "timers": names} for t, names in runs]
        self.gc_pauses = []
        self.timer_runs = []

    # -- windows ------------------------------------------------------------------------
    def open(self, signum: int, frame: Any) -> None:
        if self.begin is not None:
            return  # a window is open already
        try:
            with open(f"{self.out}.mode") as f:
                self.mode = f.read().strip() or "plain"
        except OSError:
            self.mode = "plain"
        self.begin = (
            os.times(),
            self.gc_cpu[0],
            self.gc_cpu[2],
            list(self.gc_by_generation),
            self.gc_collected,
            time.perf_counter(),
        )
        if self.mode == "profile":
            import cProfile

            self.profiler = cProfile.Profile()
            self.profiler.enable()
            return
        gc.callbacks.append(self.on_gc)
        if self.mode == "tail":
            self.start_tail()

    def close(self, signum: int, frame: Any) -> None:
        if self.begin is None:
            return  # no window open
        if self.profiler is not None:
            self.profiler.disable()
        if self.on_gc in gc.callbacks:
            gc.callbacks.remove(self.on_gc)
        end = os.times()
        times, gc_s, gc_n, by_gen, collected, wall = self.begin
        self.begin = None
        result: dict[str, Any] = {
            "mode": self.mode,
            "wall_s": time.perf_counter() - wall,
            "user_s": end.user - times.user,
            "system_s": end.system - times.system,
            "gc_s": self.gc_cpu[0] - gc_s,
            "gc_collections": self.gc_cpu[2] - gc_n,
            "gc_by_generation": [a - b for a, b in zip(self.gc_by_generation, by_gen)],
            "gc_collected_objects": self.gc_collected - collected,
            "gc_thresholds": gc.get_threshold(),
        }
        if self.mode == "tail":
            self.stop_tail(result)
        package = sys.modules.get("l5d_twisted")
        if package is not None:  # which tree, and what of it runs compiled (mypyc)
            result["code"] = os.path.dirname(str(package.__file__))
            result["compiled"] = sorted(
                name
                for name, module in list(sys.modules.items())
                if name.startswith("l5d_twisted.")
                and str(getattr(module, "__file__", "")).endswith(".so")
            )
        if self.profiler is not None:
            import pstats

            stats = pstats.Stats(self.profiler).stats  # type: ignore[attr-defined]
            own, syscall_s, calls = split_profile(stats)
            result.update(profile_own_s=own, profile_syscall_s=syscall_s, profile_calls=calls)
            ranked = sorted(stats.items(), key=lambda item: -item[1][2])
            result["profile_top"] = [
                [
                    f"{os.path.basename(f)}:{line}({name})",
                    component(f, name) or "builtin",
                    v[1],
                    v[2],
                ]
                for (f, line, name), v in ranked[: max(self.top, 30)]
            ]
            self.profiler = None
        import json

        path = f"{self.out}.{self.n}"
        with open(path + ".tmp", "w") as f:
            json.dump(result, f)
        os.rename(path + ".tmp", path)  # the driver polls for the name: never half a file
        self.n += 1
        self.mode = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="prefix of the window files")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--gc-thresholds", metavar="G0,G1,G2")
    parser.add_argument(
        "--reactor", choices=["default", "twisted", "lean", "asyncio", "uvloop"], default="default"
    )
    parser.add_argument("-m", dest="module", help="run this module as __main__")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.reactor == "lean":
        from l5d_twisted.eventloop import install

        assert install(), "cannot install the lean epoll reactor here"
    elif args.reactor == "twisted":
        from twisted.internet import epollreactor

        epollreactor.install()
    elif args.reactor in ("asyncio", "uvloop"):
        import asyncio

        if args.reactor == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        from twisted.internet import asyncioreactor

        install_asyncio: Any = asyncioreactor.install  # (untyped)
        install_asyncio(loop)
    if args.gc_thresholds:
        import importlib

        run: Any = importlib.import_module("l5d_twisted.cli.run")  # (cli.run is a function)
        run.GC_THRESHOLDS = tuple(int(t) for t in args.gc_thresholds.split(","))
    windows = Windows(args.out, args.top)
    signal.signal(signal.SIGUSR1, windows.open)
    signal.signal(signal.SIGUSR2, windows.close)
    import runpy  # (what `python3 -m` uses; the proxy imports importlib's parts anyway)

    rest = list(args.rest)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if args.module:
        sys.argv = [args.module, *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path[0] = os.path.dirname(os.path.abspath(rest[0]))
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
