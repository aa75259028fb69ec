"""Telemeter ``io.l5d.influxdb``: the metrics tree in InfluxDB line protocol, on the admin
server at ``/admin/metrics/influxdb`` (for Telegraf's ``inputs.exec`` with curl, as linkerd 1
recommends).  It has no keys, as in linkerd 1::

    telemetry:
    - kind: io.l5d.influxdb

The lines are linkerd 1's: the metrics directly under one tree node are the fields of one
line, whose measurement is the node's path joined with ``:`` (characters outside
``[a-zA-Z0-9:]`` as ``_``; metrics at the top under ``root``); router, service, client and
server scopes become tags, plus ``host``, the ``Host`` header of the scrape::

    rt:service,host=l5d:9990,rt=outgoing,service=svc/hello requests=12,success=12,...
    rt:client:status,client=$/inet/127.0.0.1/7777,host=l5d:9990,rt=outgoing 200=12,2XX=12
    rt:server,host=l5d:9990,rt=incoming,server=0.0.0.0/4141 requests=12,...

Tags and fields are sorted by key.  Counters are written as plain numbers (InfluxDB reads
floats, as linkerd 1's lines were), gauges as floats, a histogram ``h`` as the fields
``h_count h_sum h_avg h_min h_max h_p50 h_p90 h_p95 h_p99 h_p999 h_p9999``.

Differences from linkerd 1: ``h_count`` and ``h_sum`` are cumulative since start (as this
project's Prometheus ``_count``/``_sum`` and metrics.json; linkerd 1 showed its last
one-minute snapshot), the rest cover the recent window (:mod:`.histogram`); tag values and
field keys are escaped as the line protocol requires (linkerd 1 wrote them raw, so a
name with a space or comma broke its line), a backslash or line break in them becomes
``_``; a gauge that is not a number (NaN, infinite) is left out.

Rendered in small steps on the reactor, as the Prometheus exposition (:mod:`.render`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.histogram import Histogram
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree, Name, tree_of
from l5d_twisted.telemetry.render import reactor_cooperator, run_steps, write_pieces
from l5d_twisted.telemetry.telemeter import TelemeterBase

log = Logger()

PATH = b"/admin/metrics/influxdb"
CONTENT_TYPE = b"text/plain; charset=utf-8"
STEP_METRICS = 200
STEP_LINES = 500

# linkerd 1's field suffixes of a histogram's percentiles, in Summary.percentiles order
_PERCENTILE_FIELDS = ("p50", "p90", "p95", "p99", "p999", "p9999")

Tags = tuple[tuple[str, str], ...]

_INVALID = re.compile(r"[^a-zA-Z0-9:]")


def metric_name(path: tuple[str, ...]) -> str:
    """A measurement: linkerd 1's ``escapeKey`` of the path joined with ``:``."""
    return _INVALID.sub("_", ":".join(path))


@dataclass(frozen=True)
class InfluxDbConfig:
    """No keys (as linkerd 1)."""


def measurement_and_tags(name: Name) -> tuple[tuple[str, ...], dict[str, str], str]:
    """A tree name's measurement path, tags and field key (linkerd 1's rewriting)."""
    *parent, field = name
    tags: dict[str, str] = {}
    if len(parent) >= 2 and parent[0] == "rt":
        tags["rt"] = parent[1]
        rest = parent[2:]
        if len(rest) >= 2 and rest[0] in ("service", "client"):
            tags[rest[0]] = rest[1]
            if rest[0] == "client" and len(rest) >= 4 and rest[2] == "service":
                tags["service"] = rest[3]
                return ("rt", "client", "service", *rest[4:]), tags, field
            return ("rt", rest[0], *rest[2:]), tags, field
        if len(rest) >= 3 and rest[0] == "server":
            tags["server"] = f"{rest[1]}/{rest[2]}"
            return ("rt", "server", *rest[3:]), tags, field
        return ("rt", *rest), tags, field
    return (tuple(parent) or ("root",)), tags, field


def escape(text: str) -> str:
    """A tag value or field key, escaped as the line protocol wants (never empty)."""
    text = text.replace("\\", "_").replace("\n", "_").replace("\r", "_")
    text = text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return text or "_"


def number(value: float) -> str | None:
    """A field value; None for what the line protocol cannot carry (NaN, infinities)."""
    if math.isnan(value) or math.isinf(value):
        return None
    return repr(float(value))


def fields_of(field: str, metric: object) -> list[tuple[str, str]]:
    if isinstance(metric, CounterMetric):
        return [(field, str(metric.value))]
    if isinstance(metric, GaugeMetric):
        value = number(metric.read())
        return [] if value is None else [(field, value)]
    if isinstance(metric, Histogram):
        s = metric.summary()
        if s.count == 0:
            return []  # nothing recorded yet (linkerd 1: nothing before the first snapshot)
        out = [(f"{field}_count", str(s.count)), (f"{field}_sum", number(s.sum) or "0.0")]
        if s.window_count:
            window = [("avg", s.avg), ("min", s.min), ("max", s.max)]
            window += list(zip(_PERCENTILE_FIELDS, s.percentiles))
            for suffix, figure in window:
                text = number(figure)
                if text is not None:
                    out.append((f"{field}_{suffix}", text))
        return out
    return []


class InfluxExposition:
    """The line protocol text of a tree, in steps."""

    def __init__(self, tree: MetricsTree) -> None:
        self.tree = tree

    def render_steps(self, out: list[bytes], host: str = "none") -> Iterator[None]:
        lines: dict[tuple[str, Tags], dict[str, str]] = {}
        for i, (name, metric) in enumerate(self.tree.metrics()):
            if i % STEP_METRICS == STEP_METRICS - 1:
                yield None
            fields = fields_of(name[-1], metric)
            if not fields:
                continue
            path, tags, _ = measurement_and_tags(name)
            tags["host"] = host
            key = (metric_name(path), tuple(sorted(tags.items())))
            line = lines.get(key)
            if line is None:
                line = lines[key] = {}
            for field, value in fields:
                line[escape(field)] = value
        batch: list[str] = []
        for (measurement, tag_items), line_fields in lines.items():
            tag_text = "".join(f",{k}={escape(v)}" for k, v in tag_items)
            field_text = ",".join(f"{k}={v}" for k, v in sorted(line_fields.items()))
            batch.append(f"{measurement}{tag_text} {field_text}\n")
            if len(batch) >= STEP_LINES:
                out.append("".join(batch).encode("utf-8"))
                batch = []
                yield None
        if batch:
            out.append("".join(batch).encode("utf-8"))

    def render(self, host: str = "none") -> bytes:
        out: list[bytes] = []
        for _ in self.render_steps(out, host):
            pass
        return b"".join(out)


class InfluxResource(Resource):
    """Serves the lines, rendered in steps on ``cooperator`` (at once without one)."""

    isLeaf = True

    def __init__(self, exposition: InfluxExposition, cooperator: Cooperator | None) -> None:
        cast(Any, Resource).__init__(self)  # untyped in twisted
        self.exposition = exposition
        self.cooperator = cooperator

    def render_GET(self, request: Any) -> bytes | int:  # a twisted.web Request
        request.setHeader(b"content-type", CONTENT_TYPE)
        raw = request.getHeader(b"host")
        host = raw.decode("latin-1") if raw else "none"
        if self.cooperator is None:
            return self.exposition.render(host)
        out: list[bytes] = []
        d = run_steps(self.cooperator, self.exposition.render_steps(out, host), lambda: out)
        request.notifyFinish().addErrback(lambda _: d.cancel())  # the scraper went away
        d.addCallbacks(lambda pieces: write_pieces(request, pieces), lambda f: _failed(request, f))
        return NOT_DONE_YET

    render_HEAD = render_GET


def _failed(request: Any, failure: Failure) -> None:
    if getattr(request, "_disconnected", False) or request.finished:
        return  # cancelled: nobody to answer
    log.failure("influxdb exposition failed", failure)
    request.setResponseCode(500)
    request.setHeader(b"content-type", CONTENT_TYPE)
    write_pieces(request, [b"internal error; see the mesh's log\n"])


class InfluxDbTelemeter(TelemeterBase):
    def __init__(self, tree: MetricsTree, reactor: Any) -> None:
        self.exposition = InfluxExposition(tree)
        self.cooperator = reactor_cooperator(reactor) if reactor is not None else None

    def admin_resources(self) -> dict[bytes, IResource]:
        # cast: mypy does not know that Resource provides IResource (zope.interface).
        return {PATH: cast(IResource, InfluxResource(self.exposition, self.cooperator))}


@TELEMETERS.register("io.l5d.influxdb", InfluxDbConfig)
def make_influxdb_telemeter(config: InfluxDbConfig, ctx: PluginContext) -> InfluxDbTelemeter:
    return InfluxDbTelemeter(tree_of(ctx.stats), ctx.reactor)
