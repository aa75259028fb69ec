"""``io.l5d.port``: send to a fixed port on every endpoint's host.

Used to reach a proxy (an incoming linkerd) listening on the same port on every host.
Endpoints that differ only by port collapse into one.
"""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import Addr, AddrBound, Address
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._base import LeafAddrTransformer, dedupe_by_endpoint


@dataclass(frozen=True)
class PortConfig:
    port: int = knob(doc="the port every address is rewritten to", minimum=1, maximum=65535)


class PortTransformer(LeafAddrTransformer):
    def __init__(self, port: int) -> None:
        super().__init__(Path.of("io.l5d.port", str(port)))
        self.port = port

    def map_bound(self, bound: AddrBound) -> Addr:
        moved = (Address(a.host, self.port, a.weight, a.meta) for a in bound.addresses)
        return AddrBound(dedupe_by_endpoint(moved), bound.meta)


@TRANSFORMERS.register("io.l5d.port", PortConfig)
def make_port_transformer(config: PortConfig, ctx: PluginContext) -> PortTransformer:
    return PortTransformer(config.port)
