"""Telemeter ``io.l5d.prometheus``: serves the Prometheus exposition on the admin port.

Config::

    telemetry:
    - kind: io.l5d.prometheus
      path: /admin/metrics/prometheus   # where the admin server serves it
      prefix: ""                        # prepended to every mesh metric name
      metricsExpiryTtlSecs: 600         # idle service/client/server metrics leave after this (0 = never)

Names and labels: see :mod:`.prometheus`; process metrics: :mod:`.process`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request as WebRequest

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.metrics import tree_of
from l5d_twisted.telemetry.prometheus import CONTENT_TYPE, PrometheusExposition
from l5d_twisted.telemetry.telemeter import TelemeterBase


@dataclass(frozen=True)
class PrometheusConfig:
    path: str = knob("/admin/metrics/prometheus", doc="admin path serving the exposition")
    prefix: str = knob("", doc="prefix added to every mesh metric name")
    metrics_expiry_ttl_secs: int = knob(
        600, minimum=0, doc="seconds without updates after which a service/client/server's metrics are removed (0 = never)"
    )


class PrometheusResource(Resource):
    isLeaf = True

    def __init__(self, exposition: PrometheusExposition) -> None:
        super().__init__()
        self.exposition = exposition

    def render_GET(self, request: WebRequest) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.exposition.render()

    render_HEAD = render_GET


class PrometheusTelemeter(TelemeterBase):
    def __init__(self, config: PrometheusConfig, ctx: PluginContext) -> None:
        tree = tree_of(ctx.stats)
        tree.set_expiry_ttl(float(config.metrics_expiry_ttl_secs))
        self.path = config.path if config.path.startswith("/") else "/" + config.path
        self.exposition = PrometheusExposition(tree, config.prefix)

    def admin_resources(self) -> dict[bytes, IResource]:
        # cast: mypy does not know that Resource provides IResource (zope.interface).
        return {self.path.encode(): cast(IResource, PrometheusResource(self.exposition))}


@TELEMETERS.register("io.l5d.prometheus", PrometheusConfig)
def make_prometheus_telemeter(config: PrometheusConfig, ctx: PluginContext) -> PrometheusTelemeter:
    return PrometheusTelemeter(config, ctx)
