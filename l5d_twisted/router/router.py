"""A router: what one ``routers[]`` entry of the config becomes.

Per request: count Via hops (loops get 400), read the override dtab headers, identify the
logical name (identifiers tried in order), then hand the request to the cached service
layer for that name.  Layers are cached bottom-up (service per (name, override dtab),
client per bound name, endpoint per address) and idle ones are closed after a while, so
pod churn and random Host values cannot grow memory without bound.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted import heap
from l5d_twisted.balancers.base import Balancer, BalancerContext
from l5d_twisted.config.model import RouterConfig
from l5d_twisted.config.params import ServiceParams
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import Forbidden, IdentificationError, MeshError
from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.tls import TlsConfigError, client_tls
from l5d_twisted.identifiers.base import Identified
from l5d_twisted.naming.addr import Address, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.path import Path
from l5d_twisted.protocols.base import EndpointFactory, RouterProtocol, protocol_named
from l5d_twisted.registry import BALANCERS, CLASSIFIERS, IDENTIFIERS
from l5d_twisted.request_context import CLASSIFIER, DST, REQUEST_DTAB_ADDRESSES, ROUTER
from l5d_twisted.resilience.classifier import ResponseClassifier
from l5d_twisted.resilience.retries import RetryBudget
from l5d_twisted.service import Params, Service
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.scope_limit import limited_scope
from l5d_twisted.telemetry.stats import StatsReceiver

from . import headers as h
from . import trust
from .classify import ContextClassifier
from .client import BoundClient
from .expiry import ExpiryWheel
from .lru import SecondChanceQueue
from .route import BindingService
from .stacks import RouterStacks, StackParams, seconds

log = Logger()

RequestObserver = Callable[
    [Request, Any, float], None
]  # (request, Response or exception, latency ms)
# EndpointFactory: (reactor, address, client settings, stats, connect_timeout_s=, tls=) ->
# endpoint service; the protocol's (protocols.base) in production, a fake in router tests.

# Idle layers are closed after ``bindingCache.idleTtlSecs`` without a request (linkerd 1
# expired idle clients and their metrics for the same reason), looked for every TTL/10
# (between 1 s and 30 s): an idle route lives at most 10% longer than its TTL.
SWEEP_INTERVAL_S = 30.0
MIN_SWEEP_INTERVAL_S = 1.0


# After this many routes and clients expired, once the sweep has closed them, the C heap's
# free pages are given back (~2 ms at 300 MB; 10,000 names expiring gave back ~20 MB).
TRIM_AFTER_EVICTIONS = 1_000


def sweep_interval(idle_ttl_s: float) -> float:
    return min(SWEEP_INTERVAL_S, max(MIN_SWEEP_INTERVAL_S, idle_ttl_s / 10.0))


# At most ``bindingCache.paths`` cached routes (name x override dtab) and
# ``bindingCache.clients`` clients (bound names), 10,000 each by default (a node's proxy
# holds that many active names without evicting any): names come from request headers
# (Host, l5d-dtab), so without a bound a client sending random values could grow the
# caches for a whole TTL. The least recently used goes first.
# Routes for a request's own dtab (l5d-dtab, l5d-ctx-dtab) are cached apart, in a smaller
# cache of their own: a client sending a different dtab on every request evicts only such
# routes, never the operator's, and what they hold (bound trees, explanations) stays small.
MAX_OVERRIDE_ROUTES = 100
# A use of a cached route or client this soon after it was made is the request that made
# it (a route is called in the same reactor turn; a client once its name is bound), not a
# reuse earning it a second chance against eviction (see lru.py).
FIRST_USE_S = 0.1


_TRANSFORMED = Path.of("%")


def _scope_name(path: Path) -> str:
    """``/svc/hello`` -> ``svc/hello``: linkerd's metric scope for a name."""
    return path.show().lstrip("/")


class _EndpointMaker:
    """Makes a client's endpoint stack for an address (a slotted object rather than a
    closure over seven variables: one per routed name; issue 17)."""

    __slots__ = (
        "_router",
        "_settings",
        "_scope",
        "_connect_timeout_s",
        "_tls",
        "_client_params",
        "_transformed",
    )

    def __init__(
        self,
        router: Router,
        settings: Any,
        scope: Any,
        connect_timeout_s: float,
        tls: Any,
        client_params: Any,
        transformed: bool,
    ) -> None:
        self._router = router
        self._settings = settings
        self._scope = scope
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls
        self._client_params = client_params
        self._transformed = transformed

    def __call__(self, address: Address) -> Service[Request, Response]:
        router = self._router
        leaf = router._endpoint_factory(
            router._reactor,
            address,
            self._settings,
            self._scope,
            connect_timeout_s=self._connect_timeout_s,
            tls=self._tls,
        )
        # (the params made here, for a new address, rather than kept: a dict per name)
        params = Params(
            {
                StackParams.REACTOR: router._reactor,
                StackParams.STATS: self._scope,
                StackParams.CLASSIFIER: router.context_classifier,
                StackParams.RNG: router._rng,
                StackParams.CLIENT: self._client_params,
                StackParams.ADDRESS: address,
            }
        )
        endpoint = router._stacks.endpoint.make(params, leaf)
        # decided once per endpoint: only one at the mesh's own or a metadata address
        # gets a guard (refusing requests routed with a request dtab)
        return trust.guarded(
            router.own_addresses.forbidden(address, transformed=self._transformed), endpoint
        )


class Router(Service[Request, Response]):
    def __init__(
        self,
        config: RouterConfig,
        interpreter: Interpreter,
        *,
        reactor: Any,
        stats: StatsReceiver,
        ctx: PluginContext,
        protocol: RouterProtocol | None = None,
        stacks: RouterStacks | None = None,
        request_observers: Sequence[RequestObserver] = (),
        rng: random.Random | None = None,
        endpoint_factory: EndpointFactory | None = None,
        own_addresses: trust.OwnAddresses | None = None,
    ) -> None:
        self.config = config
        self.label: str = config.label
        self.interpreter = interpreter
        self.dtab: Dtab = config.dtab
        self.dst_prefix: Path = config.dst_prefix
        self._reactor = reactor
        self._rng = rng or random.Random()
        # the protocol of routers[].protocol (the registry's): its stacks, endpoints
        self.protocol = protocol if protocol is not None else protocol_named(config.protocol)
        self._stacks = stacks if stacks is not None else self.protocol.stacks
        self._observers = tuple(request_observers)
        self._endpoint_factory: EndpointFactory = endpoint_factory or self.protocol.endpoint_factory
        self.stats = stats.scope("rt", self.label)
        self._identifiers = [
            IDENTIFIERS.get(spec.kind).factory(spec.config, self.dst_prefix, ctx)
            for spec in config.identifier
        ]
        default_service = config.service.params_for(self.dst_prefix)
        self._fallback_classifier = self._classifier(default_service)
        self.context_classifier = ContextClassifier(self._fallback_classifier)
        self._routes: dict[tuple[Path, str], _Route] = {}
        self._binders: dict[tuple[Path, str], BindingService] = {}
        # Eviction order (near-LRU, O(1)) of the configured and the override routes, and
        # of the clients; the request that made an entry is not a reuse of it.
        self._route_queue: SecondChanceQueue[tuple[Path, str]] = SecondChanceQueue(
            lambda key: self._binders[key].last_used, first_use_s=FIRST_USE_S
        )
        self._override_keys: SecondChanceQueue[tuple[Path, str]] = SecondChanceQueue(
            lambda key: self._binders[key].last_used, first_use_s=FIRST_USE_S
        )
        self._clients: dict[BoundName, BoundClient] = {}
        self._client_queue: SecondChanceQueue[BoundName] = SecondChanceQueue(
            lambda bound: self._clients[bound].last_used, first_use_s=FIRST_USE_S
        )
        self._client_services: dict[BoundName, Service[Request, Response]] = {}
        self._binding_timeout_s = config.binding_timeout_ms / 1000.0
        cache = config.binding_cache
        self._max_routes: int = cache.paths
        self._max_clients: int = cache.clients
        self._idle_ttl_s = float(cache.idle_ttl_secs)
        self._max_call_depth: int = config.max_call_depth
        # What a request dtab may not reach (the mesh fills it in as it binds its ports),
        # and this router's loop marker: random, so a client cannot guess it.
        self.own_addresses = own_addresses if own_addresses is not None else trust.OwnAddresses()
        self.loop_id = secrets.token_hex(8).encode("ascii")
        # which routes and clients the idle sweep looks at next, by when they could expire
        interval = sweep_interval(self._idle_ttl_s)
        started = reactor.seconds()
        self._route_expiry: ExpiryWheel[tuple[Path, str]] = ExpiryWheel(interval, started)
        self._client_expiry: ExpiryWheel[BoundName] = ExpiryWheel(interval, started)
        self._expired: deque[tuple[bool, Any]] = deque()  # (is a route, key) to evict
        self._evicting: Any = None  # the next turn's batch of them
        self._evicted_untrimmed = 0  # names closed since the C heap was last trimmed
        self._sweeper = LoopingCall(self._sweep_idle)
        self._sweeper.clock = reactor
        self._sweeper.start(interval, now=False)

    # -- the request path ----------------------------------------------------------
    def __call__(self, request: Request) -> Deferred[Response]:
        observers = self._observers
        start = self._reactor.seconds() if observers else 0.0
        try:
            d = self._route(request)
        except MeshError as e:
            d = fail(e)
        except Exception as e:  # a bug must cost one request, not the connection
            log.failure("routing {method} {uri}", method=request.method, uri=request.uri)
            d = fail(MeshError(f"internal error routing the request: {e}"))
        if observers:
            # one callback for both (Via first, so observers see the response as sent)
            d.addBoth(self._add_via_and_observe, request, start)
        else:
            d.addCallback(self._add_via)
        return d

    def _route(self, request: Request) -> Deferred[Response]:
        hdrs = request.headers
        # Which fields the request came with, in one pass: most requests carry none of the
        # l5d-* fields, and each separate lookup would scan every field again.
        present = hdrs.lower_names()
        if h.VIA in present:
            h.check_call_depth(hdrs, self._max_call_depth)
        local = h.local_dtab(hdrs) if h.CTX_DTAB in present or h.DTAB in present else h.NO_DTAB
        if local is not h.NO_DTAB:
            self._check_request_dtab(request, local)
        identified = None
        reasons = []
        for identifier in self._identifiers:
            result = identifier.identify(request)
            if isinstance(result, Identified):
                identified = result
                break
            reasons.append(result.reason)
        if identified is None:
            raise IdentificationError("Unable to identify request: " + "; ".join(reasons))
        request = identified.request
        path = identified.path
        ctx = request.ctx
        ctx[ROUTER] = self.label
        ctx[DST] = path
        key = (path, "" if local is h.NO_DTAB else local.show())
        route = self._routes.get(key)
        if route is not None:
            dst = route.dst_header
            marker = route.loop_marker
        else:
            dst = h.dst_service(path)
            marker = h.loop_marker(self.loop_id, dst)
        # set() where the request came with the field (replacing it), a plain add() otherwise
        if h.DST_SERVICE in present:
            hdrs.set(h.DST_SERVICE, dst)
        else:
            hdrs.add(h.DST_SERVICE, dst)
        if h.REQID in present:
            hdrs.set(h.REQID, h.request_id(hdrs, self._rng))
        else:
            hdrs.add(h.REQID, h.new_request_id(self._rng))
        hdrs.add(b"Via", h.VIA_VALUE)
        # The loop marker: this router and the name, so a request that comes back to route
        # the same name again (a loop, also through /$/inet to this process) stops here.
        if h.LOOP in present:
            h.check_loop(hdrs, marker)
        hdrs.add(h.LOOP, marker)
        if route is None:
            route = self._make_route(key, path, local, dst, marker)
        return route(request)

    def _check_request_dtab(self, request: Request, local: Dtab) -> None:
        """A request dtab: refuse address built-ins unless the server allows them, and mark
        the request so endpoints at the mesh's own ports refuse it (``trust``)."""
        if not request.ctx.get(REQUEST_DTAB_ADDRESSES):
            rule = trust.address_rule(local)
            if rule is not None:
                raise Forbidden(
                    f"the request's dtab delegates to addresses, which this server does not allow: {rule}"
                )
        request.ctx[trust.REQUEST_DTAB] = True

    @staticmethod
    def _add_via(response: Response) -> Response:
        response.headers.add(b"Via", h.VIA_VALUE)
        return response

    def _add_via_and_observe(self, result: Any, request: Request, start: float) -> Any:
        if not isinstance(result, Failure):
            try:
                result.headers.add(b"Via", h.VIA_VALUE)
            except Exception as e:  # not a Response after all: observed as the failure it becomes
                self._observe(e, request, start)
                raise
        self._observe(result.value if isinstance(result, Failure) else result, request, start)
        return result

    def _observe(self, outcome: Any, request: Request, start: float) -> None:
        latency_ms = (self._reactor.seconds() - start) * 1000.0
        for observer in self._observers:
            try:
                observer(request, outcome, latency_ms)
            except Exception:
                log.failure("request observer failed")

    # -- layers --------------------------------------------------------------------
    def _classifier(self, service_params: ServiceParams) -> ResponseClassifier:
        spec = service_params.response_classifier
        classifier: ResponseClassifier = CLASSIFIERS.get(spec.kind).factory(spec.config)
        return classifier

    def _make_route(
        self, key: tuple[Path, str], path: Path, local: Dtab, dst: bytes, marker: bytes
    ) -> _Route:
        service_params = self.config.service.params_for(path)
        classifier = self._classifier(service_params)
        binder = BindingService(
            path=path,
            local_dtab=local,
            base_dtab=self.dtab,
            interpreter=self.interpreter,
            client_for=self._client_for,
            reactor=self._reactor,
            rng=self._rng,
            binding_timeout_s=self._binding_timeout_s,
        )
        params = (
            Params()
            .plus(StackParams.REACTOR, self._reactor)
            .plus(
                StackParams.STATS,
                limited_scope(
                    self.stats, "service", _scope_name(path), self.config.max_metric_scopes
                ),
            )
            .plus(StackParams.CLASSIFIER, classifier)
            .plus(StackParams.RNG, self._rng)
            .plus(StackParams.SERVICE, service_params)
        )
        route = _Route(classifier, self._stacks.service.make(params, binder), dst, marker)
        queue, limit = (
            (self._override_keys, MAX_OVERRIDE_ROUTES)
            if key[1]
            else (self._route_queue, self._max_routes)
        )
        if len(queue) >= limit:
            oldest = queue.pop_oldest()
            if oldest is not None:
                self._evict_route(oldest)
        self._routes[key] = route
        self._binders[key] = binder
        queue.add(key)
        self._route_expiry.file(key, binder.last_used + self._idle_ttl_s)
        return route

    def _client_for(self, bound: BoundName) -> Service[Request, Response]:
        service = self._client_services.get(bound)
        if service is not None:
            return service
        client_params = self.config.client.params_for(bound.id)
        scope = limited_scope(
            self.stats, "client", _scope_name(bound.id), self.config.max_metric_scopes
        )
        spec = client_params.load_balancer
        balancer: Balancer = BALANCERS.get(spec.kind).factory(
            spec.config, BalancerContext(self._reactor, scope, self._rng)
        )
        settings = self.protocol.client_settings(self.config, client_params)
        connect_timeout_s = seconds(client_params.connect_timeout_ms)
        tls = self._client_tls(bound, client_params)
        # a transformer's names (/%/...) are the operator's way to the mesh's routers
        transformed = bound.id.startswith(_TRANSFORMED)
        endpoint_params = (
            Params()
            .plus(StackParams.REACTOR, self._reactor)
            .plus(StackParams.STATS, scope)
            .plus(StackParams.CLASSIFIER, self.context_classifier)
            .plus(StackParams.RNG, self._rng)
            .plus(StackParams.CLIENT, client_params)
        )

        make_endpoint = _EndpointMaker(
            self, settings, scope, connect_timeout_s, tls, client_params, transformed
        )
        client = BoundClient(
            bound,
            make_endpoint=make_endpoint,
            balancer=balancer,
            reactor=self._reactor,
            binding_timeout_s=self._binding_timeout_s,
        )
        # requeues' own budget per client: client.requeueBudget (linkerd 1's defaults,
        # Finagle's: minRetriesPerSec 10, percentCanRetry 0.2, ttlSecs 10)
        requeues = client_params.requeue_budget
        client_stack_params = endpoint_params.plus(
            StackParams.REQUEUE_BUDGET,
            RetryBudget(
                requeues.min_retries_per_sec,
                requeues.percent_can_retry,
                requeues.ttl_secs,
                self._reactor,
            ),
        )
        service = self._stacks.client.make(client_stack_params, client)
        if len(self._clients) >= self._max_clients:
            oldest = self._client_queue.pop_oldest()
            if oldest is not None:
                self._evict_client(oldest)
        self._clients[bound] = client
        self._client_services[bound] = service
        self._client_queue.add(bound)
        self._client_expiry.file(bound, client.last_used + self._idle_ttl_s)
        return service

    @staticmethod
    def _client_tls(bound: BoundName, client_params: Any) -> Any:
        """TLS options for a client (commonName captures are already filled in)."""
        if client_params.tls is None:
            return None
        try:
            return client_tls(client_params.tls)
        except TlsConfigError as e:
            raise MeshError(f"client TLS for {bound.id.show()} is misconfigured: {e}") from None

    # At most this many routes or clients are closed per reactor turn (2-4 ms): expiring
    # thousands of names at once (a burst of new names a TTL ago) stalled requests 100+ ms.
    EVICTIONS_PER_TURN = 16

    def _sweep_idle(self) -> None:
        """Close the routes and clients idle for the TTL: only those filed as due are looked
        at (:mod:`.expiry`); one used since is filed again under its new time."""
        now = self._reactor.seconds()
        ttl = self._idle_ttl_s
        expired = self._expired
        for key in self._route_expiry.take_due(now):
            binder = self._binders.get(key)
            if binder is None:
                continue  # evicted by the cache bound meanwhile
            if binder.last_used <= now - ttl:  # idle for the TTL
                expired.append((True, key))
            else:
                self._route_expiry.file(key, binder.last_used + ttl)
        for bound in self._client_expiry.take_due(now):
            client = self._clients.get(bound)
            if client is None:
                continue
            if client.last_used <= now - ttl and client.pending == 0:
                expired.append((False, bound))
            else:  # used since, or requests still in flight: looked at again later
                self._client_expiry.file(bound, max(client.last_used + ttl, now))
        if expired and self._evicting is None:
            self._evict_expired()

    def _evict_expired(self) -> None:
        """Evict what the sweep found expired, a batch per reactor turn; each is checked
        again, since a request may have used it between turns."""
        self._evicting = None
        now = self._reactor.seconds()
        cutoff = now - self._idle_ttl_s
        expired = self._expired
        for _ in range(min(len(expired), self.EVICTIONS_PER_TURN)):
            is_route, key = expired.popleft()
            if is_route:
                binder = self._binders.get(key)
                if binder is None:
                    continue
                if binder.last_used <= cutoff:
                    self._evict_route(key)
                    self._evicted_untrimmed += 1
                else:
                    self._route_expiry.file(key, binder.last_used + self._idle_ttl_s)
            else:
                client = self._clients.get(key)
                if client is None:
                    continue
                if client.last_used <= cutoff and client.pending == 0:
                    self._evict_client(key)
                    self._evicted_untrimmed += 1
                else:
                    self._client_expiry.file(key, max(client.last_used + self._idle_ttl_s, now))
        if expired and self._sweeper.running:
            self._evicting = self._reactor.callLater(0, self._evict_expired)
        elif self._evicted_untrimmed >= TRIM_AFTER_EVICTIONS:
            # many names gone: give the C heap's freed pages back (l5d_twisted.heap)
            self._evicted_untrimmed = 0
            heap.trim()

    def _evict_route(self, key: tuple[Path, str]) -> None:
        del self._routes[key]
        self._route_queue.discard(key)
        self._override_keys.discard(key)
        self._closing("service", key[0], self._binders.pop(key).close)

    def _evict_client(self, bound: BoundName) -> None:
        self._client_queue.discard(bound)
        del self._client_services[bound]
        # drains: in-flight requests finish
        self._closing("client", bound.id, self._clients.pop(bound).close)

    def _closing(self, kind: str, name: Path, close: Callable[[], object]) -> None:
        """Close a layer without its last updates counting as use of its metric scope, so
        the scope expires with the name (see ``MetricsTree.closing``)."""
        tree = getattr(self.stats, "tree", None)
        prefix = getattr(self.stats, "prefix", None)
        if isinstance(tree, MetricsTree) and isinstance(prefix, tuple):
            tree.closing(prefix + (kind, _scope_name(name)), close)
        else:
            close()

    # -- admin views ---------------------------------------------------------------
    def client_state(self) -> dict[str, dict[str, Any]]:
        return {client.id_text: client.state() for client in self._clients.values()}

    def clients(self) -> list[BoundClient]:
        """The live clients, read-only (the admin's per-endpoint table walks them)."""
        return list(self._clients.values())

    def close(self) -> Deferred[None]:
        if self._sweeper.running:
            self._sweeper.stop()
        closing = [b.close() for b in self._binders.values()] + [
            c.close() for c in self._clients.values()
        ]
        self._binders.clear()
        self._routes.clear()
        self._route_expiry.clear()
        self._client_expiry.clear()
        self._expired.clear()
        if self._evicting is not None and self._evicting.active():
            self._evicting.cancel()
        self._evicting = None
        self._route_queue.clear()
        self._override_keys.clear()
        self._clients.clear()
        self._client_queue.clear()
        self._client_services.clear()
        return DeferredList(closing, consumeErrors=True).addCallback(lambda _: None)


class _Route(Service[Request, Response]):
    """The service layer of one logical name, as the router calls it per request.

    Puts the service's classifier in the request context for the shared layers, and keeps
    the ``l5d-dst-service`` value ready-encoded.
    """

    # (the loop marker too: a router-wide dict of them was one more entry per name, and its
    # key a second copy of ``dst_header``; issue 17)
    __slots__ = ("classifier", "service", "dst_header", "loop_marker", "__weakref__")

    def __init__(
        self,
        classifier: ResponseClassifier,
        service: Service[Request, Response],
        dst_header: bytes,
        loop_marker: bytes,
    ) -> None:
        self.classifier = classifier
        self.service = service
        self.dst_header = dst_header
        self.loop_marker = loop_marker

    def __call__(self, request: Request) -> Deferred[Response]:
        request.ctx[CLASSIFIER] = self.classifier
        return self.service(request)
