"""Endpoints and EndpointSlices, read into one small model the namer resolves names from.

Both API kinds say the same thing in different shapes: a service's pods (IP, readiness,
node, pod name, zone) and the ports they serve by name.  An Endpoints object carries
several ``subsets`` (each its own port list); an EndpointSlice is one such subset and a
service may have several slices.  So a parsed object is a :class:`ServiceShard` holding
:class:`Subset` s, and a service is the union of its shards.

Parsing is strict about types and forgiving about absence: a malformed object raises
:class:`MalformedObject` (the watcher logs and skips it), an absent optional field is
simply absent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, compress, count, islice
from operator import is_, is_not, ne
from typing import Any, NamedTuple

from l5d_twisted.naming.addr import Address, make_address

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class MalformedObject(ValueError):
    """An API object that does not have the shape of its kind."""


@dataclass(frozen=True)
class PortSpec:
    name: str  # "" when the service port is unnamed
    port: int


class EndpointInfo(NamedTuple):
    """One endpoint of a shard (a tuple: hashed and compared in C, which the namer does
    for every endpoint of a changed object)."""

    ip: str
    ready: bool
    node_name: str | None = None
    pod_name: str | None = None
    zone: str | None = None

    def address(self, port: int) -> Address:
        meta = {"node_name": self.node_name, "pod_name": self.pod_name, "zone": self.zone}
        return make_address(self.ip, port, meta={k: v for k, v in meta.items() if v is not None})


@dataclass(frozen=True)
class Subset:
    ports: tuple[PortSpec, ...]
    endpoints: tuple[EndpointInfo, ...]


@dataclass(frozen=True)
class ServiceShard:
    """One API object: all of an Endpoints object, or one EndpointSlice; or a Service,
    which has no endpoints but says which port *name* a service port number has."""

    name: str  # the object's own name (== service name for Endpoints and Services)
    service: str
    labels: tuple[tuple[str, str], ...]
    subsets: tuple[Subset, ...]
    service_ports: tuple[PortSpec, ...] = ()  # Services only: (port name, service port)

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None


class ParsedEntries:
    """An endpoint list already read entry by entry, standing in for the decoded JSON list
    (``endpoints`` of a slice, ``addresses`` / ``notReadyAddresses`` of a subset): what
    :mod:`l5d_twisted.k8s.linediff` gives for a large object's watch line, reusing the
    previous version's entries that did not change.  ``parsed[i]`` is what entry ``i``
    gave (:func:`slice_entry`, :func:`endpoints_address`)."""

    __slots__ = ("parsed", "flat")

    def __init__(
        self,
        parsed: list[tuple[EndpointInfo, ...]],
        flat: tuple[EndpointInfo, ...] | None = None,
    ) -> None:
        self.parsed = parsed
        self.flat = flat  # the same, all in one tuple, when given

    def endpoints(self) -> Iterable[EndpointInfo]:
        return self.flat if self.flat is not None else chain.from_iterable(self.parsed)


# --- field helpers -----------------------------------------------------------------------


# (each is called for every endpoint of every changed object: the exact-type checks come
# first, an ABC isinstance costs more than the rest of the parse)


def _dict(value: Any, where: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedObject(f"{where} should be an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if type(value) is list:
        return value
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedObject(f"{where} should be a list, got {type(value).__name__}")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    if value is None or type(value) is str:
        return value
    if not isinstance(value, str):
        raise MalformedObject(f"{where} should be a string, got {type(value).__name__}")
    return value


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise MalformedObject(f"{where} should be a port number, got {value!r}")
    return value


def _ports(items: Any, where: str) -> tuple[PortSpec, ...]:
    out = []
    for i, item in enumerate(_list(items, where)):
        item = _dict(item, f"{where}[{i}]")
        if item.get("protocol", "TCP") not in ("TCP", None):
            continue  # UDP/SCTP ports cannot carry HTTP
        if item.get("port") is None:
            continue  # slices may list a port with no number ("all ports"); not routable
        name = _opt_str(item.get("name"), f"{where}[{i}].name") or ""
        out.append(PortSpec(name, _port(item.get("port"), f"{where}[{i}].port")))
    return tuple(out)


def _metadata(obj: Any) -> tuple[str, tuple[tuple[str, str], ...], Mapping[str, Any]]:
    obj = _dict(obj, "object")
    meta = _dict(obj.get("metadata"), "metadata")
    name = _opt_str(meta.get("name"), "metadata.name")
    if not name:
        raise MalformedObject("object has no metadata.name")
    labels = _dict(meta.get("labels"), "metadata.labels")
    label_items = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
    return name, label_items, obj


def _target_pod(ref: Any, where: str) -> str | None:
    if ref is None:
        return None
    ref = _dict(ref, where)
    if ref.get("kind", "Pod") != "Pod":
        return None
    return _opt_str(ref.get("name"), f"{where}.name")


# --- the two kinds -----------------------------------------------------------------------


def parse_endpoints(obj: Any) -> ServiceShard:
    """A core/v1 Endpoints object (named after its service)."""
    name, labels, body = _metadata(obj)
    subsets = []
    for i, raw in enumerate(_list(body.get("subsets"), "subsets")):
        raw = _dict(raw, f"subsets[{i}]")
        ports = _ports(raw.get("ports"), f"subsets[{i}].ports")
        endpoints: list[EndpointInfo] = []
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            entries = raw.get(key)
            if type(entries) is ParsedEntries:
                endpoints.extend(entries.endpoints())
                continue
            for j, addr in enumerate(_list(entries, f"subsets[{i}].{key}")):
                try:
                    endpoints.extend(endpoints_address(addr, ready))
                except MalformedObject as e:
                    raise MalformedObject(f"subsets[{i}].{key}[{j}]{e}") from None
        subsets.append(Subset(ports, tuple(endpoints)))
    return ServiceShard(name, name, labels, tuple(subsets))


def endpoints_address(raw: Any, ready: bool) -> tuple[EndpointInfo]:
    """One entry of a v1 subset's ``addresses`` (``ready``) or ``notReadyAddresses``; a
    MalformedObject's message starts with the field path below the entry."""
    addr = _dict(raw, "")
    ip = _opt_str(addr.get("ip"), ".ip")
    if not ip:
        raise MalformedObject(" has no ip")
    return (
        EndpointInfo(
            ip=ip,
            ready=ready,
            node_name=_opt_str(addr.get("nodeName"), ".nodeName"),
            pod_name=_target_pod(addr.get("targetRef"), ".targetRef"),
        ),
    )


def parse_endpoint_slice(obj: Any) -> ServiceShard:
    """A discovery.k8s.io/v1 EndpointSlice (its service named by a label)."""
    name, labels, body = _metadata(obj)
    service = dict(labels).get(SERVICE_NAME_LABEL)
    if not service:
        raise MalformedObject(f"EndpointSlice {name} has no {SERVICE_NAME_LABEL} label")
    address_type = body.get("addressType", "IPv4")
    if address_type not in ("IPv4", "IPv6"):
        # FQDN slices name hosts, not IPs; a proxy cannot use them as endpoints.
        return ServiceShard(name, service, labels, ())
    ports = _ports(body.get("ports"), "ports")
    entries = body.get("endpoints")
    if type(entries) is ParsedEntries:
        return ServiceShard(name, service, labels, (Subset(ports, tuple(entries.endpoints())),))
    endpoints: list[EndpointInfo] = []
    for i, raw in enumerate(_list(entries, "endpoints")):
        try:
            if not _well_formed_endpoint(raw, endpoints):
                _slice_endpoint(raw, endpoints)
        except MalformedObject as e:  # where it is, worded only for the malformed one
            raise MalformedObject(f"endpoints[{i}]{e}") from None
    return ServiceShard(name, service, labels, (Subset(ports, tuple(endpoints)),))


def slice_entry(raw: Any) -> tuple[EndpointInfo, ...]:
    """One entry of a slice's ``endpoints`` (one EndpointInfo per address); a
    MalformedObject's message starts with the field path below the entry."""
    into: list[EndpointInfo] = []
    if not _well_formed_endpoint(raw, into):
        _slice_endpoint(raw, into)
    return tuple(into)


_new_endpoint = tuple.__new__  # EndpointInfo(...) goes through a Python __new__


def _well_formed_endpoint(raw: Any, into: list[EndpointInfo]) -> bool:
    """The usual entry of a slice's ``endpoints``, read without a call per field (every
    endpoint of every changed slice goes through here); False, having added nothing, for
    anything unusual, which :func:`_slice_endpoint` then reads or refuses."""
    if type(raw) is not dict:
        return False
    conditions = raw.get("conditions")
    node_name = raw.get("nodeName")
    ref = raw.get("targetRef")
    zone = raw.get("zone")
    addresses = raw.get("addresses")
    if (
        (conditions is not None and type(conditions) is not dict)
        or (node_name is not None and type(node_name) is not str)
        or (zone is not None and type(zone) is not str)
        or type(addresses) is not list
    ):
        return False
    pod_name = None
    if ref is not None:
        if type(ref) is not dict:
            return False
        if ref.get("kind", "Pod") == "Pod":
            pod_name = ref.get("name")
            if pod_name is not None and type(pod_name) is not str:
                return False
    for ip in addresses:
        if type(ip) is not str or not ip:
            return False
    # "ready" unset means unknown, which the API says to treat as ready.
    ready = conditions is None or conditions.get("ready") is not False
    for ip in addresses:
        into.append(_new_endpoint(EndpointInfo, (ip, ready, node_name, pod_name, zone)))
    return True


def _slice_endpoint(raw: Any, into: list[EndpointInfo]) -> None:
    """One entry of a slice's ``endpoints``; a MalformedObject's message starts with the
    field path below the entry (the caller prefixes the entry's index)."""
    raw = _dict(raw, "")
    conditions = _dict(raw.get("conditions"), ".conditions")
    # "ready" unset means unknown, which the API says to treat as ready.
    ready = conditions.get("ready") is not False
    node_name = _opt_str(raw.get("nodeName"), ".nodeName")
    pod_name = _target_pod(raw.get("targetRef"), ".targetRef")
    zone = _opt_str(raw.get("zone"), ".zone")
    for j, ip in enumerate(_list(raw.get("addresses"), ".addresses")):
        if type(ip) is not str or not ip:
            raise MalformedObject(f".addresses[{j}] should be an IP string")
        into.append(EndpointInfo(ip, ready, node_name, pod_name, zone))


def parse_service(obj: Any) -> ServiceShard:
    """A core/v1 Service: only its ports matter (service port number -> port name)."""
    name, labels, body = _metadata(obj)
    spec = _dict(body.get("spec"), "spec")
    return ServiceShard(name, name, labels, (), _ports(spec.get("ports"), "spec.ports"))


def service_port_name(services: Iterable[ServiceShard], number: int) -> str | None:
    """The name of the service port numbered ``number`` (Endpoints and EndpointSlices
    name their target ports after it), or None if no Service says."""
    for service in services:
        for spec in service.service_ports:
            if spec.port == number:
                return spec.name
    return None


# --- resolving a (service, port) -----------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What a name resolves to: ``exists`` False means negative; else ready addresses."""

    exists: bool
    addresses: frozenset[Address] = frozenset()


NEGATIVE = Resolution(False)


def resolve(shards: Iterable[ServiceShard], port: str) -> Resolution:
    """The ready addresses of a service's ``port`` (a port name, or a number).

    No shard -> negative (unknown service).  Shards whose ports are all unknown (a
    service with no endpoints has no port list) -> an empty set.  A port *name* that no
    subset lists while others are listed -> negative.  A port *number* picks the subsets
    listing that number, or, when none does, is used as is on every ready endpoint (pods
    often serve ports the service does not declare).
    """
    shards = list(shards)
    if not shards:
        return NEGATIVE
    subsets = [s for shard in shards for s in shard.subsets]
    known_ports = [p for s in subsets for p in s.ports]
    number = int(port) if port.isdigit() else None
    addresses: set[Address] = set()
    matched = False
    for subset in subsets:
        for spec in subset.ports:
            if spec.name == port or (number is not None and spec.port == number):
                matched = True
                addresses.update(e.address(spec.port) for e in subset.endpoints if e.ready)
    if matched:
        return Resolution(True, frozenset(addresses))
    if number is not None and 0 < number < 65536:
        return Resolution(
            True, frozenset(e.address(number) for s in subsets for e in s.endpoints if e.ready)
        )
    if known_ports:
        return NEGATIVE  # the service exists but has no such port
    return Resolution(True, frozenset())


# --- the same, one shard at a time (what the namer keeps between changes) -----------------------


class ShardPart:
    """One shard's share of resolving a port, as :func:`resolve` would count it.

    ``matched``: some subset lists the port (by name or number); ``addresses`` are then the
    ready addresses of those subsets, else (a numbered port) every ready endpoint on that
    number, else none.  ``cache`` maps (endpoint, port) to its :class:`Address` (its values
    are ``addresses``), so that the next version of the same object reuses the addresses of
    the endpoints that stayed.  ``counts``: how many times each endpoint is in a one-subset
    object of :data:`COUNTED` or more.

    A part made by a change of the previous one (``delta``: the addresses removed and
    added) takes over that part's ``cache`` and ``counts`` and changes them in place (a
    copy of each cost more than the rest of the change at 1,000 endpoints): the previous
    part is not to be used again (the resolver keeps only the latest).
    """

    __slots__ = ("has_ports", "matched", "cache", "counts", "delta", "_addresses")

    def __init__(
        self,
        has_ports: bool,
        matched: bool,
        addresses: frozenset[Address] | None,
        cache: dict[tuple[EndpointInfo, int], Address],
        counts: dict[EndpointInfo, int] | None = None,
        delta: tuple[frozenset[Address], frozenset[Address]] | None = None,
    ) -> None:
        self.has_ports = has_ports
        self.matched = matched
        self.cache = cache
        self.counts = counts
        self.delta = delta
        self._addresses = addresses  # None: made from the cache when asked

    @property
    def addresses(self) -> frozenset[Address]:
        if self._addresses is None:
            self._addresses = frozenset(self.cache.values())
        return self._addresses


def shard_part(
    shard: ServiceShard,
    port: str,
    previous: ShardPart | None = None,
    previous_shard: ServiceShard | None = None,
) -> ShardPart:
    """``shard``'s :class:`ShardPart` for ``port``; ``previous``: the part of the object's
    last version (``previous_shard``), whose addresses are reused for unchanged endpoints."""
    if (
        previous is not None
        and previous_shard is not None
        and len(shard.subsets) == 1
        and len(previous_shard.subsets) == 1
        and shard.subsets[0].ports == previous_shard.subsets[0].ports
    ):
        return _changed_endpoints(shard.subsets[0], previous_shard.subsets[0], port, previous)
    number = int(port) if port.isdigit() else None
    old = previous.cache if previous is not None else {}
    cache: dict[tuple[EndpointInfo, int], Address] = {}

    def collect(endpoints: tuple[EndpointInfo, ...], at: int) -> None:
        for e in endpoints:
            if e.ready:
                key = (e, at)
                address = old.get(key)
                cache[key] = address if address is not None else e.address(at)

    has_ports = matched = False
    for subset in shard.subsets:
        for spec in subset.ports:
            has_ports = True
            if spec.name == port or (number is not None and spec.port == number):
                matched = True
                collect(subset.endpoints, spec.port)
    if not matched and number is not None and 0 < number < 65536:
        for subset in shard.subsets:
            collect(subset.endpoints, number)
    counts = _counts(shard.subsets[0].endpoints) if len(shard.subsets) == 1 else None
    return ShardPart(has_ports, matched, frozenset(cache.values()), cache, counts)


_NO_DELTA: tuple[frozenset[Address], frozenset[Address]] = (frozenset(), frozenset())
COUNTED = 64  # a one-subset object of at least this many endpoints keeps their counts


def _counts(endpoints: tuple[EndpointInfo, ...]) -> dict[EndpointInfo, int] | None:
    return dict(Counter(endpoints)) if len(endpoints) >= COUNTED else None


def _endpoint_difference(
    old: tuple[EndpointInfo, ...],
    new: tuple[EndpointInfo, ...],
    counts: dict[EndpointInfo, int] | None = None,
) -> tuple[set[EndpointInfo], set[EndpointInfo], dict[EndpointInfo, int] | None]:
    """(endpoints gone, endpoints new, ``new``'s counts) between two versions of a list;
    ``counts``: how many times each endpoint is in ``old`` (None: not kept, e.g. small),
    which may be changed in place into ``new``'s.

    A controller changes a slice in place (a pod replaced keeps its position), so the
    positions that differ are found first, in C: by identity (the entries a watch line did
    not change are the same objects, :mod:`l5d_twisted.k8s.linediff`), else by value.  A
    v1 Endpoints object keeps its addresses sorted (a new IP lands elsewhere than the old
    one left, and the entries between shift by one): with counts, a few entries taken out
    and put in at either end of the part that differs are found by identity too.  Whether
    a candidate is really gone or new (duplicates, moves) is then told by the counts, or by
    looking through the other list.  Anything else: the difference of the two whole sets.
    """
    if len(old) == len(new):
        differ = list(compress(range(len(new)), map(is_not, old, new)))
        if len(differ) > 8:
            differ = list(compress(range(len(new)), map(ne, old, new)))
        if not differ:
            return set(), set(), counts
        if len(differ) <= 8:
            if counts is None:
                went = {old[i] for i in differ}
                came = {new[i] for i in differ}
                return (
                    {e for e in went if e not in new},
                    {e for e in came if e not in old},
                    _counts(new),
                )
            went, came = _recount([old[i] for i in differ], [new[i] for i in differ], counts)
            return went, came, counts
    if counts is not None:
        edit = _shifted(old, new)
        if edit is not None:
            went, came = _recount(edit[0], edit[1], counts)
            return went, came, counts
        fresh = _counts(new)
        if fresh is not None:
            return set(counts).difference(fresh), set(fresh).difference(counts), fresh
    went, came = set(old), set(new)
    return went - came, came - went, _counts(new)


def _recount(
    out: list[EndpointInfo], into: list[EndpointInfo], counts: dict[EndpointInfo, int]
) -> tuple[set[EndpointInfo], set[EndpointInfo]]:
    """Entries ``out`` taken out of the list ``counts`` counts and ``into`` put in, counted
    in place: (those now in it no more, those in it now and not before)."""
    zeroed = set()
    for e in out:
        n = counts[e] - 1
        if n:
            counts[e] = n
        else:
            del counts[e]
            zeroed.add(e)
    came = set()
    for e in into:
        n = counts.get(e, 0)
        counts[e] = n + 1
        if not n and e not in zeroed:
            came.add(e)
    return {e for e in zeroed if e not in counts}, came


_ENDS = ((1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (2, 1), (1, 2), (2, 2))


def _shifted(
    old: tuple[EndpointInfo, ...], new: tuple[EndpointInfo, ...]
) -> tuple[list[EndpointInfo], list[EndpointInfo]] | None:
    """(entries taken out, entries put in) when ``new`` is ``old`` with a few entries taken
    out and a few put in at one or two places, the others the same objects; else None."""
    n_old, n_new = len(old), len(new)
    shorter = min(n_old, n_new)
    p = next(compress(count(), map(is_not, old, new)), shorter)  # the same first p
    q = next(compress(count(), map(is_not, reversed(old), reversed(new))), shorter)
    q = min(q, n_old - p, n_new - p)  # and last q
    m_old, m_new = n_old - p - q, n_new - p - q  # between them, what differs
    if m_old <= 8 and m_new <= 8:
        return list(old[p : p + m_old]), list(new[p : p + m_new])
    for a, b in _ENDS:  # a taken out / b put in at the front, the rest at the back
        length = min(m_old - a, m_new - b)
        if length <= 0 or m_old - a - length > 4 or m_new - b - length > 4:
            continue
        if all(map(is_, islice(old, p + a, p + a + length), islice(new, p + b, p + b + length))):
            return (
                list(old[p : p + a]) + list(old[p + a + length : p + m_old]),
                list(new[p : p + b]) + list(new[p + b + length : p + m_new]),
            )
    return None


def _changed_endpoints(new: Subset, old: Subset, port: str, previous: ShardPart) -> ShardPart:
    """A new version of a one-subset object (every EndpointSlice) with the same ports: only
    the endpoints that came or went are looked at in Python; the sets and the cache are
    copied in C, with the hashes they hold (an Address hashes in Python)."""
    number = int(port) if port.isdigit() else None
    at = [s.port for s in new.ports if s.name == port or (number is not None and s.port == number)]
    matched = bool(at)
    if not at and number is not None and 0 < number < 65536:
        at = [number]
    if not at:
        return ShardPart(bool(new.ports), matched, frozenset(), {}, _counts(new.endpoints))
    went, came, counts = _endpoint_difference(old.endpoints, new.endpoints, previous.counts)
    if not went and not came:
        if counts is previous.counts:
            return previous
        return ShardPart(
            previous.has_ports, matched, previous._addresses, previous.cache, counts, _NO_DELTA
        )
    cache = previous.cache  # (taken over, see ShardPart)
    removed = []
    for e in went:
        if e.ready:
            for p in at:
                address = cache.pop((e, p), None)
                if address is not None:
                    removed.append(address)
    added = []
    for e in came:
        if e.ready:
            for p in at:
                if (e, p) not in cache:
                    address = cache[e, p] = e.address(p)
                    added.append(address)
    # (a ready endpoint's address differs from every other's: its fields are all in it)
    return ShardPart(
        bool(new.ports), matched, None, cache, counts, (frozenset(removed), frozenset(added))
    )
