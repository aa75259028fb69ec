"""``io.l5d.localhost``: keep only the endpoints on this host.

linkerd 1 compared with one DNS lookup of the host name, which misses hosts with several
addresses.  Here an IP is local if it is a loopback address or the kernel lets us bind a
socket to it (true exactly for this host's own addresses); no DNS, nothing blocks for
long, and each IP is tested once.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._base import AddressFilterTransformer


@dataclass(frozen=True)
class LocalhostConfig:
    pass


def is_local_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    if ip.is_loopback:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
        return True
    except OSError:
        return False


class LocalhostTransformer(AddressFilterTransformer):
    def __init__(self, is_local: Callable[[str], bool] = is_local_ip) -> None:
        super().__init__(Path.of("io.l5d.localhost"))
        self._is_local = is_local
        self._known: dict[str, bool] = {}

    def keep(self, address: Address) -> bool:
        local = self._known.get(address.host)
        if local is None:
            local = self._known[address.host] = self._is_local(address.host)
        return local


@TRANSFORMERS.register("io.l5d.localhost", LocalhostConfig)
def make_localhost_transformer(config: LocalhostConfig, ctx: PluginContext) -> LocalhostTransformer:
    return LocalhostTransformer()
