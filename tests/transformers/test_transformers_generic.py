"""Generic transformers on in-memory bound trees: ids, live address rewriting, dedupe."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from l5d_twisted.context import PluginContext
from l5d_twisted.naming.addr import ADDR_NEG, ADDR_PENDING, AddrBound, BoundName, make_address
from l5d_twisted.naming.nametree import EMPTY, NEG, Alt, Leaf, Union, Weighted
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, Var
from l5d_twisted.registry import TRANSFORMERS
from l5d_twisted.transformers._bind import PathBinder
from l5d_twisted.transformers.const import ConstTransformer
from l5d_twisted.transformers.localhost import LocalhostTransformer, is_local_ip
from l5d_twisted.transformers.port import PortTransformer
from l5d_twisted.transformers.replace import ReplaceTransformer
from l5d_twisted.transformers.specific_host import SpecificHostTransformer


def bound(*hostports):
    return AddrBound(frozenset(make_address(h, p) for h, p in hostports))


def shows(addr):
    assert isinstance(addr, AddrBound), addr
    return sorted(a.show() for a in addr.addresses)


def leaf(id_text, addr_var):
    return Leaf(BoundName(Path.read(id_text), addr_var))


def only_leaf(transformer, tree):
    state = transformer.transform(tree).sample()
    assert isinstance(state, Ok)
    return state.value


def test_port_rewrites_ids_and_addresses_live_and_dedupes():
    source = Var(bound(("10.0.0.1", 8080), ("10.0.0.1", 9090), ("10.0.0.2", 8080)))
    t = PortTransformer(4141)
    out = only_leaf(t, leaf("/#/io.l5d.fs/world", source))
    assert out.value.id == Path.read("/%/io.l5d.port/4141/#/io.l5d.fs/world")
    seen = []
    out.value.addr.observe(seen.append)
    assert shows(seen[-1]) == ["10.0.0.1:4141", "10.0.0.2:4141"]
    source.update(bound(("10.0.0.3", 1)))
    assert shows(seen[-1]) == ["10.0.0.3:4141"]
    source.update(ADDR_NEG)
    assert seen[-1] == ADDR_NEG


def test_transform_reuses_bound_names_and_maps_whole_trees():
    a, b = Var(bound(("10.0.0.1", 1))), Var(bound(("10.0.0.2", 2)))
    t = PortTransformer(80)
    tree = Alt((NEG, Union((Weighted(0.9, leaf("/#/x/a", a)), Weighted(0.1, leaf("/#/x/b", b))))))
    first = only_leaf(t, tree)
    second = only_leaf(t, tree)
    assert first.trees[0] is NEG
    assert first.trees[1].branches[0].tree.value.addr is second.trees[1].branches[0].tree.value.addr
    assert shows(first.trees[1].branches[1].tree.value.addr.sample()) == ["10.0.0.2:80"]
    assert only_leaf(t, EMPTY) is EMPTY


def test_localhost_keeps_local_ips_only():
    t = LocalhostTransformer(is_local=lambda ip: ip in ("127.0.0.1", "192.168.5.5"))
    source = Var(bound(("127.0.0.1", 1), ("192.168.5.5", 2), ("10.9.9.9", 3)))
    out = only_leaf(t, leaf("/#/io.l5d.fs/a", source))
    assert out.value.id == Path.read("/%/io.l5d.localhost/#/io.l5d.fs/a")
    assert shows(out.value.addr.sample()) == ["127.0.0.1:1", "192.168.5.5:2"]


def test_is_local_ip_uses_the_kernel():
    assert is_local_ip("127.0.0.1") and is_local_ip("127.3.4.5")
    assert not is_local_ip("192.0.2.77")  # TEST-NET-1: never a local address here
    assert not is_local_ip("not-an-ip")


def test_specific_host_filters_and_learns_resolved_ips():
    from twisted.internet.defer import Deferred

    pending: Deferred[list[str]] = Deferred()
    t = SpecificHostTransformer("node-a.example", resolve=lambda host, port: pending)
    source = Var(bound(("10.0.0.1", 1), ("10.0.0.2", 2)))
    out = only_leaf(t, leaf("/#/k/a", source))
    assert out.value.id == Path.read("/%/io.l5d.specificHost/node-a.example/#/k/a")
    seen = []
    out.value.addr.observe(seen.append)
    assert shows(seen[-1]) == []
    pending.callback(["10.0.0.2"])
    assert shows(seen[-1]) == ["10.0.0.2:2"]
    ip_only = SpecificHostTransformer("10.0.0.1")
    assert shows(only_leaf(ip_only, leaf("/#/k/a", source)).value.addr.sample()) == ["10.0.0.1:1"]


class _FakeNamer:
    def __init__(self):
        self.looked_up = []

    def lookup(self, path):
        self.looked_up.append(path)
        return Var(
            Ok(Leaf(BoundName(Path.read("/#/io.l5d.fs") + path, Var(bound(("10.1.1.1", 7))))))
        )

    def state(self):
        return {}


def ctx_with_fs():
    ctx = PluginContext(Clock())
    ctx.namers["/io.l5d.fs"] = _FakeNamer()
    return ctx


def test_replace_keeps_negative_and_replaces_bound_names():
    ctx = ctx_with_fs()
    t = ReplaceTransformer(PathBinder(Path.read("/#/io.l5d.fs/other"), ctx))
    assert only_leaf(t, NEG) is NEG
    out = only_leaf(t, Alt((NEG, leaf("/#/x/a", Var(bound(("10.0.0.1", 1)))))))
    assert out.value.id == Path.read("/#/io.l5d.fs/other")
    assert shows(out.value.addr.sample()) == ["10.1.1.1:7"]
    assert ctx.namers["/io.l5d.fs"].looked_up == [Path.read("/other")]


def test_const_ignores_the_tree_even_negative():
    t = ConstTransformer(PathBinder(Path.read("/$/inet/127.0.0.1/4141"), PluginContext(Clock())))
    out = only_leaf(t, NEG)
    assert out.value.id == Path.read("/$/inet/127.0.0.1/4141")
    assert shows(out.value.addr.sample()) == ["127.0.0.1:4141"]


@pytest.mark.parametrize("path", ["/#/io.l5d.nope/x", "/svc/hello", "/$/inet/host/notaport"])
def test_unbindable_paths_are_config_errors(path):
    with pytest.raises(ValueError, match="port|bind"):
        PathBinder(Path.read(path), ctx_with_fs())


def test_registered_kinds_build_from_config_dataclasses():
    ctx = ctx_with_fs()
    for kind, config in [
        ("io.l5d.port", TRANSFORMERS.get("io.l5d.port").config_type(port=4141)),
        ("io.l5d.localhost", TRANSFORMERS.get("io.l5d.localhost").config_type()),
        (
            "io.l5d.specificHost",
            TRANSFORMERS.get("io.l5d.specificHost").config_type(host="127.0.0.1"),
        ),
        (
            "io.l5d.replace",
            TRANSFORMERS.get("io.l5d.replace").config_type(path=Path.read("/#/io.l5d.fs/a")),
        ),
        (
            "io.l5d.const",
            TRANSFORMERS.get("io.l5d.const").config_type(path=Path.read("/#/io.l5d.fs/a")),
        ),
    ]:
        transformer = TRANSFORMERS.get(kind).factory(config, ctx)
        assert isinstance(transformer.transform(leaf("/#/x/y", Var(ADDR_PENDING))).sample(), Ok)
