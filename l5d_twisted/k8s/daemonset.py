"""``io.l5d.k8s.daemonset``: send each request to the mesh pod on the destination's node.

Every endpoint address of a bound name is replaced by the address of the pod of the given
DaemonSet service (``namespace``/``service``/``port``) that runs on the same node.  The
node is matched by the node names the API reports for both pods; linkerd 1 compared /24
subnets, which many CNIs break, so that is only the fallback when a node name is missing
(and never with ``hostNetwork``, where pod IPs are node IPs and only node names count).

An endpoint with no DaemonSet pod on its node is dropped; a name left with none becomes
negative (``AddrNeg``).  Both the endpoints and the DaemonSet's pods are live: the result
changes as either does.  Bound ids read
``/%/io.l5d.k8s.daemonset/<namespace>/<port>/<service>/<original id>``.

The DaemonSet's pods are watched through the configured ``io.l5d.k8s`` namer (one watch
per namespace for both), or through a namer of its own when none is configured or
``k8sHost``/``k8sPort`` are given; ``close()`` stops that one's watches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.namer import K8sNamer, make_api
from l5d_twisted.naming.addr import (
    ADDR_NEG,
    ADDR_PENDING,
    Addr,
    AddrBound,
    Address,
    AddrFailed,
    AddrPending,
)
from l5d_twisted.naming.nametree import Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, State, Var
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._base import LeafAddrTransformer, same_subnet_24


@dataclass(frozen=True)
class DaemonSetConfig:
    namespace: str = knob(doc="namespace of the DaemonSet's service")
    service: str = knob(doc="the DaemonSet's service (e.g. l5d)")
    port: str = knob(doc="port name or number of the DaemonSet's service (e.g. incoming)")
    host_network: bool = knob(
        False, doc="the DaemonSet runs with hostNetwork: match nodes by node name only"
    )
    k8s_host: str | None = knob(None, doc="API host, when not using the io.l5d.k8s namer's")
    k8s_port: int | None = knob(
        None, doc="API port, when not using the io.l5d.k8s namer's", minimum=1, maximum=65535
    )


def tree_addr(state: State) -> Var[Addr]:
    """The address var of a namer lookup that should be a single leaf."""
    if isinstance(state, Ok):
        if isinstance(state.value, Leaf):
            addr: Var[Addr] = state.value.value.addr
            return addr
        return Var(ADDR_NEG)
    if isinstance(state, Failed):
        return Var(AddrFailed(str(state.error)))
    return Var(ADDR_PENDING)


def same_node(endpoint: Address, pod: Address, host_network: bool) -> bool:
    if endpoint.node_name and pod.node_name:
        return endpoint.node_name == pod.node_name
    if host_network:
        return False  # pod IPs are node IPs: subnets say nothing
    return same_subnet_24(endpoint.host, pod.host)


def map_to_daemonset(endpoints: Addr, pods: Addr, host_network: bool) -> Addr:
    if not isinstance(endpoints, AddrBound):
        return endpoints
    if isinstance(pods, AddrPending | AddrFailed):
        return pods  # not known yet, or broken: say so rather than negative
    if not isinstance(pods, AddrBound):
        return ADDR_NEG
    mapped = set()
    ordered_pods = sorted(pods.addresses, key=lambda a: (a.host, a.port))  # a stable choice
    for endpoint in endpoints.addresses:
        for pod in ordered_pods:
            if same_node(endpoint, pod, host_network):
                mapped.add(pod)
                break
    if not mapped:
        return ADDR_NEG
    return AddrBound(frozenset(mapped), endpoints.meta)


class DaemonSetTransformer(LeafAddrTransformer):
    def __init__(
        self,
        namer: Any,
        namespace: str,
        port: str,
        service: str,
        host_network: bool,
        owns_namer: bool = False,
    ) -> None:
        super().__init__(Path.of("io.l5d.k8s.daemonset", namespace, port, service))
        self.host_network = host_network
        self._namer = namer if owns_namer else None
        # The DaemonSet's pods: a live address var through the namer's shared watch.
        self.pods: Var[Addr] = namer.lookup(Path.of(namespace, port, service)).flat_map(tree_addr)

    def map_addr(self, addr: Var[Addr]) -> Var[Addr]:
        return Var.collect([addr, self.pods]).map(
            lambda pair: map_to_daemonset(pair[0], pair[1], self.host_network)
        )

    def map_bound(self, bound: AddrBound) -> Addr:
        return map_to_daemonset(bound, self.pods.sample(), self.host_network)

    def close(self) -> None:
        """Stop the watches of a namer of its own (the configured namer closes itself)."""
        if self._namer is not None:
            self._namer.close()


def shared_namer(
    ctx: PluginContext, k8s_host: str | None, k8s_port: int | None
) -> tuple[Any, bool]:
    """The configured io.l5d.k8s namer (sharing its watches), or a private one; and
    whether it is private (then the transformer closes it)."""
    if k8s_host is None and k8s_port is None:
        for namer in ctx.namers.values():
            if isinstance(namer, K8sNamer):
                return namer, False
    api = make_api(ctx.reactor, k8s_host, k8s_port, ctx.env, 10000)
    return K8sNamer(api, Path.of("io.l5d.k8s"), ctx.reactor, ctx), True


@TRANSFORMERS.register("io.l5d.k8s.daemonset", DaemonSetConfig)
def make_daemonset_transformer(config: DaemonSetConfig, ctx: PluginContext) -> DaemonSetTransformer:
    namer, private = shared_namer(ctx, config.k8s_host, config.k8s_port)
    return DaemonSetTransformer(
        namer,
        config.namespace,
        config.port,
        config.service,
        config.host_network,
        owns_namer=private,
    )
