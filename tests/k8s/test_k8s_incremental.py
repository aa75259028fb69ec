"""io.l5d.k8s endpoint changes cost O(changed endpoints) (issue 17), from the watch event to
the client's pools: the resolver against resolve(), the namer's deltas, the client's
endpoints and the balancer's nodes.  In memory, on a task.Clock, with a stub API."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

import l5d_twisted.k8s.resolver as resolver_module
from l5d_twisted.balancers.base import BalancerContext
from l5d_twisted.http.client import EndpointClient
from l5d_twisted.http.pool import PoolSettings
from l5d_twisted.k8s import objects
from l5d_twisted.k8s.api import WatchHandle
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.k8s.objects import (
    EndpointInfo,
    PortSpec,
    ServiceShard,
    Subset,
    resolve,
)
from l5d_twisted.k8s.resolver import ShardResolver
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.addr import AddrBound, AddrDelta, Address
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Var
from l5d_twisted.registry import BALANCERS
from l5d_twisted.router.client import BoundClient
from l5d_twisted.service import Service, Status
from l5d_twisted.telemetry.stats import NULL_STATS

SERVICE = "kubernetes.io/service-name"


# --- the resolver gives what resolve() gives, change after change ----------------------------


def random_shard(rng: random.Random, name: str) -> ServiceShard:
    subsets = []
    for _ in range(rng.randrange(0, 3)):
        ports = tuple(
            rng.choice([PortSpec("http", 8080), PortSpec("admin", 9990), PortSpec("", 7000)])
            for _ in range(rng.randrange(0, 3))
        )
        endpoints = tuple(
            EndpointInfo(f"10.0.0.{rng.randrange(12)}", rng.random() < 0.8)
            for _ in range(rng.randrange(0, 5))
        )
        subsets.append(Subset(ports, endpoints))
    return ServiceShard(name, "svc", (), tuple(subsets))


def random_slice(rng: random.Random, name: str) -> ServiceShard:
    """One subset and always the same ports, as EndpointSlices are (the copy-the-set path)."""
    endpoints = tuple(
        EndpointInfo(f"10.0.0.{rng.randrange(30)}", rng.random() < 0.8, rng.choice(["a", "b"]))
        for _ in range(rng.randrange(0, 12))
    )
    return ServiceShard(name, "svc", (), (Subset((PortSpec("http", 8080),), endpoints),))


@pytest.mark.parametrize("shape", [random_shard, random_slice])
@pytest.mark.parametrize("port", ["http", "admin", "8080", "7000", "1234", "nope"])
def test_the_resolver_follows_resolve_through_random_changes(port: str, shape: Any) -> None:
    rng = random.Random(port)
    resolver = ShardResolver(port)
    shards: dict[str, ServiceShard] = {}
    published: frozenset[Address] = frozenset()
    for _ in range(400):
        name = f"s{rng.randrange(4)}"
        if name in shards and rng.random() < 0.25:
            del shards[name]
        else:
            shards[name] = shape(rng, name)
        expected = resolve(shards.values(), port)
        change = resolver.update(list(shards.values()))
        assert change.exists == expected.exists
        assert change.addresses == expected.addresses
        if change.exists:
            assert change.added == change.addresses - published
            assert change.removed == published - change.addresses
        published = resolver.addresses if change.exists else frozenset()


@pytest.mark.parametrize("counted", [0, 64])
@pytest.mark.parametrize("port", ["http", "8080", "1234"])
def test_the_resolver_follows_resolve_through_small_edits(
    port: str, counted: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each version a few positions away from the last (a controller's edits), so the parts
    are made from their previous ones (counts and caches taken over); ``counted`` 0: every
    object keeps counts."""
    monkeypatch.setattr(objects, "COUNTED", counted)
    rng = random.Random(f"{port}{counted}")
    pool = [
        EndpointInfo(f"10.0.{i // 250}.{i % 250}", ready, node)
        for i in range(120)
        for ready in (True, False)
        for node in ("a", "b")
    ]
    ports = (PortSpec("http", 8080),)
    resolver = ShardResolver(port)
    lists: dict[str, list[EndpointInfo]] = {}
    for step in range(600):
        name = f"s{rng.randrange(3)}"
        if name not in lists or rng.random() < 0.02:
            lists[name] = [rng.choice(pool) for _ in range(rng.choice([0, 10, 80, 150]))]
        entries = lists[name]
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            op = rng.random()
            if op < 0.4 and entries:  # replaced in place
                entries[rng.randrange(len(entries))] = rng.choice(pool)
            elif op < 0.55 and entries:  # duplicated
                entries[rng.randrange(len(entries))] = rng.choice(entries)
            elif op < 0.7 and len(entries) > 1:  # moved
                entries.insert(rng.randrange(len(entries)), entries.pop())
            elif op < 0.85 and entries:
                entries.pop(rng.randrange(len(entries)))
            else:
                entries.insert(rng.randrange(len(entries) + 1), rng.choice(pool))
        shards = [ServiceShard(n, "svc", (), (Subset(ports, tuple(e)),)) for n, e in lists.items()]
        if rng.random() < 0.03:
            del lists[name]
            shards = [s for s in shards if s.name != name]
        change = resolver.update(shards)
        expected = resolve(shards, port)
        assert change.exists == expected.exists, step
        assert change.addresses == expected.addresses, step


def test_an_unchanged_object_is_not_looked_at_again(monkeypatch: pytest.MonkeyPatch) -> None:
    shard = ServiceShard("a", "svc", (), (Subset((PortSpec("http", 80),), ()),))
    resolver = ShardResolver("http")
    resolver.update([shard])
    calls: list[str] = []
    original = resolver_module.shard_part

    def spy(shard: ServiceShard, *args: Any) -> Any:
        calls.append(shard.name)
        return original(shard, *args)

    monkeypatch.setattr(resolver_module, "shard_part", spy)
    other = ServiceShard("b", "svc", (), (Subset((PortSpec("http", 80),), ()),))
    resolver.update([shard, other])
    assert calls == ["b"]


# --- from the watch event to the pools -------------------------------------------------------


def slice_obj(k: int, ips: list[str], rv: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"svc-{k}", "resourceVersion": str(rv), "labels": {SERVICE: "svc"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": True}, "nodeName": "n1"} for ip in ips
        ],
    }


class StubApi:
    """Lists once, then hands every watch line to the test."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.on_line: Any = None
        self.lists = 0

    async def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        self.lists += 1
        return {"metadata": {"resourceVersion": "1"}, "items": self.items}

    def watch(self, path: str, params: Any, on_line: Any, idle: float) -> WatchHandle:
        self.on_line = on_line
        return WatchHandle(Deferred())

    def send(self, kind: str, obj: dict[str, Any]) -> None:
        self.on_line(json.dumps({"type": kind, "object": obj}).encode())


class Endpoint(Service[Any, Any]):
    def __init__(self, address: Address) -> None:
        self.address = address
        self.closed = False
        self.calls: list[Deferred[Any]] = []

    def __call__(self, request: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append(d)
        return d

    @property
    def status(self) -> Status:
        return Status.CLOSED if self.closed else Status.OPEN

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class Mesh:
    """A namer, one name looked up, its client and its balancer."""

    def __init__(self, n: int, per_slice: int = 100, kind: str = "p2c") -> None:
        self.clock = Clock()
        self.slices = [
            [f"10.0.{i // 256}.{i % 256}" for i in range(k, min(k + per_slice, n))]
            for k in range(0, n, per_slice)
        ]
        self.api = StubApi([slice_obj(k, ips, 1) for k, ips in enumerate(self.slices)])
        self.namer = namer = K8sNamer(
            self.api,  # type: ignore[arg-type]
            Path.read("/io.l5d.k8s"),
            self.clock,
            settings=WatchSettings(resync_s=0),
        )
        states: list[Any] = []
        namer.lookup(Path.read("/ns/http/svc")).observe(states.append)
        self.bound = states[-1].value.value
        self.published: list[Any] = []
        self.bound.addr.observe(self.published.append)
        self.made: list[Endpoint] = []
        plugin = BALANCERS.get(kind)
        self.balancer = plugin.factory(plugin.config_type(), BalancerContext(self.clock))
        self.client = BoundClient(
            self.bound,
            make_endpoint=self.make,
            balancer=self.balancer,
            reactor=self.clock,
            binding_timeout_s=10,
        )
        self.rv = 1

    def make(self, address: Address) -> Endpoint:
        endpoint = Endpoint(address)
        self.made.append(endpoint)
        return endpoint

    def replace(self, k: int, j: int, ip: str) -> str:
        old = self.slices[k][j]
        self.slices[k][j] = ip
        self.rv += 1
        self.api.send("MODIFIED", slice_obj(k, self.slices[k], self.rv))
        return old


def test_one_endpoint_changing_among_1000_touches_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = Mesh(1000)
    assert len(mesh.made) == 1000 and len(mesh.balancer.nodes) == 1000
    endpoints = dict(mesh.client._endpoints)
    nodes = {n.address: n for n in mesh.balancer.nodes}
    made_addresses: list[str] = []
    original = objects.make_address

    def counted(host: str, port: int, *args: Any, **kw: Any) -> Address:
        made_addresses.append(host)
        return original(host, port, *args, **kw)

    monkeypatch.setattr(objects, "make_address", counted)
    full_updates: list[Any] = []
    monkeypatch.setattr(mesh.balancer, "update", full_updates.append)
    mesh.made.clear()

    old_ip = mesh.replace(3, 40, "10.9.9.9")

    assert made_addresses == ["10.9.9.9"], "the other 99 endpoints of the slice are reused"
    last = mesh.published[-1]
    assert isinstance(last, AddrBound) and last.delta is not None
    assert [a.host for a in last.delta.added] == ["10.9.9.9"]
    assert [a.host for a in last.delta.removed] == [old_ip]
    assert [e.address.host for e in mesh.made] == ["10.9.9.9"]
    assert not full_updates, "the balancer got the difference, not the whole set"
    gone = next(e for a, e in endpoints.items() if a.host == old_ip)
    assert gone.closed  # type: ignore[attr-defined]
    now = mesh.client._endpoints
    assert len(now) == 1000
    for address, endpoint in endpoints.items():
        if address.host != old_ip:
            assert now[address] is endpoint and not endpoint.closed  # type: ignore[attr-defined]
    assert all(n is nodes[n.address] for n in mesh.balancer.nodes if n.address.host != "10.9.9.9")


def test_a_removed_endpoint_closes_after_its_request_in_flight() -> None:
    mesh = Mesh(2, kind="roundRobin")
    first = mesh.client(_request())
    second = mesh.client(_request())
    busy = {e.address.host: e for e in mesh.made}
    assert all(len(e.calls) == 1 for e in busy.values())
    mesh.replace(0, 0, "10.7.7.7")  # 10.0.0.0 leaves with a request in flight
    leaving = busy["10.0.0.0"]
    assert not leaving.closed
    leaving.calls[0].callback("ok")
    assert leaving.closed and not busy["10.0.0.1"].closed
    assert first.called or second.called


def test_a_deleted_slice_removes_its_endpoints_and_a_new_one_adds() -> None:
    mesh = Mesh(300)
    mesh.api.send("DELETED", slice_obj(1, mesh.slices[1], 5))
    assert len(mesh.client._endpoints) == 200
    assert sum(e.closed for e in mesh.made) == 100
    mesh.api.send("ADDED", slice_obj(7, ["10.8.0.1", "10.8.0.2"], 6))
    assert len(mesh.client._endpoints) == 202 and len(mesh.balancer.nodes) == 202
    assert len(mesh.made) == 302


def test_after_a_relist_only_the_changed_object_is_resolved_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mesh = Mesh(500)
    published = len(mesh.published)
    mesh.namer._watchers["ns"]._resync()  # list again: the same five objects
    assert mesh.api.lists == 2
    assert len(mesh.published) == published, "nothing changed, nothing published"
    resolved: list[str] = []
    original = resolver_module.shard_part

    def spy(shard: ServiceShard, *args: Any) -> Any:
        resolved.append(shard.name)
        return original(shard, *args)

    monkeypatch.setattr(resolver_module, "shard_part", spy)
    mesh.replace(2, 0, "10.6.6.6")
    assert resolved == ["svc-2"]


def test_endpoint_clients_of_unchanged_endpoints_keep_their_pools() -> None:
    """With the real EndpointClient: only the removed endpoint's pool closes."""
    clock = Clock()
    api = StubApi([slice_obj(0, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], 1)])
    namer = K8sNamer(
        api,  # type: ignore[arg-type]
        Path.read("/io.l5d.k8s"),
        clock,
        settings=WatchSettings(resync_s=0),
    )
    states: list[Any] = []
    namer.lookup(Path.read("/ns/http/svc")).observe(states.append)
    clients: dict[str, EndpointClient] = {}

    def make(address: Address) -> EndpointClient:
        clients[address.host] = EndpointClient(clock, address, PoolSettings(), NULL_STATS)
        return clients[address.host]

    plugin = BALANCERS.get("p2c")
    BoundClient(
        states[-1].value.value,
        make_endpoint=make,
        balancer=plugin.factory(plugin.config_type(), BalancerContext(clock)),
        reactor=clock,
        binding_timeout_s=10,
    )
    api.send("MODIFIED", slice_obj(0, ["10.0.0.1", "10.0.0.3", "10.0.0.4"], 2))
    assert sorted(clients) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert clients["10.0.0.2"].status is Status.CLOSED
    assert all(clients[h].status is Status.OPEN for h in ("10.0.0.1", "10.0.0.3", "10.0.0.4"))


def _request() -> Any:
    from l5d_twisted.http.message import Request

    return Request(b"GET", b"/")


# --- the fast reading of a slice's entries agrees with the careful one ------------------------


def random_entry(rng: random.Random) -> Any:
    """A slice entry, usually well formed, sometimes with a field of the wrong type."""

    def maybe(good: Any, *bad: Any) -> Any:
        return rng.choice(bad) if bad and rng.random() < 0.1 else good

    entry: dict[str, Any] = {}
    if rng.random() < 0.95:
        entry["addresses"] = maybe([f"10.1.0.{rng.randrange(9)}"], "10.1.0.1", [5], [""], None)
    if rng.random() < 0.8:
        entry["conditions"] = maybe({"ready": rng.choice([True, False, None])}, "yes", [1])
    if rng.random() < 0.7:
        entry["nodeName"] = maybe(rng.choice(["n1", "n2"]), 3, ["n"])
    if rng.random() < 0.6:
        entry["targetRef"] = maybe(
            {"kind": rng.choice(["Pod", "Node"]), "name": maybe("p1", 7)}, "p1", [1]
        )
    if rng.random() < 0.3:
        entry["zone"] = maybe("z1", 2.5)
    return maybe(entry, "entry", 42, None)


def test_the_fast_entry_reader_agrees_with_the_careful_one() -> None:
    rng = random.Random(17)
    for _ in range(3000):
        raw = random_entry(rng)
        fast: list[EndpointInfo] = []
        careful: list[EndpointInfo] = []
        careful_error = None
        try:
            objects._slice_endpoint(raw, careful)
        except objects.MalformedObject as e:
            careful_error = str(e)
        if objects._well_formed_endpoint(raw, fast):
            assert careful_error is None and fast == careful, raw
            assert all(type(e) is EndpointInfo for e in fast)
        else:
            assert fast == [], "nothing added when it hands over to the careful reader"


def test_the_positional_difference_of_endpoint_lists_is_the_set_difference() -> None:
    rng = random.Random(5)
    pool = [EndpointInfo(f"10.2.0.{i}", rng.random() < 0.8) for i in range(12)]
    for _ in range(3000):
        old = tuple(rng.choice(pool) for _ in range(rng.randrange(0, 10)))
        new = list(old)
        for _ in range(rng.randrange(0, 4)):  # replace, duplicate, move, drop, add
            op = rng.randrange(5)
            if op == 0 and new:
                new[rng.randrange(len(new))] = rng.choice(pool)
            elif op == 1 and new:
                new[rng.randrange(len(new))] = rng.choice(new)
            elif op == 2 and len(new) > 1:
                new.insert(rng.randrange(len(new)), new.pop())
            elif op == 3 and new:
                new.pop(rng.randrange(len(new)))
            else:
                new.append(rng.choice(pool))
        went, came, _ = objects._endpoint_difference(old, tuple(new))
        assert went == set(old) - set(new) and came == set(new) - set(old), (old, new)
        # with the old list's counts (kept for large objects): the same, and the new counts
        went, came, counts = objects._endpoint_difference(old, tuple(new), dict(Counter(old)))
        assert went == set(old) - set(new) and came == set(new) - set(old), (old, new)
        assert counts is None or counts == Counter(new)


# --- a filtering transformer passes the difference on ------------------------------------------


def test_localnode_filters_the_difference_and_the_client_applies_it() -> None:
    from l5d_twisted.k8s.localnode import LocalNodeTransformer

    mesh = Mesh(1000)  # every endpoint on node n1
    local = LocalNodeTransformer("n1", None)
    kept: list[Address] = []
    keep = local.keep

    def counted(address: Address) -> bool:
        kept.append(address)
        return keep(address)

    local.keep = counted  # type: ignore[method-assign]
    mapped = local.map_leaf(mesh.bound)
    seen: list[Any] = []
    mapped.addr.observe(seen.append)
    assert len(seen[-1].addresses) == 1000 and len(kept) == 1000
    made: list[Address] = []
    plugin = BALANCERS.get("p2c")
    balancer = plugin.factory(plugin.config_type(), BalancerContext(mesh.clock))
    full: list[Any] = []
    client = BoundClient(
        mapped,
        make_endpoint=lambda a: made.append(a) or Endpoint(a),  # type: ignore[func-returns-value]
        balancer=balancer,
        reactor=mesh.clock,
        binding_timeout_s=10,
    )
    balancer.update = full.append  # type: ignore[method-assign]
    kept.clear()
    made.clear()

    mesh.replace(4, 7, "10.5.5.5")

    assert len(kept) == 1, "only the new endpoint is tested"
    last = seen[-1]
    assert last.delta is not None and [a.host for a in last.delta.added] == ["10.5.5.5"]
    assert [a.host for a in made] == ["10.5.5.5"] and not full
    assert len(client._endpoints) == 1000


def test_a_filtered_difference_always_equals_filtering_the_whole_set() -> None:
    from l5d_twisted.k8s.localnode import LocalNodeTransformer

    rng = random.Random(23)
    local = LocalNodeTransformer("n1", None)
    source: Any = Var(AddrBound(frozenset()))
    mapped = local.map_addr(source)
    seen: list[Any] = []
    mapped.observe(seen.append)
    current: frozenset[Address] = frozenset()
    pool = [
        Address(f"10.3.0.{i}", 80, meta=(("node_name", rng.choice(["n1", "n2"])),))
        for i in range(30)
    ]
    for step in range(500):
        if step % 50 == 49:  # now and then a set without a difference
            current = frozenset(rng.sample(pool, rng.randrange(0, 30)))
            source.update(AddrBound(current))
        else:
            gone = frozenset(
                rng.sample(sorted(current, key=lambda a: a.host), min(2, len(current)))
            )
            came = frozenset(a for a in rng.sample(pool, 2) if a not in current)
            before = source.sample()
            current = (current - gone) | came
            source.update(AddrBound(current, delta=AddrDelta(before.token, came, gone)))
        expected = frozenset(a for a in current if a.node_name == "n1")
        assert seen[-1].addresses == expected
