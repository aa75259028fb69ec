"""A running namerd: the store, the namers, one interpreter, the interfaces and admin.

``Namerd(config, reactor).start()`` builds everything and listens; ``stop()`` ends the
watches and closes the listeners.  Every namespace binds with the same namers and the
interpreter's caches (one bind per dtab and path, shared by every watch of it).  The admin
server answers ``/admin/ping`` (``pong``), ``/ready`` (``ready``) and ``/admin/metrics.json``
(``namerd/requests``, ``namerd/dtab/writes``, ``namerd/dtab/conflicts`` (412),
``namerd/dtab/refused``, ``namerd/watches/opened``; gauges ``namerd/namespaces`` and
``namerd/watches``).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from l5d_twisted.context import PluginContext
from l5d_twisted.namerd.api import NamerdApi
from l5d_twisted.namerd.config import NamerdConfig
from l5d_twisted.namerd.store import DtabStore, InMemoryDtabStore
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.namer import Namer
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import NAMERS

log = Logger()


class Namerd:
    def __init__(self, config: NamerdConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.store: DtabStore = make_store(config, reactor)
        self.namers: dict[Path, Namer] = {}
        self.ports: dict[str, Any] = {}
        self.api: NamerdApi | None = None

    def start(self) -> None:
        start_store = getattr(self.store, "start", None)
        if start_store is not None:
            start_store()
        ctx = PluginContext(reactor=self.reactor, config_dir=self.config.source_dir)
        for spec in self.config.namers:
            namer = NAMERS.get(spec.kind).factory(spec.config, spec.prefix, ctx)
            self.namers[spec.prefix] = namer
            ctx.namers[spec.prefix.show()] = namer
        interpreter = Interpreter(self.namers, (), self.reactor)
        self.api = NamerdApi(self.store, interpreter, self.reactor)
        for i, iface in enumerate(self.config.interfaces):
            site = self.api.site()
            site.resource = _UntilSynced(site.resource, self.store)
            port = self.reactor.listenTCP(iface.config.port, site, interface=iface.config.ip)
            self.ports[f"{iface.kind}#{i}" if i else iface.kind] = port
            log.info(
                "namerd {kind} listening on {ip}:{port}",
                kind=iface.kind,
                ip=iface.config.ip,
                port=port.getHost().port,
            )
        admin = self.config.admin
        port = self.reactor.listenTCP(
            admin.port, _admin_site(self.api, self.store), interface=admin.ip
        )
        self.ports["admin"] = port
        log.info("namerd admin listening on {ip}:{port}", ip=admin.ip, port=port.getHost().port)
        log.info(
            "namerd started: {kind} storage with {n} namespaces, {namers} namers",
            kind=self.config.storage.kind,
            n=len(self.store.list().sample()),
            namers=len(self.namers),
        )

    def stop(self) -> Deferred[Any]:
        if self.api is not None:
            self.api.close()
        stop_store = getattr(self.store, "stop", None)
        if stop_store is not None:
            stop_store()
        stopping = [port.stopListening() for port in self.ports.values()]
        self.ports.clear()
        return DeferredList([d for d in stopping if isinstance(d, Deferred)])


def make_store(config: NamerdConfig, reactor: Any) -> DtabStore:
    storage = config.storage
    if storage.kind == "io.l5d.inMemory":
        return InMemoryDtabStore(dict(storage.config.namespaces))
    if storage.kind in ("io.l5d.k8s", "io.l5d.v2.k8s"):
        import os

        from l5d_twisted.k8s.access import resolve_access
        from l5d_twisted.k8s.api import KubernetesApi
        from l5d_twisted.namerd.k8s_store import K8sDtabStore

        k8s = storage.config
        access = resolve_access(k8s.host, k8s.port, os.environ)
        log.info("namerd dtab storage: Kubernetes API at {api}", api=access.show())
        api = KubernetesApi(reactor, access, request_timeout_s=k8s.request_timeout_ms / 1000.0)
        return K8sDtabStore(
            api,
            k8s.namespace,
            reactor,
            seed=dict(k8s.namespaces),
            watch_timeout_s=k8s.watch_timeout_secs,
            idle_timeout_s=k8s.watch_timeout_secs + 30.0,
        )
    raise ValueError(f"unknown storage kind {storage.kind}")  # the config refused it already


def store_synced(store: DtabStore) -> bool:
    """Whether the store knows its dtabs: at once in memory; for Kubernetes once the first
    list is in (answering before would bind every name with an empty dtab, which a mesh
    would apply: namerd restarting would fail its traffic for a moment)."""
    return bool(getattr(store, "synced", True))


class _UntilSynced(Resource):
    """The HTTP API answers 503 until the store is synced (the mesh's interpreter keeps its
    last answers and retries, as for any namerd failure)."""

    isLeaf = True

    def __init__(self, inner: Any, store: DtabStore) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.inner = inner
        self.store = store

    def render(self, request: Any) -> Any:
        if store_synced(self.store):
            return self.inner.render(request)
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"retry-after", b"1")
        return b"namerd has not read its dtabs from its storage yet\n"


class _Admin(Resource):
    isLeaf = True

    def __init__(self, api: NamerdApi, store: DtabStore) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.api = api
        self.store = store

    def render_GET(self, request: Any) -> bytes:
        path = request.path
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if path == b"/admin/ping":
            return b"pong"
        if path == b"/ready":
            if not store_synced(self.store):
                request.setResponseCode(503)
                return b"not ready: the dtab storage is not read yet"
            return b"ready"
        if path == b"/admin/metrics.json":
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(self.api.metrics()).encode()
        request.setResponseCode(404)
        return b"namerd's admin serves /admin/ping, /ready and /admin/metrics.json\n"


def _admin_site(api: NamerdApi, store: DtabStore) -> Site:
    site = Site(_Admin(api, store))  # type: ignore[no-untyped-call]
    site.log = lambda request: None  # type: ignore[method-assign]
    return site
