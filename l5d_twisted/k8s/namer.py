"""The ``io.l5d.k8s`` namer: ``/<namespace>/<port>/<service>[/<label value>]`` -> pods.

A name resolves to the READY endpoints of the service's port (a port name, or a number),
each address carrying ``node_name``, ``pod_name`` and ``zone`` in its meta for the DaemonSet
and localnode transformers.  Unknown service or unknown port name -> ``NEG``; a service
without ready endpoints -> an empty bound set; before the namespace's first list ->
pending.

A numbered port is a *service* port, as in linkerd 1: the namespace's Services are then
watched too (only then: RBAC for ``services`` is needed only by configs that use numbers)
and the number is mapped to its port name, which Endpoints and EndpointSlices use for the
target port.  A number no Service declares, or Services the API refuses to list, leave
the number as the target port itself.

With ``labelSelector: <key>`` names take a fourth segment, and only the endpoint objects
whose label ``<key>`` has that value count (as in linkerd 1, the labels are those of the
Endpoints/EndpointSlice objects, which Kubernetes copies from the Service).

All names of a namespace share one :class:`NamespaceWatcher`; each name keeps one bound
name whose address var updates in place, so clients are never rebuilt on endpoint churn.
A change costs O(the changed object's endpoints), not O(the service's): the name keeps its
resolution per object (:mod:`l5d_twisted.k8s.resolver`) and publishes each new address set
with its :class:`~l5d_twisted.naming.addr.AddrDelta`, which the client and its balancer
apply as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.access import ApiAccess, resolve_access
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.objects import service_port_name
from l5d_twisted.k8s.resolver import ShardResolver
from l5d_twisted.k8s.watcher import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    SERVICES,
    NamespaceWatcher,
    ResourceKind,
    WatchSettings,
)
from l5d_twisted.naming.addr import ADDR_NEG, ADDR_PENDING, Addr, AddrBound, AddrDelta, BoundName
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Failed, Ok, State, Var
from l5d_twisted.registry import NAMERS

log = Logger()

MAX_NAMESPACES = 256
MAX_NAMES = 10000


class NamespaceLimit(Exception):
    pass


# RFC 1123 labels: what namespaces and service names may be (keeps URLs well-formed).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class K8sNamerConfig:
    host: str | None = knob(
        None,
        doc="API host (a kubectl proxy); unset: in-cluster service account if present, else localhost",
    )
    port: int | None = knob(
        None, doc="API port (default 8001, a kubectl proxy)", minimum=1, maximum=65535
    )
    label_selector: str | None = knob(None, doc="label key whose value is the 4th name segment")
    request_timeout_ms: int = knob(
        10000, doc="timeout of list calls and of a watch's first answer", minimum=1
    )
    watch_timeout_secs: int = knob(
        300, doc="server-side timeout of each watch call; it is then resumed", minimum=1
    )
    resync_interval_secs: float = knob(300.0, doc="full re-list period (0 disables)", minimum=0)
    prefer_endpoint_slices: bool = knob(
        True,
        doc="watch discovery.k8s.io/v1 EndpointSlices, falling back to v1 Endpoints when not served",
    )


def parse_service_path(
    path: Path, with_label: bool, lowercase: bool = False
) -> tuple[tuple[str, str, str, str | None], int] | None:
    """``/<namespace>/<port>/<service>[/<label value>]`` (the label value only when the namer
    has a labelSelector) as its parts and how many segments they took, or None when the
    path is too short or a part is not a valid Kubernetes name; ``lowercase`` first, as
    io.l5d.k8s.external does (linkerd 1 lower-cased there)."""
    needed = 4 if with_label else 3
    if len(path) < needed:
        return None
    namespace, port, service = path[0], path[1], path[2]
    if lowercase:
        namespace, port, service = namespace.lower(), port.lower(), service.lower()
    label_value = path[3] if with_label else None
    if not (_DNS_LABEL.match(namespace) and _DNS_LABEL.match(service)):
        return None
    if not (port.isdigit() or _DNS_LABEL.match(port)):
        return None
    if label_value is not None and not _LABEL_VALUE.match(label_value):
        return None
    return (namespace, port, service, label_value), needed


@dataclass(frozen=True)
class _NameKey:
    namespace: str
    port: str
    service: str
    label_value: str | None


class _LiveName:
    """One resolved name: its activity (tree) and its bound name's address var."""

    def __init__(
        self,
        key: _NameKey,
        bound_id: Path,
        watcher: NamespaceWatcher,
        label_key: str | None,
        services: NamespaceWatcher | None = None,
    ) -> None:
        self.key = key
        self.watcher = watcher
        self.services = services
        self.label_key = label_key
        self.addr: Var[Addr] = Var(ADDR_PENDING)
        self.bound = BoundName(bound_id, self.addr)
        self.tree: Var[State] = Var(PENDING)
        self._resolver: ShardResolver | None = None
        self._last: AddrBound | None = None  # the address set last published
        self._listeners = [watcher.listen(key.service, self.refresh)]
        if services is not None:
            self._listeners.append(services.listen(key.service, self.refresh))
        self.refresh()

    def _port(self) -> str | None:
        """The port to resolve: a numbered *service* port becomes its port name, as
        linkerd 1 mapped it; None while the Services are still being listed."""
        if self.services is None:
            return self.key.port
        if not self.services.synced:
            # Without access to Services (RBAC, errors) use the number as a target port.
            return self.key.port if self.services.last_error is not None else None
        name = service_port_name(self.services.shards_for(self.key.service), int(self.key.port))
        return self.key.port if name is None else name

    def refresh(self) -> None:
        port = self._port()
        if not self.watcher.synced or port is None:
            return
        shards = self.watcher.shards_for(self.key.service)
        if self.label_key is not None:
            shards = [s for s in shards if s.label(self.label_key) == self.key.label_value]
        resolver = self._resolver
        fresh = resolver is None or resolver.port != port
        if resolver is None or fresh:
            resolver = self._resolver = ShardResolver(port)
        change = resolver.update(shards)
        if change.exists:
            # Address first, so whoever sees the leaf appear sees its addresses too.
            last = self._last
            added, removed = change.added, change.removed
            if last is not None and fresh:  # (a new port name: a new resolution)
                added = change.addresses - last.addresses
                removed = last.addresses - change.addresses
            if last is None or added or removed:
                delta = AddrDelta(last.token, added, removed) if last is not None else None
                self._last = AddrBound(change.addresses, delta=delta)
                self.addr.update(self._last)
            self.tree.update(Ok(Leaf(self.bound)))
        else:
            # Clients still holding the bound name must stop using the old addresses.
            self._last = None
            self.addr.update(ADDR_NEG)
            self.tree.update(Ok(NEG))

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()


class K8sNamer:
    """Kubernetes service discovery; see the module doc."""

    def __init__(
        self,
        api: KubernetesApi,
        prefix: Path,
        reactor: Any,
        ctx: PluginContext | None = None,
        label_selector: str | None = None,
        settings: WatchSettings | None = None,
        prefer_slices: bool = True,
    ) -> None:
        self.api = api
        self.prefix = prefix
        self.reactor = reactor
        self.ctx = ctx or PluginContext(reactor)
        self.label_selector = label_selector
        self.settings = settings or WatchSettings()
        self.prefer_slices = prefer_slices
        self._watchers: dict[str, NamespaceWatcher] = {}
        self._service_watchers: dict[str, NamespaceWatcher] = {}  # only for numbered ports
        self._names: dict[_NameKey, _LiveName] = {}

    @property
    def access(self) -> ApiAccess:
        return self.api.access

    def watcher(self, namespace: str) -> NamespaceWatcher:
        """The namespace's shared endpoints watcher, started on first use."""
        kind = ENDPOINT_SLICES if self.prefer_slices else ENDPOINTS
        return self._shared(self._watchers, namespace, kind, ())

    def service_watcher(self, namespace: str) -> NamespaceWatcher:
        """The namespace's Services, watched only once a numbered port is asked for."""
        return self._shared(self._service_watchers, namespace, SERVICES, ("services",))

    def _shared(
        self,
        table: dict[str, NamespaceWatcher],
        namespace: str,
        kind: ResourceKind,
        scope: tuple[str, ...],
    ) -> NamespaceWatcher:
        watcher = table.get(namespace)
        if watcher is None:
            watcher = NamespaceWatcher(
                self.api,
                namespace,
                self.reactor,
                rng=self.ctx.rng,
                settings=self.settings,
                stats=self.ctx.stats.scope("namer", *self.prefix.segments, namespace, *scope),
                kind=kind,
            )
            table[namespace] = watcher
            watcher.start()
        return watcher

    def _key(self, path: Path) -> tuple[_NameKey, int] | None:
        parsed = parse_service_path(path, with_label=bool(self.label_selector))
        if parsed is None:
            return None
        (namespace, port, service, label_value), needed = parsed
        return _NameKey(namespace, port, service, label_value), needed

    def lookup(self, path: Path) -> Var[State]:
        parsed = self._key(path)
        if parsed is None:
            return Var(Ok(NEG))
        key, consumed = parsed
        live = self._names.get(key)
        if live is None:
            if key.namespace not in self._watchers and len(self._watchers) >= MAX_NAMESPACES:
                # Names come from dtabs, and per-request dtab headers are client input:
                # never let them open an unbounded number of watches.
                return Var(
                    Failed(
                        NamespaceLimit(
                            f"io.l5d.k8s watches at most {MAX_NAMESPACES} namespaces; not watching {key.namespace!r}"
                        )
                    )
                )
            if len(self._names) >= MAX_NAMES:
                self._prune()
            services = self.service_watcher(key.namespace) if key.port.isdigit() else None
            live = _LiveName(
                key,
                Path.of("#") + self.prefix + path.take(consumed),
                self.watcher(key.namespace),
                self.label_selector,
                services,
            )
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
        """Forget names nobody observes (e.g. one per random Host header)."""
        for key, live in list(self._names.items()):
            if not live.tree.observed and not live.addr.observed:
                live.close()
                del self._names[key]

    def state(self) -> dict[str, Any]:
        return {
            "api": self.access.show(),
            "labelSelector": self.label_selector,
            "namespaces": {ns: w.state() for ns, w in sorted(self._watchers.items())},
            "services": {ns: w.state() for ns, w in sorted(self._service_watchers.items())},
        }

    def close(self) -> None:
        for live in self._names.values():
            live.close()
        for watcher in [*self._watchers.values(), *self._service_watchers.values()]:
            watcher.stop()


def make_api(
    reactor: Any, host: str | None, port: int | None, env: Any, request_timeout_ms: int
) -> KubernetesApi:
    access = resolve_access(host, port, env)
    log.info("kubernetes API at {api}", api=access.show())
    return KubernetesApi(reactor, access, request_timeout_s=request_timeout_ms / 1000.0)


def settings_from(config: K8sNamerConfig) -> WatchSettings:
    return WatchSettings(
        watch_timeout_s=config.watch_timeout_secs,
        idle_timeout_s=config.watch_timeout_secs + 30.0,
        resync_s=config.resync_interval_secs,
    )


@NAMERS.register("io.l5d.k8s", K8sNamerConfig)
def make_k8s_namer(config: K8sNamerConfig, prefix: Path, ctx: PluginContext) -> K8sNamer:
    api = make_api(ctx.reactor, config.host, config.port, ctx.env, config.request_timeout_ms)
    return K8sNamer(
        api,
        prefix,
        ctx.reactor,
        ctx,
        label_selector=config.label_selector,
        settings=settings_from(config),
        prefer_slices=config.prefer_endpoint_slices,
    )
