"""How fast this VM was while a benchmark ran: steal, and a fixed loop's time.

On a virtual machine the host may run other guests on the physical cores ours are mapped
to; the kernel counts the time our vCPUs were ready to run but not running as *steal*
(``/proc/stat``, the 8th number of the ``cpu`` line).  Every latency and CPU-time figure of
a run with steal is inflated by something no proxy controls: on this machine a quiet run
saw ~0 % steal and a slow one, with the load average still under 0.5, did the same work
~1.7x slower, and steal was only ~3 % of the busy CPU's time then: the host's other guests
also slow ours through shared caches and memory bandwidth, which no counter shows.  So the
benches also time a fixed pure-Python loop (:func:`loop_ms`) before and after a run, and
record both figures next to ``uptime`` so runs can be compared fairly.

    with StealMeter() as steal:
        ...
    steal.final   # steal over the block, in % of all CPU time of every CPU
    loop_ms()     # the median of 3 timings of the fixed loop
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import TracebackType


def loop_ms(iterations: int = 10_000_000, repeat: int = 3) -> float:
    """The median wall time, in ms, of ``iterations`` integer additions in a Python loop:
    how fast this VM runs the interpreter right now (the proxy's own kind of work)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def cpu_times() -> tuple[int, int]:
    """(steal, total) clock ticks summed over every CPU since boot; (0, 0) without /proc."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0, 0
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice: the guest times are
    # already inside user and nice
    total = sum(ticks[:8])
    steal = ticks[7] if len(ticks) > 7 else 0
    return steal, total


class StealMeter:
    """Steal as a percentage of all CPU time between ``start()`` (or ``__enter__``) and
    each read of ``pct``."""

    def __init__(self) -> None:
        self._start = cpu_times()

    def start(self) -> StealMeter:
        self._start = cpu_times()
        return self

    @property
    def pct(self) -> float:
        steal, total = cpu_times()
        d_total = total - self._start[1]
        return 100.0 * (steal - self._start[0]) / d_total if d_total > 0 else 0.0

    def __enter__(self) -> StealMeter:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.final = self.pct
