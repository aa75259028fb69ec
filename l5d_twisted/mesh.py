"""A running mesh: what ``l5d-twisted run CONFIG`` starts.

From a validated :class:`~l5d_twisted.config.model.Config` it builds, in order:
telemeters (metrics first, so everything else can record), namers, each router (its
protocol from the ``PROTOCOLS`` registry, transformers, interpreter, identifiers, and the
protocol's stacks with every plugin's stack edits) and its servers (the server stack over
the router, served by the protocol), then the admin server.  No protocol or plugin kind is
named here (docs/architecture.md).
Start-up is all or nothing: if any port cannot be bound, whatever started is stopped and
the error is raised, so the proxy never half-starts.

Stopping is graceful, in the phases of Envoy's drain manager:

1. the drain period (``admin.drainPeriodMs``, 0 by default): ``GET /ready`` on the admin
   server answers 503 at once, so a load balancer (a Service's readiness probe) stops
   sending new traffic; the servers keep accepting and answering, but every response
   carries ``Connection: close`` and idle connections close, so keep-alive clients move
   to another process or pod while nothing is refused;
2. the servers stop listening (accepting what the kernel already queued first) and
   in-flight requests finish within ``admin.shutdownGraceMs``; stragglers are aborted;
3. clients, namers and telemeters close, then the admin server.

A second SIGTERM (``end_drain_period``) cuts the drain period short.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    ensureDeferred,
    maybeDeferred,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger

from l5d_twisted.context import PluginContext
from l5d_twisted.interpreters import build_interpreter
from l5d_twisted.naming.path import Path
from l5d_twisted.protocols.base import RouterProtocol, protocol_named
from l5d_twisted.registry import TELEMETERS, TRANSFORMERS, load_plugins
from l5d_twisted.router.router import Router
from l5d_twisted.router.stacks import RouterStacks, StackEdit, StackParams
from l5d_twisted.router.trust import OwnAddresses
from l5d_twisted.service import Params
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.transformers.namer import make_namer

log = Logger()


class Mesh:
    """Routers, namers, telemeters and the admin server of one config."""

    def __init__(
        self,
        config: Any,
        reactor: Any,
        env: Mapping[str, str] | None = None,
        serve_admin: bool = True,
    ) -> None:
        self.config = config
        # False in a worker process (l5d_twisted.workers): the supervisor serves the admin
        # port, which still counts as one of the mesh's own addresses.
        self.serve_admin = serve_admin
        self.reactor = reactor
        self.env = dict(os.environ if env is None else env)
        self.metrics: Any = None
        self.routers: list[Router] = []
        self.namers: dict[str, Any] = {}
        self.telemeters: list[Any] = []
        self.transformers: list[Any] = []  # some hold watches of their own (daemonset)
        self.recent_requests: Any = None  # the first telemeter offering recent_requests
        self.closers: list[Any] = []  # routers' add-ons (an access log file), closed last
        self.gauges: list[Any] = []  # the mesh's own gauges (held for as long as it runs)
        self.stack_edits: list[StackEdit] = []  # plugins' modules, applied to every router's stacks
        self.servers: list[Any] = []  # what each protocol's serve() returned, one per server
        self.admin_port: Any = None
        # every listening address, filled in as they bind: a request dtab may not reach them
        self.own_addresses = OwnAddresses()
        self.allow_shutdown: bool = bool(getattr(config.admin, "allow_shutdown", False))
        self._stopping: Deferred[None] | None = None
        self._drain_period: Deferred[None] | None = None
        self.draining = False
        """True from the first moment of a stop: ``GET /ready`` answers 503."""
        self._on_shutdown: list[Any] = []

    # -- AdminTarget ---------------------------------------------------------------
    def config_json(self) -> dict[str, Any]:
        from l5d_twisted.config.tojson import config_json

        return config_json(self.config)

    def shutdown(self, grace_s: float | None = None) -> Deferred[None]:
        """Drain and stop, then run the shutdown callbacks (``run`` stops the reactor)."""
        d = self.stop(grace_s)

        def done(result: Any) -> Any:
            for callback in self._on_shutdown:
                callback()
            return result

        return d.addBoth(done)

    def on_shutdown(self, callback: Any) -> None:
        self._on_shutdown.append(callback)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Deferred[None]:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        load_plugins()
        config = self.config
        self.metrics = MetricsTree(self.reactor)
        ctx = PluginContext(
            reactor=self.reactor,
            stats=self.metrics.stats,
            env=self.env,
            config_dir=getattr(config, "source_dir", "."),
        )
        try:
            self._build_telemeters(ctx)
            self._build_namers(ctx)
            if not self.serve_admin:
                self.own_addresses.add(config.admin.ip, config.admin.port)
            self._build_routers(ctx)
            if self.serve_admin:
                self._listen_admin()
        except BaseException:
            await self.stop(0.0, drain_period_s=0.0)
            raise
        log.info(
            "mesh started: {routers} routers, {servers} servers, {namers} namers, admin on {admin}",
            routers=len(self.routers),
            servers=len(self.servers),
            namers=len(self.namers),
            admin=f"{config.admin.ip}:{self.ports().get('admin', config.admin.port)}",
        )

    def _build_telemeters(self, ctx: PluginContext) -> None:
        for spec in self.config.telemetry:
            telemeter = TELEMETERS.get(spec.kind).factory(spec.config, ctx)
            self.telemeters.append(telemeter)
            if (
                self.recent_requests is None
                and getattr(telemeter, "recent_requests", None) is not None
            ):
                self.recent_requests = telemeter
            self.stack_edits.extend(getattr(telemeter, "stack_edits", ()))
            start = getattr(telemeter, "start", None)
            if start is not None:
                start()

    def _build_namers(self, ctx: PluginContext) -> None:
        for spec in self.config.namers:
            # with its own transformers (linkerd 1's namers[].transformers), if any
            namer, transformers = make_namer(spec, ctx)
            self.transformers.extend(transformers)
            self.namers[spec.prefix.show()] = namer
            ctx.namers[spec.prefix.show()] = namer

    def _request_observers(self) -> list[Any]:
        observers = []
        for telemeter in self.telemeters:
            observer = getattr(telemeter, "request_observer", None)
            if observer is not None:
                observers.append(observer)
        return observers

    def _build_routers(self, ctx: PluginContext) -> None:
        namers = {Path.read(prefix): namer for prefix, namer in self.namers.items()}
        observers = self._request_observers()
        for router_config in self.config.routers:
            transformers = [
                TRANSFORMERS.get(spec.kind).factory(spec.config, ctx)
                for spec in router_config.interpreter.transformers
            ]
            self.transformers.extend(transformers)
            interpreter = self._interpreter(router_config, namers, transformers)
            protocol = protocol_named(router_config.protocol)
            addons = (
                protocol.router_addons(self.reactor, router_config)
                if protocol.router_addons is not None
                else None
            )
            edits = [*self.stack_edits, *(addons.edits if addons is not None else ())]
            if addons is not None:
                self.closers.extend(addons.closers)
            stacks = protocol.stacks.edited(edits)
            router = Router(
                router_config,
                interpreter,
                reactor=self.reactor,
                stats=self.metrics.stats,
                ctx=ctx,
                protocol=protocol,
                stacks=stacks,
                request_observers=observers,
                own_addresses=self.own_addresses,
            )
            self.routers.append(router)
            if router_config.originator:
                # linkerd 1's originator: rt/<router>/originator = 1 marks the first hop, so
                # linker-to-linker traffic can be counted once (held: gauges are weak)
                self.gauges.append(router.stats.gauge("originator", fn=lambda: 1.0))
            for server in router_config.servers:
                self._listen_server(router, protocol, stacks, router_config, server, ctx)

    def _interpreter(
        self, router_config: Any, namers: Mapping[Path, Any], transformers: list[Any]
    ) -> Any:
        """The router's interpreter (``interpreters.build_interpreter``: in process, or
        namerd's, whose watches close with the mesh)."""
        interpreter, close = build_interpreter(
            router_config.interpreter,
            namers,
            transformers,
            self.reactor,
            self.metrics.stats.scope("rt", router_config.label),
        )
        if close is not None:
            self.closers.append(close)
        return interpreter

    def _listen_server(
        self,
        router: Router,
        protocol: RouterProtocol,
        stacks: RouterStacks,
        router_config: Any,
        server: Any,
        ctx: PluginContext,
    ) -> None:
        stats = self.metrics.stats.scope("rt", router.label, "server", server.ip, str(server.port))
        params = (
            Params()
            .plus(StackParams.REACTOR, self.reactor)
            .plus(StackParams.STATS, stats)
            .plus(StackParams.CLASSIFIER, router.context_classifier)
            .plus(StackParams.RNG, ctx.rng)
        )
        service = stacks.server.make(params, router)
        listening = protocol.serve(self.reactor, router_config, server, service, stats)
        self.servers.append(listening)
        self.own_addresses.add(server.ip, _port_number(listening), router=True)
        log.info(
            "router {router} serving on {ip}:{port}",
            router=router.label,
            ip=server.ip,
            port=_port_number(listening),
        )

    def _listen_admin(self) -> None:
        from l5d_twisted.admin.server import AdminServer

        admin = self.config.admin
        target: Any = self  # Mesh meets admin.target.AdminTarget structurally
        self.admin_port = AdminServer(target, self.reactor).listen(admin.ip, admin.port)
        self.own_addresses.add(admin.ip, self.admin_port.getHost().port)

    def stop(
        self, grace_s: float | None = None, drain_period_s: float | None = None
    ) -> Deferred[None]:
        """Drain and stop (once; later calls return the same Deferred).

        ``drain_period_s`` and ``grace_s`` default to ``admin.drainPeriodMs`` and
        ``admin.shutdownGraceMs``.
        """
        if self._stopping is None:
            admin = self.config.admin
            if grace_s is None:
                grace_s = admin.shutdown_grace_ms / 1000.0
            if drain_period_s is None:
                drain_period_s = getattr(admin, "drain_period_ms", 0) / 1000.0
            self.draining = True
            self._stopping = ensureDeferred(self._stop(grace_s, drain_period_s))
        return self._stopping

    def end_drain_period(self) -> None:
        """Cut a drain period in progress short (a second SIGTERM): stop listening now."""
        period = self._drain_period
        if period is not None and not period.called:
            log.info("drain period cut short")
            period.cancel()

    async def _drain_period_of(self, drain_period_s: float) -> None:
        if drain_period_s <= 0:
            return
        log.info(
            "mesh draining: not ready, answering with Connection: close for {period}s before closing the listeners",
            period=drain_period_s,
        )
        for server in self.servers:
            begin = getattr(server, "begin_drain", None)
            if begin is not None:
                begin()
        self._drain_period = deferLater(self.reactor, drain_period_s, lambda: None)
        try:
            await self._drain_period
        except CancelledError:
            pass  # end_drain_period
        finally:
            self._drain_period = None

    async def _stop(self, grace_s: float, drain_period_s: float) -> None:
        await self._drain_period_of(drain_period_s)
        log.info(
            "mesh stopping: closing the listeners, in-flight requests finish within {grace}s",
            grace=grace_s,
        )
        drains = [maybeDeferred(_drain, server, grace_s) for server in self.servers]
        await DeferredList(drains, consumeErrors=True)
        await DeferredList([maybeDeferred(r.close) for r in self.routers], consumeErrors=True)
        for thing in self.transformers + list(self.namers.values()) + self.telemeters:
            for method in ("close", "stop"):
                close = getattr(thing, method, None)
                if close is not None:
                    try:
                        await maybeDeferred(close)
                    except Exception:
                        log.failure("closing {thing}", thing=thing)
                    break
        for close_addon in self.closers:
            try:
                close_addon()
            except Exception:
                log.failure("closing {thing}", thing=close_addon)
        if self.admin_port is not None:
            await maybeDeferred(self.admin_port.stopListening)
        if self.metrics is not None:
            self.metrics.stop()
        log.info("mesh stopped")

    def ports(self) -> dict[str, Any]:
        """The bound ports, for tests and the demo: ``{"<router>/<i>": port, "admin": port}``."""
        out: dict[str, Any] = {}
        i = 0
        for router in self.routers:
            for _server in router.config.servers:
                out[f"{router.label}/{i}"] = _port_number(self.servers[i])
                i += 1
        if self.admin_port is not None:
            out["admin"] = self.admin_port.getHost().port
        return out


def _drain(server: Any, grace_s: float) -> Any:
    drain = getattr(server, "drain", None)
    if drain is not None:
        return drain(grace_s)
    return server.stopListening()


def _port_number(server: Any) -> int:
    return int(server.getHost().port)  # protocols.base.Listening


def dump_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
