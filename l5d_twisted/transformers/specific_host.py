"""``io.l5d.specificHost``: keep only the endpoints on a given host.

An IP literal compares directly; a host name also matches the IPs it resolves to
(resolved once, in the reactor's thread pool; until then only the name itself matches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import Addr, AddrBound
from l5d_twisted.naming.inet import is_ip_literal, thread_resolver
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Var
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._base import LeafAddrTransformer


@dataclass(frozen=True)
class SpecificHostConfig:
    host: str = knob(doc="the host (IP or name) whose endpoints are kept")


class SpecificHostTransformer(LeafAddrTransformer):
    def __init__(self, host: str, resolve: Any = None) -> None:
        super().__init__(Path.of("io.l5d.specificHost", host))
        self.host = host
        self.hosts: Var[frozenset[str]] = Var(frozenset({host}))
        if resolve is not None and not is_ip_literal(host):
            d = resolve(host, 0)
            d.addCallbacks(lambda ips: self.hosts.update(frozenset({host, *ips})), lambda _f: None)

    def map_addr(self, addr: Var[Addr]) -> Var[Addr]:
        return Var.collect([addr, self.hosts]).map(lambda pair: self._filter(pair[0], pair[1]))

    def _filter(self, addr: Addr, hosts: frozenset[str]) -> Addr:
        if not isinstance(addr, AddrBound):
            return addr
        return AddrBound(frozenset(a for a in addr.addresses if a.host in hosts), addr.meta)

    def map_bound(self, bound: AddrBound) -> Addr:
        return self._filter(bound, self.hosts.sample())


@TRANSFORMERS.register("io.l5d.specificHost", SpecificHostConfig)
def make_specific_host_transformer(
    config: SpecificHostConfig, ctx: PluginContext
) -> SpecificHostTransformer:
    return SpecificHostTransformer(config.host, thread_resolver(ctx.reactor))
