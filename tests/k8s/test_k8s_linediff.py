"""A large object's watch line is read by difference from its previous line (issue 17,
``k8s/linediff.py``): what it reads must be what ``json.loads`` and the parsers read, line
after line, whatever changed; and every change must reach the name's address set.
In memory, with a stub API and a task.Clock."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from l5d_twisted.k8s.api import WatchHandle
from l5d_twisted.k8s.linediff import ENDPOINTS_LINES, SLICE_LINES, LineDiff
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.k8s.objects import (
    MalformedObject,
    ServiceShard,
    parse_endpoint_slice,
    parse_endpoints,
    resolve,
)
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.addr import AddrBound
from l5d_twisted.naming.path import Path

SERVICE = "kubernetes.io/service-name"
FORMATS: list[dict[str, Any]] = [
    {"separators": (",", ":")},  # the API server's (Go) compact JSON
    {},  # Python's default (kmock): ", " and ": "
    {"indent": 1},  # newlines inside would split a watch line; here only whitespace
]


def slice_obj(name: str, entries: list[dict[str, Any]], rv: int = 1, port: int = 8080) -> Any:
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": name, "resourceVersion": str(rv), "labels": {SERVICE: "svc"}},
        "addressType": "IPv4",
        "endpoints": entries,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def slice_entry(ip: str, ready: bool = True, node: str = "n1") -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {"ready": ready},
        "nodeName": node,
        "targetRef": {"kind": "Pod", "name": "pod-" + ip.replace(".", "-")},
    }


def endpoints_obj(name: str, subsets: list[dict[str, Any]], rv: int = 1) -> Any:
    return {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"name": name, "resourceVersion": str(rv)},
        "subsets": subsets,
    }


def address(ip: str) -> dict[str, Any]:
    return {"ip": ip, "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "p-" + ip}}


def line(kind: str, obj: Any, fmt: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"type": kind, "object": obj}, **(fmt or {})).encode()


def ips(n: int, block: int = 0) -> list[str]:
    return [f"10.{block}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def parsed(parse: Any, obj: Any) -> ServiceShard | str:
    try:
        return parse(obj)
    except MalformedObject:
        return "malformed"


# --- what it reads is what json.loads reads -------------------------------------------------


def _mutate(rng: random.Random, entries: list[Any], make: Any) -> list[Any]:
    entries = list(entries)
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3, 12])):
        op = rng.random()
        if op < 0.3 and entries:  # replaced in place (the EndpointSlice controller)
            entries[rng.randrange(len(entries))] = make(rng)
        elif op < 0.5:  # inserted (v1 Endpoints: sorted by IP)
            entries.insert(rng.randrange(len(entries) + 1), make(rng))
        elif op < 0.65 and entries:
            del entries[rng.randrange(len(entries))]
        elif op < 0.7 and entries:  # an entry twice
            entries.insert(rng.randrange(len(entries) + 1), copy.deepcopy(rng.choice(entries)))
        elif op < 0.75 and entries:  # many at once (scaled down)
            at = rng.randrange(len(entries))
            del entries[at : at + rng.randrange(1, 40)]
        elif op < 0.78:
            rng.shuffle(entries)
        elif op < 0.85 and entries:  # readiness flips, in place
            i = rng.randrange(len(entries))
            entry = copy.deepcopy(entries[i])
            if "conditions" in entry:
                entry["conditions"]["ready"] = not entry["conditions"]["ready"]
            else:
                entry["nodeName"] = "moved"
            entries[i] = entry
        elif op < 0.87 and entries:  # malformed
            entries[rng.randrange(len(entries))] = {"addresses": "x", "ip": 7}
    return entries


def _random_slice_entry(rng: random.Random) -> dict[str, Any]:
    entry = slice_entry(f"10.{rng.randrange(4)}.{rng.randrange(250)}.1", rng.random() < 0.9)
    if rng.random() < 0.05:
        entry["addresses"].append("10.99.0.1")
    if rng.random() < 0.05:
        del entry["conditions"]
    return entry


def _random_address(rng: random.Random) -> dict[str, Any]:
    return address(f"10.{rng.randrange(4)}.{rng.randrange(250)}.1")


@pytest.mark.parametrize("fmt", FORMATS, ids=["compact", "spaced", "indented"])
@pytest.mark.parametrize("kind", ["slices", "endpoints"])
@pytest.mark.parametrize("seed", range(3))
def test_it_reads_what_json_loads_reads_through_random_changes(
    kind: str, fmt: dict[str, Any], seed: int
) -> None:
    rng = random.Random(seed)
    diff = LineDiff(SLICE_LINES if kind == "slices" else ENDPOINTS_LINES, min_bytes=0)
    parse = parse_endpoint_slice if kind == "slices" else parse_endpoints
    objects: dict[str, Any] = {}
    fast = 0
    for _ in range(250):
        name = f"o{rng.randrange(3)}"
        n = rng.choice([0, 3, 40, 300])
        if name not in objects or rng.random() < 0.02:
            if kind == "slices":
                objects[name] = slice_obj(name, [_random_slice_entry(rng) for _ in range(n)])
            else:
                objects[name] = endpoints_obj(
                    name,
                    [
                        {
                            "addresses": [_random_address(rng) for _ in range(n)],
                            "notReadyAddresses": [_random_address(rng) for _ in range(n // 10)],
                            "ports": [{"name": "http", "port": 8080}],
                        }
                    ],
                )
        obj = objects[name]
        obj["metadata"]["resourceVersion"] = str(rng.randrange(10 ** rng.randrange(1, 9)))
        if rng.random() < 0.05:  # a key "endpoints" in an annotation; brackets in strings
            obj["metadata"]["annotations"] = {"endpoints": '["a"]', "x": "],[{" * rng.randrange(3)}
        if kind == "slices":
            obj["endpoints"] = _mutate(rng, obj["endpoints"], _random_slice_entry)
            if rng.random() < 0.03:
                obj["ports"] = [{"name": "http", "port": rng.randrange(1, 90)}]
            if rng.random() < 0.03:  # the same object, its keys in another order
                objects[name] = obj = dict(reversed(list(obj.items())))
        else:
            for subset in obj["subsets"]:
                subset["addresses"] = _mutate(rng, subset["addresses"], _random_address)
                subset["notReadyAddresses"] = _mutate(
                    rng, subset.get("notReadyAddresses", []), _random_address
                )
            if rng.random() < 0.05:
                obj["subsets"].append({"addresses": [_random_address(rng) for _ in range(20)]})
            if rng.random() < 0.05 and len(obj["subsets"]) > 1:
                obj["subsets"].pop(0)
        event = rng.choice(["ADDED", "MODIFIED", "MODIFIED", "DELETED"])
        raw = line(event, obj, fmt)
        if rng.random() < 0.01:
            raw = raw[:-2]  # cut short
        if rng.random() < 0.02:
            raw = raw.replace(b"10.", "\u00e9".encode(), 1)  # not ASCII
        try:
            want = json.loads(raw)
        except ValueError:
            want = None
        got = diff.decode(raw)
        if got is None:
            # only what json.loads refuses, or objects the parser refuses, are left to it
            assert want is None or parsed(parse, want["object"]) == "malformed"
            continue
        assert want is not None
        fast += 1
        assert got["type"] == want["type"]
        assert got["object"]["metadata"] == want["object"]["metadata"]
        assert parsed(parse, got["object"]) == parsed(parse, want["object"])
        if event == "DELETED":
            diff.forget(name)
    assert fast > 100
    assert diff.reused > 0 and diff.decoded > 0  # (deletions and shuffles: many decoded)


def test_of_1000_entries_only_the_changed_one_is_decoded() -> None:
    diff = LineDiff(SLICE_LINES)
    addresses = ips(1000)
    entries = [slice_entry(ip) for ip in addresses]
    first = diff.decode(line("ADDED", slice_obj("s", entries)))
    assert (diff.decoded, diff.reused) == (1000, 0)
    assert len(parse_endpoint_slice(first["object"]).subsets[0].endpoints) == 1000
    entries[500] = slice_entry("10.9.9.9")
    second = diff.decode(line("MODIFIED", slice_obj("s", entries, rv=2)))
    assert (diff.decoded, diff.reused) == (1001, 999)
    shard = parse_endpoint_slice(second["object"])
    assert shard == parse_endpoint_slice(json.loads(json.dumps(slice_obj("s", entries))))
    before = parse_endpoint_slice(first["object"]).subsets[0].endpoints
    after = shard.subsets[0].endpoints
    assert all(a is b for i, (a, b) in enumerate(zip(before, after, strict=True)) if i != 500)


def test_an_address_removed_here_and_one_inserted_there_decodes_one() -> None:
    """v1 Endpoints keep addresses sorted: a replaced pod's new IP lands elsewhere."""
    diff = LineDiff(ENDPOINTS_LINES)
    addresses = ips(1000)
    subsets = [{"addresses": [address(ip) for ip in addresses], "ports": [{"port": 80}]}]
    diff.decode(line("ADDED", endpoints_obj("svc", subsets)))
    del subsets[0]["addresses"][10]
    subsets[0]["addresses"].insert(900, address("10.0.3.200"))
    got = diff.decode(line("MODIFIED", endpoints_obj("svc", subsets, rv=2)))
    assert diff.decoded == 1001
    assert parse_endpoints(got["object"]) == parse_endpoints(endpoints_obj("svc", subsets))


def test_short_lines_and_unusual_lines_are_left_to_json_loads() -> None:
    diff = LineDiff(SLICE_LINES)
    small = slice_obj("s", [slice_entry(ip) for ip in ips(3)])
    assert diff.decode(line("ADDED", small)) is None  # under MIN_BYTES
    big = slice_obj("s", [slice_entry(ip) for ip in ips(200)])
    raw = line("ADDED", big)
    assert diff.decode(raw[:-1]) is None  # cut short
    assert diff.decode(raw + b"x") is None  # extra data
    assert diff.decode(b"\xff" + raw[1:]) is None  # not UTF-8
    big["endpoints"][7] = {"addresses": [3]}
    assert diff.decode(line("ADDED", big)) is None  # the parser words the error
    assert len(diff) == 0


def test_forget_and_keep_only() -> None:
    diff = LineDiff(SLICE_LINES)
    for name in ("a", "b", "c"):
        diff.decode(line("ADDED", slice_obj(name, [slice_entry(ip) for ip in ips(100)])))
    assert len(diff) == 3
    diff.forget("a")
    diff.keep_only(["b"])
    assert len(diff) == 1


# --- every change arrives, through the namer ---------------------------------------------------


class StubApi:
    """Lists ``items`` (set by the test), then hands the watch lines to the test."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.on_line: Any = None
        self.watch_done: Deferred[None] | None = None
        self.lists = 0

    async def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        self.lists += 1
        return {"metadata": {"resourceVersion": "1"}, "items": copy.deepcopy(self.items)}

    def watch(self, path: str, params: Any, on_line: Any, idle: float) -> WatchHandle:
        self.on_line = on_line
        self.watch_done = Deferred()
        return WatchHandle(self.watch_done)


class Cluster:
    """One service's objects, kept by the test and sent as watch lines; the name's
    address set is checked against resolve() of the objects json.loads reads."""

    def __init__(self, objects: dict[str, Any], slices: bool = True) -> None:
        self.objects = objects
        self.slices = slices
        self.parse = parse_endpoint_slice if slices else parse_endpoints
        self.api = StubApi(list(objects.values()))
        self.namer = K8sNamer(
            self.api,  # type: ignore[arg-type]
            Path.read("/io.l5d.k8s"),
            Clock(),
            settings=WatchSettings(resync_s=0),
            prefer_slices=slices,
        )
        self.published: list[Any] = []
        states: list[Any] = []
        self.namer.lookup(Path.read("/ns/http/svc")).observe(states.append)
        states[-1].value.value.addr.observe(self.published.append)
        self.rv = 1
        self.sent = 0

    @property
    def watcher(self) -> Any:
        return self.namer._watchers["ns"]

    def send(self, kind: str, name: str) -> None:
        self.rv += 1
        obj = self.objects[name] if kind != "DELETED" else self.objects.pop(name)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.api.on_line(line(kind, obj))
        self.sent += 1

    def hosts(self) -> set[tuple[str, int]]:
        last = self.published[-1]
        assert isinstance(last, AddrBound)
        return {(a.host, a.port) for a in last.addresses}

    def expected(self) -> set[tuple[str, int]]:
        shards = [self.parse(json.loads(json.dumps(o))) for o in self.objects.values()]
        return {(a.host, a.port) for a in resolve(shards, "http").addresses}

    def check(self) -> None:
        assert self.hosts() == self.expected()


def _big_slice_cluster() -> Cluster:
    return Cluster({"svc-a": slice_obj("svc-a", [slice_entry(ip) for ip in ips(1000)])})


def _big_endpoints_cluster() -> Cluster:
    subsets = [
        {
            "addresses": [address(ip) for ip in ips(1000)],
            "ports": [{"name": "http", "port": 8080}],
        }
    ]
    return Cluster({"svc": endpoints_obj("svc", subsets)}, slices=False)


def test_an_endpoint_changing_readiness_arrives() -> None:
    cluster = _big_slice_cluster()
    cluster.check()
    entries = cluster.objects["svc-a"]["endpoints"]
    entries[123] = slice_entry(entries[123]["addresses"][0], ready=False)
    cluster.send("MODIFIED", "svc-a")
    assert ("10.0.0.124", 8080) not in cluster.hosts()
    cluster.check()
    entries[123] = slice_entry(entries[123]["addresses"][0], ready=True)
    cluster.send("MODIFIED", "svc-a")
    assert ("10.0.0.124", 8080) in cluster.hosts()
    cluster.check()
    # (the list is not a line: the first line is read whole, the second by difference)
    assert cluster.watcher._line_diff.decoded == 1001


def test_a_v1_address_becoming_not_ready_arrives() -> None:
    cluster = _big_endpoints_cluster()
    subset = cluster.objects["svc"]["subsets"][0]
    moved = subset["addresses"].pop(500)
    subset["notReadyAddresses"] = [moved]
    cluster.send("MODIFIED", "svc")
    assert (moved["ip"], 8080) not in cluster.hosts() and len(cluster.hosts()) == 999
    cluster.check()
    subset["addresses"].insert(500, subset.pop("notReadyAddresses")[0])
    cluster.send("MODIFIED", "svc")
    cluster.check()
    assert len(cluster.hosts()) == 1000


def test_a_changed_port_arrives() -> None:
    for cluster in (_big_slice_cluster(), _big_endpoints_cluster()):
        obj = next(iter(cluster.objects.values()))
        cluster.send("MODIFIED", obj["metadata"]["name"])  # (the first line is kept)
        if cluster.slices:
            obj["ports"] = [{"name": "http", "port": 9090, "protocol": "TCP"}]
        else:
            obj["subsets"][0]["ports"] = [{"name": "http", "port": 9090}]
        cluster.send("MODIFIED", obj["metadata"]["name"])
        assert {port for _, port in cluster.hosts()} == {9090}
        cluster.check()


def test_duplicated_addresses_across_subsets_stay_until_both_go() -> None:
    shared = ips(300)
    subsets = [
        {"addresses": [address(ip) for ip in shared], "ports": [{"name": "http", "port": 80}]},
        {"addresses": [address(ip) for ip in shared[:50]], "ports": [{"name": "http", "port": 80}]},
    ]
    cluster = Cluster({"svc": endpoints_obj("svc", subsets)}, slices=False)
    cluster.send("MODIFIED", "svc")
    first = subsets[0]["addresses"]
    gone = first.pop(10)  # still in the second subset
    cluster.send("MODIFIED", "svc")
    assert (gone["ip"], 80) in cluster.hosts()
    cluster.check()
    subsets[1]["addresses"].pop(10)  # now in neither
    cluster.send("MODIFIED", "svc")
    assert (gone["ip"], 80) not in cluster.hosts()
    cluster.check()
    # and the same address twice in one slice, and in two slices
    cluster = _big_slice_cluster()
    entries = cluster.objects["svc-a"]["endpoints"]
    entries.append(copy.deepcopy(entries[0]))
    cluster.objects["svc-b"] = slice_obj("svc-b", [copy.deepcopy(entries[1])] * 20)
    cluster.send("MODIFIED", "svc-a")
    cluster.send("ADDED", "svc-b")
    del entries[0]
    cluster.send("MODIFIED", "svc-a")
    assert ("10.0.0.1", 8080) in cluster.hosts()
    cluster.check()
    cluster.objects["svc-a"]["endpoints"] = entries[2:]
    cluster.send("MODIFIED", "svc-a")
    assert ("10.0.0.2", 8080) in cluster.hosts()  # svc-b still has it
    cluster.check()


def test_an_object_deleted_and_created_again_arrives() -> None:
    for cluster in (_big_slice_cluster(), _big_endpoints_cluster()):
        name = next(iter(cluster.objects))
        obj = cluster.objects[name]
        cluster.send("MODIFIED", name)
        cluster.send("DELETED", name)
        assert not isinstance(cluster.published[-1], AddrBound)  # the service is gone
        assert len(cluster.watcher._line_diff) == 0
        again = copy.deepcopy(obj)
        if cluster.slices:
            again["endpoints"] = [slice_entry(ip) for ip in ips(700, block=5)]
        else:
            again["subsets"][0]["addresses"] = [address(ip) for ip in ips(700, block=5)]
        cluster.objects[name] = again
        cluster.send("ADDED", name)
        cluster.check()
        assert len(cluster.hosts()) == 700


def test_a_relist_after_410_and_the_changes_after_it_arrive() -> None:
    cluster = _big_slice_cluster()
    cluster.objects["svc-b"] = slice_obj("svc-b", [slice_entry(ip) for ip in ips(100, block=3)])
    cluster.send("ADDED", "svc-b")
    cluster.send("MODIFIED", "svc-a")
    # while the watch is down: svc-a changes, svc-b goes, svc-c comes
    cluster.objects["svc-a"]["endpoints"][5] = slice_entry("10.7.7.7")
    del cluster.objects["svc-b"]
    cluster.objects["svc-c"] = slice_obj("svc-c", [slice_entry(ip) for ip in ips(50, block=4)])
    cluster.api.items = list(cluster.objects.values())
    cluster.api.on_line(line("ERROR", {"kind": "Status", "code": 410, "message": "too old"}))
    assert cluster.api.lists == 2
    cluster.check()
    assert len(cluster.watcher._line_diff) == 1  # svc-b's line is forgotten
    for i in range(20):  # and the watch after it: every change arrives
        cluster.objects["svc-a"]["endpoints"][(i * 37) % 1000] = slice_entry(f"10.8.0.{i + 1}")
        cluster.send("MODIFIED", "svc-a")
        assert (f"10.8.0.{i + 1}", 8080) in cluster.hosts()
        cluster.check()


def test_a_large_object_with_a_malformed_entry_is_skipped_and_the_next_line_arrives() -> None:
    cluster = _big_slice_cluster()
    cluster.send("MODIFIED", "svc-a")
    before = cluster.hosts()
    entries = cluster.objects["svc-a"]["endpoints"]
    good = entries[7]
    entries[7] = {"addresses": [3], "conditions": {"ready": True}}  # not an IP string
    cluster.api.on_line(line("MODIFIED", cluster.objects["svc-a"]))  # logged and skipped
    assert cluster.hosts() == before
    entries[7] = good
    entries[8] = slice_entry("10.9.9.8")
    cluster.send("MODIFIED", "svc-a")
    assert ("10.9.9.8", 8080) in cluster.hosts()
    cluster.check()
    cluster.api.on_line(line("MODIFIED", cluster.objects["svc-a"])[:-5])  # cut short: skipped
    cluster.check()
