"""One list+watch of a namespace's endpoints, shared by every name in that namespace.

The loop, and why each step is there:

1. **List** (EndpointSlices; if the cluster does not serve them (404) or RBAC does not
   allow them (403), v1 Endpoints)
   and remember the list's ``resourceVersion``.
2. **Watch** from that version with ``allowWatchBookmarks``; each event is applied as it
   arrives, so a removed endpoint leaves the bound set at once.  BOOKMARK events only
   advance the version.
3. When the stream ends (server timeout) or breaks (dropped connection, 5xx, idle):
   resume the watch from the last version, after a jittered exponential backoff if it
   failed.  Nothing is forgotten meanwhile: names keep their last known addresses.
4. **410 Gone** (as an HTTP status or an ERROR event: the version is too old) and the
   periodic **resync**: list again and apply only the difference, so no name flaps to
   empty the way linkerd 1's did after "resource version too old".

Malformed lines and objects are logged, counted and skipped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from l5d_twisted.k8s.api import ApiError, KubernetesApi, WatchHandle
from l5d_twisted.k8s.backoff import JitteredBackoff
from l5d_twisted.k8s.linediff import ENDPOINTS_LINES, SLICE_LINES, LineDiff, Spec
from l5d_twisted.k8s.objects import (
    MalformedObject,
    ServiceShard,
    parse_endpoint_slice,
    parse_endpoints,
    parse_service,
)
from l5d_twisted.naming.var import Closable
from l5d_twisted.telemetry.stats import NULL_STATS, StatsReceiver

log = Logger()


@dataclass(frozen=True)
class ResourceKind:
    name: str
    path: str  # with {namespace}
    parse: Callable[[Any], ServiceShard]
    lines: Spec | None = None  # the endpoint lists a large object's lines are diffed by


ENDPOINT_SLICES = ResourceKind(
    "endpointslices",
    "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
    parse_endpoint_slice,
    SLICE_LINES,
)
ENDPOINTS = ResourceKind(
    "endpoints", "/api/v1/namespaces/{namespace}/endpoints", parse_endpoints, ENDPOINTS_LINES
)
SERVICES = ResourceKind("services", "/api/v1/namespaces/{namespace}/services", parse_service)


@dataclass(frozen=True)
class WatchSettings:
    watch_timeout_s: int = 300  # asked of the server (timeoutSeconds)
    idle_timeout_s: float = 330.0  # silence after which the stream is presumed dead
    resync_s: float = 300.0  # periodic full re-list
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0


class Gone(Exception):
    """The watched resourceVersion is too old (410): list again."""


class _Restart(Exception):
    """Internal: the resync timer ended a watch so that the loop lists again."""


class NamespaceWatcher:
    """Endpoints of one namespace, kept live; listeners are told per service."""

    def __init__(
        self,
        api: KubernetesApi,
        namespace: str,
        reactor: Any,
        rng: random.Random | None = None,
        settings: WatchSettings | None = None,
        stats: StatsReceiver = NULL_STATS,
        prefer_slices: bool = True,
        kind: ResourceKind | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.reactor = reactor
        self.settings = settings or WatchSettings()
        self.kind = kind or (ENDPOINT_SLICES if prefer_slices else ENDPOINTS)
        self._backoff = JitteredBackoff(
            rng or random.Random(), self.settings.backoff_base_s, self.settings.backoff_max_s
        )
        self._objects: dict[str, ServiceShard] = {}  # by object name
        self._by_service: dict[str, dict[str, ServiceShard]] = {}  # service -> name -> shard
        self._listeners: dict[str, dict[int, Callable[[], None]]] = {}
        self._next_listener = 0
        self.synced = False
        self.resource_version: str | None = None
        self.connection = "idle"
        self.last_error: str | None = None
        self._need_list = True
        self._stopped = False
        self._loop: Deferred[None] | None = None
        self._sleep: Deferred[None] | None = None
        self._listing: Deferred[dict[str, Any]] | None = None
        self._watch: WatchHandle | None = None
        self._events_in_watch = 0
        self._gone_streak = 0
        self._resync_call: Any = None
        self._line_diff: LineDiff | None = None
        self._stats = stats
        self._malformed = stats.counter("malformed")
        self._relists = stats.counter("lists")
        self._watches = stats.counter("watches")
        self._errors = stats.counter("errors")

    # --- what names read ---------------------------------------------------------------

    def shards_for(self, service: str) -> list[ServiceShard]:
        return list(self._by_service.get(service, {}).values())

    def listen(self, service: str, callback: Callable[[], None]) -> Closable:
        """Call ``callback()`` whenever ``service``'s shards change (or on first sync)."""
        key = self._next_listener
        self._next_listener += 1
        self._listeners.setdefault(service, {})[key] = callback

        def close() -> None:
            listeners = self._listeners.get(service, {})
            listeners.pop(key, None)
            if not listeners:
                self._listeners.pop(service, None)

        return Closable(close)

    def _notify(self, services: set[str]) -> None:
        for service in services:
            for callback in list(self._listeners.get(service, {}).values()):
                try:
                    callback()
                except Exception:
                    log.failure(
                        "listener of {namespace}/{service} failed",
                        namespace=self.namespace,
                        service=service,
                    )

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None and not self._stopped:
            self._loop = Deferred.fromCoroutine(self._run())
            self._loop.addErrback(
                lambda f: log.failure(
                    "watch loop of {namespace} crashed", f, namespace=self.namespace
                )
            )
            self._schedule_resync()

    def stop(self) -> None:
        self._stopped = True
        self.connection = "stopped"
        if self._resync_call is not None and self._resync_call.active():
            self._resync_call.cancel()
        if self._watch is not None:
            self._watch.abort(CancelledError("watcher stopped"))
        # An unfinished list would hold its connection and timeout timer until the API answers.
        for pending in (self._sleep, self._listing):
            if pending is not None and not pending.called:
                pending.cancel()

    def _schedule_resync(self) -> None:
        if self.settings.resync_s > 0:
            self._resync_call = self.reactor.callLater(self.settings.resync_s, self._resync)

    def _resync(self) -> None:
        """Re-list now and then (a watch can silently miss events), then watch again."""
        self._need_list = True
        if self._watch is not None:
            self._watch.abort(_Restart())
        self._schedule_resync()

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopped:
            try:
                if self._need_list:
                    await self._list()
                await self._watch_once()
            except Gone:
                log.info(
                    "{namespace}/{kind}: resourceVersion {rv} too old, listing again",
                    namespace=self.namespace,
                    kind=self.kind.name,
                    rv=self.resource_version,
                )
                self._need_list = True
                self._gone_streak += 1
                if self._gone_streak > 1:
                    # 410 again before any event: do not spin on a confused API server.
                    await self._pause("410 Gone again right after a list")
            except _Restart:
                continue
            except CancelledError:
                if self._stopped:
                    return
                await self._pause("cancelled")
            except Exception as e:
                if self._stopped:
                    return
                await self._pause(_describe(e))

    async def _pause(self, error: str) -> None:
        self._errors.incr()
        self.last_error = error
        if not self.synced:
            # Listeners that can do without this resource (numbered ports without
            # Services) should stop waiting for it.
            self._notify(set(self._listeners))
        delay = self._backoff.next_delay()
        self.connection = "backoff"
        log.warn(
            "{namespace}/{kind}: {error}; retrying in {delay:.2f}s with last known endpoints",
            namespace=self.namespace,
            kind=self.kind.name,
            error=error,
            delay=delay,
        )
        self._sleep = deferLater(self.reactor, delay, lambda: None)
        try:
            await self._sleep
        except CancelledError:
            pass
        finally:
            self._sleep = None

    async def _list(self) -> None:
        self.connection = "listing"
        try:
            body = await self._get_list()
        except ApiError as e:
            if e.status in (403, 404) and self.kind is ENDPOINT_SLICES:
                # Not served (old cluster) or not allowed (RBAC granting only Endpoints).
                log.info(
                    "{namespace}: EndpointSlices not available ({error}), falling back to v1 Endpoints",
                    namespace=self.namespace,
                    error=str(e),
                )
                self.kind = ENDPOINTS
                body = await self._get_list()
            else:
                raise
        self._relists.incr()
        items = body.get("items")
        if items is not None and not isinstance(items, list):
            raise MalformedObject("list items is not a list")
        fresh: dict[str, ServiceShard] = {}
        for item in items or []:
            shard = self._parse(item)
            if shard is not None:
                fresh[shard.name] = shard
        metadata = body.get("metadata")
        rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        self.resource_version = rv if isinstance(rv, str) and rv else None
        if self._line_diff is not None:
            self._line_diff.keep_only(fresh)
        self._replace_all(fresh)
        self._need_list = False
        self._backoff.reset()
        self.last_error = None
        if not self.synced:
            self.synced = True
            self._notify(set(self._listeners))

    async def _get_list(self) -> dict[str, Any]:
        """The list of the current kind, cancellable by :meth:`stop`."""
        self._listing = ensureDeferred(
            self.api.get_json(self.kind.path.format(namespace=self.namespace))
        )
        try:
            return await self._listing
        finally:
            self._listing = None

    def _replace_all(self, fresh: dict[str, ServiceShard]) -> None:
        """Swap in a new list, telling only the services whose shards changed."""
        changed: set[str] = set()
        for name in set(self._objects) | set(fresh):
            old, new = self._objects.get(name), fresh.get(name)
            if old != new:
                changed.update(s.service for s in (old, new) if s is not None)
            elif old is not None:
                fresh[name] = old  # the same instance: names skip objects they already resolved
        self._objects = fresh
        self._by_service = {}
        for shard in fresh.values():
            self._by_service.setdefault(shard.service, {})[shard.name] = shard
        self._notify(changed)

    async def _watch_once(self) -> None:
        if self._stopped:
            return  # stopped while the list was in flight
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.settings.watch_timeout_s),
        }
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        self._events_in_watch = 0
        self._watches.incr()
        self.connection = "watching"
        handle = self.api.watch(
            self.kind.path.format(namespace=self.namespace),
            params,
            self._on_line,
            self.settings.idle_timeout_s,
        )
        self._watch = handle
        started = self.reactor.seconds()
        try:
            await handle.done
        except ApiError as e:
            if e.status == 410:
                raise Gone() from None
            raise
        finally:
            self._watch = None
        # The server ended the stream (its timeout): resume at once, unless it keeps
        # closing immediately with nothing to say, which would spin.
        if self._events_in_watch == 0 and self.reactor.seconds() - started < 1.0:
            raise ConnectionError("watch stream closed immediately")
        self._backoff.reset()

    # --- events ------------------------------------------------------------------------

    def _parse(self, obj: Any) -> ServiceShard | None:
        try:
            return self.kind.parse(obj)
        except MalformedObject as e:
            self._malformed.incr()
            log.warn(
                "{namespace}/{kind}: skipping malformed object: {error}",
                namespace=self.namespace,
                kind=self.kind.name,
                error=str(e),
            )
            return None

    def _lines(self) -> LineDiff | None:
        diff = self._line_diff
        if diff is None or diff.spec is not self.kind.lines:
            spec = self.kind.lines
            diff = self._line_diff = LineDiff(spec) if spec is not None else None
        return diff

    def _on_line(self, line: bytes) -> None:
        try:
            diff = self._lines()
            # (a large object's endpoint lists read only where they changed; else as usual)
            event = diff.decode(line) if diff is not None else None
            if event is None:
                event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                raise ValueError("not a watch event object")
            kind = event.get("type")
            obj = event["object"]
        except ValueError as e:
            self._malformed.incr()
            log.warn(
                "{namespace}/{kind}: skipping malformed watch line ({error}): {line}",
                namespace=self.namespace,
                kind=self.kind.name,
                error=str(e),
                line=line[:200].decode("utf-8", "replace"),
            )
            return
        self._events_in_watch += 1
        if self._events_in_watch == 1 and kind != "ERROR":
            self._backoff.reset()  # the stream works: a later drop retries quickly again
            self._gone_streak = 0
        if kind == "ERROR":
            code = obj.get("code")
            handle = self._watch
            error: Exception = (
                Gone()
                if code == 410
                else ApiError(
                    code if isinstance(code, int) else 500, str(obj.get("message", "watch error"))
                )
            )
            if handle is not None:
                handle.abort(error)
            return
        self._advance(obj)
        if kind == "BOOKMARK":
            return
        if kind in ("ADDED", "MODIFIED"):
            shard = self._parse(obj)
            if shard is not None:
                self._upsert(shard)
        elif kind == "DELETED":
            metadata = obj.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            old = self._objects.pop(name, None) if isinstance(name, str) else None
            if isinstance(name, str) and self._line_diff is not None:
                self._line_diff.forget(name)
            if old is not None:
                self._unindex(old)
                self._notify({old.service})
        else:
            self._malformed.incr()
            log.warn(
                "{namespace}/{kind}: skipping watch event of unknown type {type!r}",
                namespace=self.namespace,
                kind=self.kind.name,
                type=kind,
            )

    def _advance(self, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata")
        rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if isinstance(rv, str) and rv:
            self.resource_version = rv

    def _upsert(self, shard: ServiceShard) -> None:
        old = self._objects.get(shard.name)
        if old == shard:
            return
        if old is not None:
            self._unindex(old)
        self._objects[shard.name] = shard
        self._by_service.setdefault(shard.service, {})[shard.name] = shard
        self._notify({s.service for s in (old, shard) if s is not None})

    def _unindex(self, shard: ServiceShard) -> None:
        shards = self._by_service.get(shard.service)
        if shards is not None:
            shards.pop(shard.name, None)
            if not shards:
                del self._by_service[shard.service]

    # --- /namer_state ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        services: dict[str, dict[str, list[str]]] = {}
        for shard in sorted(self._objects.values(), key=lambda s: s.name):
            ports = services.setdefault(shard.service, {})
            for spec in shard.service_ports:
                ports.setdefault(spec.name or str(spec.port), []).append(
                    f"service port {spec.port}"
                )
            for subset in shard.subsets:
                for spec in subset.ports:
                    addrs = ports.setdefault(spec.name or str(spec.port), [])
                    addrs.extend(
                        f"{e.ip}:{spec.port}" + ("" if e.ready else " (not ready)")
                        for e in subset.endpoints
                    )
        return {
            "resource": self.kind.name,
            "resourceVersion": self.resource_version,
            "connection": self.connection,
            "synced": self.synced,
            "lastError": self.last_error,
            "services": {
                svc: {p: sorted(set(a)) for p, a in ports.items()}
                for svc, ports in sorted(services.items())
            },
        }


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if not isinstance(e, ApiError) else text
