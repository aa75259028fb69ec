"""Process metrics, exposed next to the mesh's own in Prometheus format.

linkerd 1 exported JVM figures as ``jvm:*``; we export what prometheus-client's standard
collectors measure for a Python process, with their names, types and help text (the
chart's dashboards read them), computed here as they compute them, without importing
prometheus-client (see :mod:`.promtext`):

* ``process_resident_memory_bytes``, ``process_virtual_memory_bytes``,
  ``process_open_fds``, ``process_max_fds``, ``process_cpu_seconds_total``,
  ``process_start_time_seconds`` (its ``ProcessCollector``, Linux ``/proc``);
* ``python_gc_objects_collected_total``, ``python_gc_objects_uncollectable_total``,
  ``python_gc_collections_total`` with a ``generation`` label (``GCCollector``);
* ``python_info`` (``PlatformCollector``);
* ``process_uptime_seconds``: seconds since the process started (ours).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import time

from l5d_twisted.telemetry.promtext import Family, Registry, counter, gauge

PROC = "/proc"


def _clock_ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, TypeError, AttributeError, OSError):
        return 100.0


def _boot_time(proc: str) -> float:
    with open(os.path.join(proc, "stat"), "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


class ProcessCollector:
    """prometheus-client's ``ProcessCollector`` (no namespace, this process)."""

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc
        self._ticks = _clock_ticks()
        self._pagesize = resource.getpagesize()
        try:
            self._btime = _boot_time(proc)
        except OSError:
            self._btime = 0.0

    def start_time(self) -> float | None:
        """The process's start time since the epoch, None if /proc cannot tell."""
        if not self._btime:
            return None
        try:
            with open(os.path.join(self._proc, "self", "stat"), "rb") as stat:
                parts = stat.read().split(b")")[-1].split()
        except OSError:
            return None
        return float(parts[19]) / self._ticks + self._btime

    def collect(self) -> list[Family]:
        if not self._btime:
            return []
        pid = os.path.join(self._proc, "self")
        result: list[Family] = []
        try:
            with open(os.path.join(pid, "stat"), "rb") as stat:
                parts = stat.read().split(b")")[-1].split()
            cpu = counter("process_cpu_seconds", "Total user and system CPU time spent in seconds.")
            cpu.add_sample(
                "process_cpu_seconds_total",
                {},
                float(parts[11]) / self._ticks + float(parts[12]) / self._ticks,
            )
            result += [
                gauge(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    float(parts[20]),
                ),
                gauge(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    float(parts[21]) * self._pagesize,
                ),
                gauge(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    float(parts[19]) / self._ticks + self._btime,
                ),
                cpu,
            ]
        except OSError:
            pass
        try:
            max_fds = None
            with open(os.path.join(pid, "limits"), "rb") as limits:
                for line in limits:
                    if line.startswith(b"Max open file"):
                        max_fds = gauge(
                            "process_max_fds",
                            "Maximum number of open file descriptors.",
                            float(line.split()[3]),
                        )
                        break
            open_fds = gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                len(os.listdir(os.path.join(pid, "fd"))),
            )
            result.append(open_fds)
            if max_fds is not None:
                result.append(max_fds)
        except OSError:
            pass
        return result


class GCCollector:
    """prometheus-client's ``GCCollector``."""

    def collect(self) -> list[Family]:
        collected = counter("python_gc_objects_collected", "Objects collected during gc")
        uncollectable = counter(
            "python_gc_objects_uncollectable", "Uncollectable objects found during GC"
        )
        collections = counter(
            "python_gc_collections", "Number of times this generation was collected"
        )
        for gen, stat in enumerate(gc.get_stats()):
            labels = {"generation": str(gen)}
            collected.add_sample("python_gc_objects_collected_total", labels, stat["collected"])
            uncollectable.add_sample(
                "python_gc_objects_uncollectable_total", dict(labels), stat["uncollectable"]
            )
            collections.add_sample("python_gc_collections_total", dict(labels), stat["collections"])
        return [collected, uncollectable, collections]


class PlatformCollector:
    """prometheus-client's ``PlatformCollector`` (CPython's labels)."""

    def __init__(self) -> None:
        major, minor, patchlevel = platform.python_version_tuple()
        info = Family("python_info", "Python platform information", "gauge")
        labels = {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "major": major,
            "minor": minor,
            "patchlevel": patchlevel,
        }
        info.add_sample("python_info", labels, 1)
        self._metrics = [info]

    def collect(self) -> list[Family]:
        return self._metrics


class UptimeCollector:
    def __init__(self) -> None:
        started = ProcessCollector().start_time()
        self.started = time.time() if started is None else started

    def collect(self) -> list[Family]:
        return [
            gauge(
                "process_uptime_seconds",
                "Seconds since the process started.",
                max(0.0, time.time() - self.started),
            )
        ]


def register_process_collectors(registry: Registry) -> None:
    """Add the process, GC, platform and uptime collectors to ``registry``."""
    registry.register(ProcessCollector())
    if platform.python_implementation() == "CPython":  # as GCCollector registers itself
        registry.register(GCCollector())
    registry.register(PlatformCollector())
    registry.register(UptimeCollector())
