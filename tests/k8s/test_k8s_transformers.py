"""The DaemonSet and localnode transformers on in-memory address vars."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.daemonset import DaemonSetTransformer, make_daemonset_transformer
from l5d_twisted.k8s.localnode import LocalNodeConfig, LocalNodeTransformer, from_env
from l5d_twisted.naming.addr import ADDR_NEG, ADDR_PENDING, AddrBound, BoundName, make_address
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Ok, Var
from l5d_twisted.registry import TRANSFORMERS


def addr(ip, port, node=None):
    return make_address(ip, port, meta={"node_name": node} if node else {})


def bound(*addresses):
    return AddrBound(frozenset(addresses))


def shows(a):
    assert isinstance(a, AddrBound), a
    return sorted(x.show() for x in a.addresses)


class MemoryNamer:
    """A namer whose names are memory vars the test updates."""

    def __init__(self):
        self.trees: dict[Path, Var] = {}
        self.addrs: dict[Path, Var] = {}

    def set(self, path_text, *addresses, state=None):
        path = Path.read(path_text)
        a = self.addrs.setdefault(path, Var(ADDR_PENDING))
        a.update(bound(*addresses))
        tree = self.trees.setdefault(path, Var(PENDING))
        tree.update(
            state
            if state is not None
            else Ok(Leaf(BoundName(Path.read("/#/io.l5d.k8s") + path, a)))
        )

    def lookup(self, path):
        return self.trees.setdefault(path, Var(PENDING))

    def state(self):
        return {}


def world_leaf(source):
    return Leaf(BoundName(Path.read("/#/io.l5d.k8s/default/http/world-v1"), source))


def transformed(t, source):
    state = t.transform(world_leaf(source)).sample()
    assert isinstance(state, Ok)
    return state.value.value


def test_daemonset_maps_each_endpoint_to_the_pod_on_its_node_live():
    namer = MemoryNamer()
    t = DaemonSetTransformer(namer, "default", "incoming", "l5d", host_network=False)
    world = Var(bound(addr("10.244.2.7", 7778, "node2")))
    out = transformed(t, world)
    assert out.id == Path.read(
        "/%/io.l5d.k8s.daemonset/default/incoming/l5d/#/io.l5d.k8s/default/http/world-v1"
    )
    seen = []
    out.addr.observe(seen.append)
    assert seen[-1] == ADDR_PENDING  # the DaemonSet's pods are not known yet
    namer.set(
        "/default/incoming/l5d",
        addr("10.244.1.2", 4141, "node1"),
        addr("10.244.2.2", 4141, "node2"),
    )
    assert shows(seen[-1]) == ["10.244.2.2:4141"]
    # the endpoint moves to node1: so does the target
    world.update(bound(addr("10.244.1.9", 7778, "node1")))
    assert shows(seen[-1]) == ["10.244.1.2:4141"]
    # two endpoints on two nodes: two mesh pods
    world.update(
        bound(
            addr("10.244.1.9", 7778, "node1"),
            addr("10.244.2.7", 7778, "node2"),
            addr("10.244.2.8", 7778, "node2"),
        )
    )
    assert shows(seen[-1]) == ["10.244.1.2:4141", "10.244.2.2:4141"]
    # the DaemonSet pod of node2 goes away: only node1 remains
    namer.set("/default/incoming/l5d", addr("10.244.1.2", 4141, "node1"))
    assert shows(seen[-1]) == ["10.244.1.2:4141"]
    # no mesh pod on any endpoint's node: negative
    namer.set("/default/incoming/l5d", addr("10.244.3.2", 4141, "node3"))
    assert seen[-1] == ADDR_NEG


def test_daemonset_node_names_beat_subnets_and_subnet_is_the_fallback():
    namer = MemoryNamer()
    # the CNI gives node2's pod an IP in node1's /24: node names must win
    namer.set(
        "/default/incoming/l5d", addr("10.0.1.2", 4141, "node1"), addr("10.0.9.9", 4141, "node2")
    )
    t = DaemonSetTransformer(namer, "default", "incoming", "l5d", host_network=False)
    assert shows(transformed(t, Var(bound(addr("10.0.1.50", 80, "node2")))).addr.sample()) == [
        "10.0.9.9:4141"
    ]
    # without a node name: same /24
    assert shows(transformed(t, Var(bound(addr("10.0.1.60", 80)))).addr.sample()) == [
        "10.0.1.2:4141"
    ]
    # hostNetwork: node names only
    host_net = DaemonSetTransformer(namer, "default", "incoming", "l5d", host_network=True)
    assert transformed(host_net, Var(bound(addr("10.0.1.60", 80)))).addr.sample() == ADDR_NEG


def test_daemonset_service_missing_is_negative_and_neg_trees_pass():
    namer = MemoryNamer()
    namer.set("/default/incoming/l5d", state=Ok(NEG))
    t = DaemonSetTransformer(namer, "default", "incoming", "l5d", host_network=False)
    assert transformed(t, Var(bound(addr("10.0.0.1", 80, "n")))).addr.sample() == ADDR_NEG
    assert t.transform(NEG).sample() == Ok(NEG)


def test_daemonset_factory_shares_the_configured_k8s_namer():
    from l5d_twisted.k8s.access import ApiAccess
    from l5d_twisted.k8s.api import KubernetesApi
    from l5d_twisted.k8s.namer import K8sNamer

    clock = MemoryReactorClock()
    ctx = PluginContext(clock)
    namer = K8sNamer(
        KubernetesApi(clock, ApiAccess("http://127.0.0.1:1")), Path.read("/io.l5d.k8s"), clock, ctx
    )
    ctx.namers["/io.l5d.k8s"] = namer
    config = TRANSFORMERS.get("io.l5d.k8s.daemonset").config_type(
        namespace="default", service="l5d", port="incoming"
    )
    t = make_daemonset_transformer(config, ctx)
    assert set(namer._watchers) == {"default"}  # its pods are watched through the namer
    assert t.prefix == Path.read("/io.l5d.k8s.daemonset/default/incoming/l5d")
    namer.close()


def test_daemonset_with_its_own_api_stops_its_watches_on_close():
    from l5d_twisted.k8s.access import ApiAccess
    from l5d_twisted.k8s.api import KubernetesApi
    from l5d_twisted.k8s.namer import K8sNamer

    clock = MemoryReactorClock()
    ctx = PluginContext(clock)
    shared = K8sNamer(
        KubernetesApi(clock, ApiAccess("http://127.0.0.1:1")), Path.read("/io.l5d.k8s"), clock, ctx
    )
    ctx.namers["/io.l5d.k8s"] = shared
    config_type = TRANSFORMERS.get("io.l5d.k8s.daemonset").config_type
    own = make_daemonset_transformer(
        config_type(
            namespace="default", service="l5d", port="incoming", k8s_host="127.0.0.1", k8s_port=1
        ),
        ctx,
    )
    sharing = make_daemonset_transformer(
        config_type(namespace="default", service="l5d", port="incoming"), ctx
    )
    watchers = list(own._namer._watchers.values())
    assert [w.connection for w in watchers] == ["listing"]
    own.close()
    sharing.close()  # the configured namer is not the transformer's to stop
    assert [w.connection for w in watchers] == ["stopped"]
    assert [w.connection for w in shared._watchers.values()] == ["listing"]
    shared.close()


def test_localnode_by_node_name_with_subnet_fallback():
    t = from_env(LocalNodeConfig(), {"NODE_NAME": "node1", "POD_IP": "10.0.1.5"})
    source = Var(
        bound(
            addr("10.0.1.7", 80, "node1"),
            addr("10.0.1.8", 80, "node2"),
            addr("10.0.1.9", 80),
            addr("10.0.2.9", 80),
        )
    )
    state = t.transform(world_leaf(source)).sample()
    out = state.value.value
    assert out.id == Path.read("/%/io.l5d.k8s.localnode/node1/#/io.l5d.k8s/default/http/world-v1")
    assert shows(out.addr.sample()) == ["10.0.1.7:80", "10.0.1.9:80"]
    host_net = LocalNodeTransformer("node1", None, host_network=True)
    assert shows(host_net.transform(world_leaf(source)).sample().value.value.addr.sample()) == [
        "10.0.1.7:80"
    ]
    by_ip = from_env(LocalNodeConfig(), {"POD_IP": "10.0.2.1"})
    assert by_ip.prefix == Path.read("/io.l5d.k8s.localnode/10.0.2.1")
    assert shows(by_ip.transform(world_leaf(source)).sample().value.value.addr.sample()) == [
        "10.0.2.9:80"
    ]


def test_localnode_without_env_is_a_clear_error():
    with pytest.raises(ValueError, match="NODE_NAME or POD_IP"):
        from_env(LocalNodeConfig(), {})
    with pytest.raises(ValueError, match="hostNetwork"):
        from_env(LocalNodeConfig(host_network=True), {"POD_IP": "10.0.0.1"})
