"""``io.l5d.k8s.localnode``: keep only the endpoints on this node.

"This node" is ``NODE_NAME`` (set from the downward API ``spec.nodeName``), compared with
the node names the API reports for endpoints.  Without a node name on either side it
falls back to linkerd 1's rule, the /24 of ``POD_IP``; with ``hostNetwork`` node names are
required.  Bound ids read ``/%/io.l5d.k8s.localnode/<node>/<original id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._base import AddressFilterTransformer, same_subnet_24


@dataclass(frozen=True)
class LocalNodeConfig:
    host_network: bool = knob(False, doc="pods use the host network: match by NODE_NAME only")


class LocalNodeTransformer(AddressFilterTransformer):
    def __init__(
        self, node_name: str | None, pod_ip: str | None, host_network: bool = False
    ) -> None:
        if host_network and not node_name:
            raise ValueError(
                "io.l5d.k8s.localnode with hostNetwork needs the NODE_NAME environment variable "
                "(downward API spec.nodeName)"
            )
        if not node_name and not pod_ip:
            raise ValueError(
                "io.l5d.k8s.localnode needs NODE_NAME or POD_IP in the environment "
                "(downward API spec.nodeName / status.podIP)"
            )
        super().__init__(Path.of("io.l5d.k8s.localnode", node_name or str(pod_ip)))
        self.node_name = node_name
        self.pod_ip = pod_ip
        self.host_network = host_network

    def keep(self, address: Address) -> bool:
        if self.node_name and address.node_name:
            return address.node_name == self.node_name
        if self.host_network or not self.pod_ip:
            return False
        return same_subnet_24(address.host, self.pod_ip)


def from_env(config: LocalNodeConfig, env: Mapping[str, str]) -> LocalNodeTransformer:
    return LocalNodeTransformer(
        env.get("NODE_NAME") or None, env.get("POD_IP") or None, config.host_network
    )


@TRANSFORMERS.register("io.l5d.k8s.localnode", LocalNodeConfig)
def make_localnode_transformer(config: LocalNodeConfig, ctx: PluginContext) -> LocalNodeTransformer:
    return from_env(config, ctx.env)
