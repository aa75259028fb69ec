"""Process metrics, exposed next to the mesh's own in Prometheus format.

linkerd 1 exported JVM figures as ``jvm:*``; we export what prometheus-client's standard
collectors measure for a Python process (in a registry of our own, never the global one):

* ``process_resident_memory_bytes``, ``process_virtual_memory_bytes``,
  ``process_open_fds``, ``process_max_fds``, ``process_cpu_seconds_total``,
  ``process_start_time_seconds`` (``ProcessCollector``, Linux ``/proc``);
* ``python_gc_objects_collected_total``, ``python_gc_objects_uncollectable_total``,
  ``python_gc_collections_total`` with a ``generation`` label (``GCCollector``);
* ``python_info`` (``PlatformCollector``);
* ``process_uptime_seconds``: seconds since the process started (ours).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


def _process_start_time() -> float:
    for family in ProcessCollector(registry=None).collect():
        for sample in family.samples:
            if sample.name == "process_start_time_seconds":
                return float(sample.value)
    return time.time()


class UptimeCollector:
    def __init__(self) -> None:
        self.started = _process_start_time()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "process_uptime_seconds",
            "Seconds since the process started.",
            value=max(0.0, time.time() - self.started),
        )


def register_process_collectors(registry: CollectorRegistry) -> None:
    """Add the process, GC, platform and uptime collectors to ``registry``."""
    # Each standard collector registers itself with the registry it is given.
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(UptimeCollector())
