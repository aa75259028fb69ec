"""Telemeter ``io.l5d.prometheus``: serves the Prometheus exposition on the admin port.

Config::

    telemetry:
    - kind: io.l5d.prometheus
      path: /admin/metrics/prometheus   # where the admin server serves it
      prefix: ""                        # prepended to every mesh metric name
      metricsExpiryTtlSecs: 600         # idle service/client/server metrics leave after this (0 = never)
      quantiles: [0.5, 0.95, 0.99, 1]   # of each histogram (linkerd 1 also had 0.9, 0.999, 0.9999)

Names and labels: see :mod:`.prometheus`; process metrics: :mod:`.process`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.server import Request as WebRequest

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.metrics import tree_of
from l5d_twisted.telemetry.prometheus import (
    CONTENT_TYPE,
    DEFAULT_QUANTILES,
    PrometheusExposition,
    check_quantiles,
)
from l5d_twisted.telemetry.render import reactor_cooperator, run_steps, write_pieces
from l5d_twisted.telemetry.telemeter import TelemeterBase

log = Logger()


@dataclass(frozen=True)
class PrometheusConfig:
    path: str = knob("/admin/metrics/prometheus", doc="admin path serving the exposition")
    prefix: str = knob("", doc="prefix added to every mesh metric name")
    metrics_expiry_ttl_secs: int = knob(
        600,
        minimum=0,
        doc="seconds without updates after which a service/client/server's metrics are removed (0 = never)",
    )
    quantiles: tuple[str, ...] = knob(
        DEFAULT_QUANTILES,
        validator=check_quantiles,
        doc="the quantile lines of each histogram (1 is the max); linkerd 1 exported "
        "0.5, 0.9, 0.95, 0.99, 0.999, 0.9999 and 1; these four are what the chart's dashboards "
        "and the usual p50 panels read, and fewer lines make a node with thousands of names "
        "cheaper to scrape",
    )


class PrometheusResource(Resource):
    """Renders in small steps on ``cooperator`` (see :mod:`.render`), or at once without one."""

    isLeaf = True

    def __init__(
        self, exposition: PrometheusExposition, cooperator: Cooperator | None = None
    ) -> None:
        super().__init__()
        self.exposition = exposition
        self.cooperator = cooperator

    def render_GET(self, request: WebRequest) -> bytes | int:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        if self.cooperator is None:
            return self.exposition.render()
        out: list[bytes] = []
        d = run_steps(self.cooperator, self.exposition.render_steps(out), lambda: out)
        request.notifyFinish().addErrback(lambda _: d.cancel())  # the scraper went away
        d.addCallbacks(lambda pieces: write_pieces(request, pieces), lambda f: _failed(request, f))
        return NOT_DONE_YET

    render_HEAD = render_GET


class PrometheusTelemeter(TelemeterBase):
    def __init__(self, config: PrometheusConfig, ctx: PluginContext) -> None:
        tree = tree_of(ctx.stats)
        tree.set_expiry_ttl(float(config.metrics_expiry_ttl_secs))
        self.path = config.path if config.path.startswith("/") else "/" + config.path
        # with the reactor: its cached lines go 10 minutes after the last scrape
        self.exposition = PrometheusExposition(
            tree, config.prefix, quantiles=config.quantiles, reactor=ctx.reactor
        )
        self.cooperator = reactor_cooperator(ctx.reactor) if ctx.reactor is not None else None

    def close(self) -> None:
        if self.exposition.idle is not None:
            self.exposition.idle.stop()

    def admin_resources(self) -> dict[bytes, IResource]:
        # cast: mypy does not know that Resource provides IResource (zope.interface).
        return {
            self.path.encode(): cast(
                IResource, PrometheusResource(self.exposition, self.cooperator)
            )
        }


def _failed(request: WebRequest, failure: Failure) -> None:
    if getattr(request, "_disconnected", False) or request.finished:
        return  # cancelled: nobody to answer
    log.failure("prometheus exposition failed", failure)
    request.setResponseCode(500)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    write_pieces(request, [b"internal error; see the mesh's log\n"])


@TELEMETERS.register("io.l5d.prometheus", PrometheusConfig)
def make_prometheus_telemeter(config: PrometheusConfig, ctx: PluginContext) -> PrometheusTelemeter:
    return PrometheusTelemeter(config, ctx)
