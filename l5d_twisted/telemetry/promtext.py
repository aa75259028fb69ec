"""Prometheus text exposition (format 0.0.4) without prometheus-client (issue 15 item 3).

prometheus-client's ``exposition`` module imports ``ssl`` (and with it libssl), ``wsgiref``,
``http.server``, ``gzip`` and its OpenMetrics modules: ~0.6 MB of a proxy whose target is
40 MB, and the one import that kept ``ssl`` in a plain-HTTP ``run`` (see
:mod:`l5d_twisted.tls_imports`).  The mesh needs little of it: a registry of collectors,
metric families with samples, and ``generate_latest``'s text.  This module is that, with
the same names, types, help text and bytes (``tests/telemetry/test_telemetry_promtext.py``
compares the two for the same values); prometheus-client remains what the tests parse the
text with.

Only what the mesh's families use is supported: families of type ``counter`` (the name
without ``_total``, the samples with it), ``gauge``, ``summary`` and ``unknown``, names
already valid, no timestamps, no OpenMetrics ``_created``/``_gsum``/``_gcount`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol

INF = float("inf")

_TYPE_TEXT = {"unknown": "untyped"}


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


class Family:
    """A metric family: prometheus-client's ``Metric`` in the attributes the mesh uses."""

    __slots__ = ("documentation", "name", "samples", "type")

    def __init__(self, name: str, documentation: str, type_: str) -> None:
        self.name = name
        self.documentation = documentation
        self.type = type_
        self.samples: list[Sample] = []

    def add_sample(self, name: str, labels: dict[str, str], value: float) -> None:
        self.samples.append(Sample(name, labels, value))


def gauge(name: str, documentation: str, value: float) -> Family:
    """A gauge family of one unlabelled sample (``GaugeMetricFamily(name, doc, value=)``)."""
    family = Family(name, documentation, "gauge")
    family.add_sample(name, {}, value)
    return family


def counter(name: str, documentation: str) -> Family:
    """A counter family (``name`` without ``_total``); add samples named ``name_total``."""
    return Family(name.removesuffix("_total"), documentation, "counter")


class Collector(Protocol):
    def collect(self) -> Iterable[Family]: ...


class Registry:
    """Collectors read in the order they were registered (``CollectorRegistry``'s role)."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        for collector in self._collectors:
            yield from collector.collect()


def float_to_go(d: float) -> str:
    """A number as Go (and so Prometheus, and prometheus-client's ``floatToGoString``) prints it."""
    d = float(d)
    if d == INF:
        return "+Inf"
    if d == -INF:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def generate_latest(registry: Registry) -> bytes:
    """The text format of ``registry``'s families, as prometheus-client's ``generate_latest``."""
    output: list[str] = []
    for family in registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        documentation = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        output.append(f"# HELP {name} {documentation}\n")
        output.append(f"# TYPE {name} {_TYPE_TEXT.get(family.type, family.type)}\n")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
                output.append(f"{sample.name}{{{labels}}} {float_to_go(sample.value)}\n")
            else:
                output.append(f"{sample.name} {float_to_go(sample.value)}\n")
    return "".join(output).encode("utf-8")
