"""The ``io.l5d.k8s.external`` namer: ``/<namespace>/<port>/<service>[/<label value>]`` ->
the external addresses of a Service of type LoadBalancer (linkerd 1's keys)::

    namers:
    - kind: io.l5d.k8s.external
      experimental: true      # linkerd 1 required it; accepted, not required here
      host: localhost         # the API (a kubectl proxy), as io.l5d.k8s
      port: 8001
      labelSelector: version  # optional: names take a 4th segment, the label's value

    dtab: /svc => /#/io.l5d.k8s.external/prod/http

For mesh instances outside the cluster.  A name resolves to the addresses in the
Service's ``status.loadBalancer.ingress`` (each entry's ``hostname``, else its ``ip``,
as linkerd 1 picked them) at the Service's port: a port name, or a service port number.
The namespace's Services are listed and watched (the same watch loop as io.l5d.k8s, so
RBAC must allow ``list`` and ``watch`` of ``services``), and every change (an ingress
address assigned, a port renamed, the Service deleted) reaches the bound name at once.

Negative: no such Service, no such port, a Service without load-balancer ingress (not
of type LoadBalancer, or its address not assigned yet), or, with ``labelSelector``, a
Service whose label has another value.  Pending until the namespace's first list.
Namespaces, service and port names are lower-cased as linkerd 1 did.

Differences from linkerd 1: every ingress entry is an address (linkerd 1 kept the last
one only); a port *number* is the Service port with that number (linkerd 1 looked the
number up through the target port and found nothing for most Services); ``experimental:
true`` is not required; the label selector is applied to the watched Services here rather
than sent to the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.namer import (
    MAX_NAMES,
    MAX_NAMESPACES,
    NamespaceLimit,
    make_api,
    parse_service_path,
)
from l5d_twisted.k8s.objects import (
    EndpointInfo,
    MalformedObject,
    ServiceShard,
    Subset,
    parse_service,
)
from l5d_twisted.k8s.watcher import NamespaceWatcher, ResourceKind, WatchSettings
from l5d_twisted.naming.addr import ADDR_NEG, ADDR_PENDING, Addr, AddrBound, BoundName
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Failed, Ok, State, Var
from l5d_twisted.registry import NAMERS

log = Logger()

_INGRESS_HOST = re.compile(r"^[A-Za-z0-9.:\-]{1,253}$")  # an IP (v4, v6) or a DNS name
MAX_INGRESS = 64  # addresses kept per Service


def parse_load_balancer_service(obj: Any) -> ServiceShard:
    """A core/v1 Service: its ports, and its load-balancer ingress as one subset of
    ready endpoints (hostname, else ip, per entry)."""
    shard = parse_service(obj)
    status = obj.get("status") if isinstance(obj, dict) else None
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = lb.get("ingress") if isinstance(lb, dict) else None
    if ingress is None:
        return shard
    if not isinstance(ingress, list):
        raise MalformedObject("status.loadBalancer.ingress should be a list")
    hosts: list[str] = []
    for i, entry in enumerate(ingress[:MAX_INGRESS]):
        if not isinstance(entry, dict):
            raise MalformedObject(f"status.loadBalancer.ingress[{i}] should be an object")
        host = entry.get("hostname") or entry.get("ip")
        if not isinstance(host, str) or not _INGRESS_HOST.match(host):
            continue  # nothing usable in this entry
        if host not in hosts:
            hosts.append(host)
    if not hosts:
        return shard
    endpoints = tuple(EndpointInfo(host, True) for host in hosts)
    return ServiceShard(
        shard.name,
        shard.service,
        shard.labels,
        (Subset(shard.service_ports, endpoints),),
        shard.service_ports,
    )


LOAD_BALANCER_SERVICES = ResourceKind(
    "services", "/api/v1/namespaces/{namespace}/services", parse_load_balancer_service
)


def external_addresses(shard: ServiceShard, port: str) -> frozenset[Any] | None:
    """The ingress addresses at the Service's ``port`` (a name, or a service port number);
    None when there are none (negative)."""
    number = int(port) if port.isdigit() else None
    for spec in shard.service_ports:
        if (number is not None and spec.port == number) or (number is None and spec.name == port):
            hosts = [e for subset in shard.subsets for e in subset.endpoints]
            if not hosts:
                return None
            return frozenset(e.address(spec.port) for e in hosts)
    return None


@dataclass(frozen=True)
class K8sExternalConfig:
    host: str | None = knob(
        None,
        doc="API host (a kubectl proxy); unset: in-cluster service account if present, else localhost",
    )
    port: int | None = knob(
        None, doc="API port (default 8001, a kubectl proxy)", minimum=1, maximum=65535
    )
    label_selector: str | None = knob(
        None, doc="label key of the Services whose value is the 4th name segment"
    )
    request_timeout_ms: int = knob(
        10000, doc="timeout of list calls and of a watch's first answer", minimum=1
    )
    watch_timeout_secs: int = knob(
        300, doc="server-side timeout of each watch call; it is then resumed", minimum=1
    )
    resync_interval_secs: float = knob(300.0, doc="full re-list period (0 disables)", minimum=0)


@dataclass(frozen=True)
class _Key:
    namespace: str
    port: str
    service: str
    label_value: str | None


class _LiveName:
    def __init__(
        self, key: _Key, bound_id: Path, watcher: NamespaceWatcher, label_key: str | None
    ) -> None:
        self.key = key
        self.watcher = watcher
        self.label_key = label_key
        self.addr: Var[Addr] = Var(ADDR_PENDING)
        self.bound = BoundName(bound_id, self.addr)
        self.tree: Var[State] = Var(PENDING)
        self._listener = watcher.listen(key.service, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        if not self.watcher.synced:
            return
        found: frozenset[Any] | None = None
        for shard in self.watcher.shards_for(self.key.service):
            if self.label_key is not None and shard.label(self.label_key) != self.key.label_value:
                continue
            found = external_addresses(shard, self.key.port)
        if found is None:
            self.addr.update(ADDR_NEG)
            self.tree.update(Ok(NEG))
            return
        current = self.addr.sample()
        if not (isinstance(current, AddrBound) and current.addresses == found):
            self.addr.update(AddrBound(found))
        self.tree.update(Ok(Leaf(self.bound)))

    def close(self) -> None:
        self._listener.close()


class K8sExternalNamer:
    """Load-balancer addresses of Kubernetes Services; see the module doc."""

    def __init__(
        self,
        api: KubernetesApi,
        prefix: Path,
        reactor: Any,
        ctx: PluginContext | None = None,
        label_selector: str | None = None,
        settings: WatchSettings | None = None,
    ) -> None:
        self.api = api
        self.prefix = prefix
        self.reactor = reactor
        self.ctx = ctx or PluginContext(reactor)
        self.label_selector = label_selector
        self.settings = settings or WatchSettings()
        self._watchers: dict[str, NamespaceWatcher] = {}
        self._names: dict[_Key, _LiveName] = {}

    def watcher(self, namespace: str) -> NamespaceWatcher:
        watcher = self._watchers.get(namespace)
        if watcher is None:
            watcher = NamespaceWatcher(
                self.api,
                namespace,
                self.reactor,
                rng=self.ctx.rng,
                settings=self.settings,
                stats=self.ctx.stats.scope("namer", *self.prefix.segments, namespace),
                kind=LOAD_BALANCER_SERVICES,
            )
            self._watchers[namespace] = watcher
            watcher.start()
        return watcher

    def _key(self, path: Path) -> tuple[_Key, int] | None:
        parsed = parse_service_path(path, with_label=bool(self.label_selector), lowercase=True)
        if parsed is None:
            return None
        (namespace, port, service, label_value), needed = parsed
        return _Key(namespace, port, service, label_value), needed

    def lookup(self, path: Path) -> Var[State]:
        parsed = self._key(path)
        if parsed is None:
            return Var(Ok(NEG))
        key, consumed = parsed
        live = self._names.get(key)
        if live is None:
            if key.namespace not in self._watchers and len(self._watchers) >= MAX_NAMESPACES:
                # names come from dtabs, which clients may send: bound the watches
                return Var(
                    Failed(
                        NamespaceLimit(
                            f"io.l5d.k8s.external watches at most {MAX_NAMESPACES} namespaces; "
                            f"not watching {key.namespace!r}"
                        )
                    )
                )
            if len(self._names) >= MAX_NAMES:
                self._prune()
            bound_id = (
                Path.of("#")
                + self.prefix
                + Path.of(key.namespace, key.port, key.service, *path.segments[3:consumed])
            )
            live = _LiveName(key, bound_id, self.watcher(key.namespace), self.label_selector)
            self._names[key] = live
        residual = path.drop(consumed)
        if residual.is_empty:
            return live.tree

        def with_residual(state: State) -> State:
            if isinstance(state, Ok) and isinstance(state.value, Leaf):
                return Ok(Leaf(BoundName(live.bound.id, live.addr, residual)))
            return state

        return live.tree.map(with_residual)

    def _prune(self) -> None:
        for key, live in list(self._names.items()):
            if not live.tree.observed and not live.addr.observed:
                live.close()
                del self._names[key]

    def state(self) -> dict[str, Any]:
        return {
            "api": self.api.access.show(),
            "labelSelector": self.label_selector,
            "namespaces": {ns: w.state() for ns, w in sorted(self._watchers.items())},
        }

    def close(self) -> None:
        for live in self._names.values():
            live.close()
        for watcher in self._watchers.values():
            watcher.stop()


@NAMERS.register("io.l5d.k8s.external", K8sExternalConfig)
def make_k8s_external_namer(
    config: K8sExternalConfig, prefix: Path, ctx: PluginContext
) -> K8sExternalNamer:
    api = make_api(ctx.reactor, config.host, config.port, ctx.env, config.request_timeout_ms)
    settings = WatchSettings(
        watch_timeout_s=config.watch_timeout_secs,
        idle_timeout_s=config.watch_timeout_secs + 30.0,
        resync_s=config.resync_interval_secs,
    )
    return K8sExternalNamer(
        api, prefix, ctx.reactor, ctx, label_selector=config.label_selector, settings=settings
    )
