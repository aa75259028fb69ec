"""``io.l5d.k8s`` dtab storage: each namespace's dtab is a Kubernetes custom resource.

As namerd's k8s storage: an object of kind ``DTab`` in group ``l5d.io`` (version
``v1alpha1``), named by the dtab namespace, in one Kubernetes namespace, with the rules in
``dentries: [{prefix, dst}]``; the object's ``metadata.resourceVersion`` is the dtab's
version (its UTF-8 bytes; the ETag is their base64).  namerd used a ThirdPartyResource; this
project's chart installs the CustomResourceDefinition ``dtabs.l5d.io``
(apiextensions.k8s.io/v1) with the same group, version and fields.

Writes go to the API and answer when it does: a create of an existing name is 409 there
(:class:`~.store.NamespaceExists`); an update is a PUT carrying the version as
``metadata.resourceVersion``, which the API refuses with 409 Conflict when the object
changed meanwhile (:class:`~.store.VersionMismatch`, 412 at namerd's HTTP API): the
compare-and-set is the API server's, so it holds across several namerd replicas.

Reads are served from a cache kept by one list+watch loop (as the namer's watcher): list,
watch from the list's resourceVersion, resume after a stream ends, list again after 410
Gone, back off (jittered) after an error.  While the API is away the cache keeps the last
known dtabs, so namerd goes on binding with them.  Watch lines are bounded by the API
client (``MAX_LINE_BYTES``) and the cache by ``MAX_NAMESPACES``.

``namespaces`` (an l5d-twisted key) seeds dtabs at start: each is created once the first
list shows it absent, never overwriting one that exists (so a restart or a second replica
changes nothing).
"""

from __future__ import annotations

import json
import random
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from l5d_twisted.k8s.api import ApiError, KubernetesApi, WatchHandle
from l5d_twisted.k8s.backoff import JitteredBackoff
from l5d_twisted.namerd.store import (
    MAX_NAMESPACES,
    DtabStoreError,
    NamespaceExists,
    NamespaceNotFound,
    StoreFull,
    VersionedDtab,
    VersionMismatch,
)
from l5d_twisted.naming.dtab import Dtab, DtabError, show_tree
from l5d_twisted.naming.var import Var

log = Logger()

GROUP = "l5d.io"
VERSION = "v1alpha1"
KIND = "DTab"
PLURAL = "dtabs"
# An unconditional write (PUT without If-Match) reads the version and writes with it; it
# gives up after this many conflicts with other writers.
PUT_ATTEMPTS = 5


class StorageUnavailable(DtabStoreError):
    """The Kubernetes API refused or did not answer a write."""


class _Gone(Exception):
    pass


class _NsVar(Var["VersionedDtab | None"]):
    def __init__(self, store: K8sDtabStore, ns: str) -> None:
        super().__init__(None)
        self._store = store
        self._ns = ns

    def _on_last_observer_gone(self) -> None:
        if self._store._vars.get(self._ns) is self and self.sample() is None:
            del self._store._vars[self._ns]


def dtab_object(name: str, dtab: Dtab, resource_version: str | None = None) -> dict[str, Any]:
    """The DTab custom resource for a namespace's dtab."""
    metadata: dict[str, Any] = {"name": name}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "dentries": [{"prefix": d.prefix.show(), "dst": show_tree(d.dst)} for d in dtab.dentries],
    }


def parse_dtab_object(obj: Any) -> tuple[str, VersionedDtab]:
    """(name, versioned dtab) of a DTab object; ValueError if it is not one."""
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError("no metadata")
    name, rv = metadata.get("name"), metadata.get("resourceVersion")
    if not isinstance(name, str) or not name or not isinstance(rv, str) or not rv:
        raise ValueError("no metadata.name or metadata.resourceVersion")
    entries = obj.get("dentries") or []
    if not isinstance(entries, list):
        raise ValueError("dentries is not a list")
    rules = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("a dentry is not an object")
        prefix, dst = entry.get("prefix"), entry.get("dst")
        if not isinstance(prefix, str) or not isinstance(dst, str):
            raise ValueError("a dentry needs prefix and dst strings")
        rules.append(f"{prefix} => {dst}")
    try:
        dtab = Dtab.read(";".join(rules))
    except DtabError as e:
        raise ValueError(f"invalid dentries: {e}") from None
    return name, VersionedDtab(dtab, rv.encode("utf-8"))


class K8sDtabStore:
    """The :class:`~.store.DtabStore` contract over DTab objects of one Kubernetes namespace."""

    def __init__(
        self,
        api: KubernetesApi,
        namespace: str,
        reactor: Any,
        seed: dict[str, Dtab] | None = None,
        rng: random.Random | None = None,
        watch_timeout_s: int = 300,
        idle_timeout_s: float = 330.0,
        max_namespaces: int = MAX_NAMESPACES,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.reactor = reactor
        self._seed = dict(seed or {})
        self._max = max_namespaces
        self._watch_timeout_s = watch_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._backoff = JitteredBackoff(rng or random.Random(), base_s=0.2, max_s=30.0)
        self._vars: dict[str, _NsVar] = {}
        self._names: Var[frozenset[str]] = Var(frozenset())
        self._rv: str | None = None
        self._need_list = True
        self._stopped = False
        self._loop: Deferred[None] | None = None
        self._watch: WatchHandle | None = None
        self._pending: Deferred[Any] | None = None
        self.synced = False
        self.last_error: str | None = None
        self.path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._loop is None and not self._stopped:
            self._loop = Deferred.fromCoroutine(self._run())
            self._loop.addErrback(lambda f: log.failure("dtab watch loop crashed", f))

    def stop(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.abort(CancelledError("store stopped"))
        if self._pending is not None and not self._pending.called:
            self._pending.cancel()

    # --- reads -------------------------------------------------------------------------
    def list(self) -> Var[frozenset[str]]:
        return self._names

    def get(self, ns: str) -> VersionedDtab | None:
        var = self._vars.get(ns)
        return var.sample() if var is not None else None

    def observe(self, ns: str) -> Var[VersionedDtab | None]:
        var = self._vars.get(ns)
        if var is None:
            var = self._vars[ns] = _NsVar(self, ns)
        return var

    # --- writes ------------------------------------------------------------------------
    def create(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        if self.get(ns) is None and len(self._names.sample()) >= self._max:
            return Deferred.fromCoroutine(_raise(StoreFull(self._max)))
        return self._write(ns, "POST", self.path, dtab_object(ns, dtab))

    def update(self, ns: str, dtab: Dtab, version: bytes) -> Deferred[VersionedDtab]:
        try:
            rv = version.decode("utf-8")
        except UnicodeDecodeError:
            return Deferred.fromCoroutine(_raise(VersionMismatch(ns)))
        return self._write(ns, "PUT", f"{self.path}/{ns}", dtab_object(ns, dtab, rv))

    def put(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        async def put() -> VersionedDtab:
            # The API server refuses an update of a custom resource without a
            # resourceVersion (no unconditional update): read the object's, write with it,
            # and read again if another writer came in between.
            for _ in range(PUT_ATTEMPTS):
                try:
                    current = await self.api.get_json(f"{self.path}/{ns}")
                except ApiError as e:
                    if e.status != 404:
                        raise StorageUnavailable(
                            f"the Kubernetes API refused a read: {e}"
                        ) from None
                    try:
                        return await self.create(ns, dtab)
                    except NamespaceExists:
                        continue
                except CancelledError:
                    raise
                except Exception as e:
                    raise StorageUnavailable(f"the Kubernetes API did not answer: {e}") from None
                metadata = current.get("metadata")
                rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
                if not isinstance(rv, str):
                    raise StorageUnavailable("the Kubernetes API answered a DTab without a version")
                try:
                    return await self.update(ns, dtab, rv.encode("utf-8"))
                except (VersionMismatch, NamespaceNotFound):
                    continue
            raise StorageUnavailable(f"the dtab {ns} kept changing during {PUT_ATTEMPTS} writes")

        return Deferred.fromCoroutine(put())

    def delete(self, ns: str) -> Deferred[None]:
        async def delete() -> None:
            await self._call(ns, "DELETE", f"{self.path}/{ns}", None)
            self._set(ns, None)

        return Deferred.fromCoroutine(delete())

    def _write(self, ns: str, method: str, path: str, body: Any) -> Deferred[VersionedDtab]:
        async def write() -> VersionedDtab:
            answer = await self._call(ns, method, path, body)
            try:
                name, versioned = parse_dtab_object(answer)
            except ValueError as e:
                raise StorageUnavailable(f"the Kubernetes API answered a write with {e}") from None
            self._set(name, versioned)  # read your writes before the watch event arrives
            return versioned

        return Deferred.fromCoroutine(write())

    async def _call(self, ns: str, method: str, path: str, body: Any) -> dict[str, Any]:
        try:
            return await self.api.request_json(method, path, json_body=body)
        except ApiError as e:
            if e.status == 409:
                raise (NamespaceExists(ns) if method == "POST" else VersionMismatch(ns)) from None
            if e.status == 404:
                raise NamespaceNotFound(ns) from None
            raise StorageUnavailable(f"the Kubernetes API refused the write: {e}") from None
        except CancelledError:
            raise
        except Exception as e:
            raise StorageUnavailable(f"the Kubernetes API did not answer: {e}") from None

    # --- the cache ---------------------------------------------------------------------
    def _set(self, ns: str, value: VersionedDtab | None) -> None:
        var = self._vars.get(ns)
        if var is None:
            if value is None:
                return
            if len(self._names.sample()) >= self._max:
                log.warn("dtab {ns} not cached: {n} namespaces already", ns=ns, n=self._max)
                return
            var = self._vars[ns] = _NsVar(self, ns)
        if var.sample() != value:
            var.update(value)
        if value is None and not var.observed:
            del self._vars[ns]
        names = frozenset(n for n, v in self._vars.items() if v.sample() is not None)
        if names != self._names.sample():
            self._names.update(names)

    def _replace_all(self, fresh: dict[str, VersionedDtab]) -> None:
        for ns in [n for n in self._vars if n not in fresh]:
            self._set(ns, None)
        for ns, versioned in fresh.items():
            self._set(ns, versioned)

    # --- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        gone_streak = 0
        while not self._stopped:
            try:
                if self._need_list:
                    await self._list()
                    if self._seed:
                        await self._plant()
                    self.synced = True  # namerd's API answers from here on
                await self._watch_once()
                gone_streak = 0
            except _Gone:
                self._need_list = True
                gone_streak += 1
                if gone_streak > 1:
                    await self._pause("410 Gone again right after a list")
            except CancelledError:
                if self._stopped:
                    return
                await self._pause("cancelled")
            except Exception as e:
                if self._stopped:
                    return
                await self._pause(str(e) or type(e).__name__)

    async def _pause(self, error: str) -> None:
        self.last_error = error
        delay = self._backoff.next_delay()
        log.warn(
            "dtab storage {api}: {error}; retrying in {delay:.2f}s with the last known dtabs",
            api=self.api.access.base_url,
            error=error,
            delay=delay,
        )
        self._pending = deferLater(self.reactor, delay, lambda: None)
        try:
            await self._pending
        except CancelledError:
            pass
        finally:
            self._pending = None

    async def _list(self) -> None:
        self._pending = ensureDeferred(self.api.get_json(self.path))
        try:
            body = await self._pending
        finally:
            self._pending = None
        items = body.get("items") or []
        if not isinstance(items, list):
            raise ValueError("the DTab list's items is not a list")
        fresh: dict[str, VersionedDtab] = {}
        for item in items:
            try:
                name, versioned = parse_dtab_object(item)
            except ValueError as e:
                log.warn("skipping a malformed DTab object: {error}", error=str(e))
                continue
            fresh[name] = versioned
        metadata = body.get("metadata")
        rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        self._rv = rv if isinstance(rv, str) and rv else None
        self._replace_all(fresh)
        self._need_list = False
        self.last_error = None

    async def _plant(self) -> None:
        seed, self._seed = self._seed, {}
        for ns, dtab in seed.items():
            if self.get(ns) is not None:
                continue
            try:
                await self.create(ns, dtab)
                log.info("dtab {ns} created from the config (it was absent)", ns=ns)
            except NamespaceExists:
                pass  # another replica was first
            except DtabStoreError as e:
                self._seed[ns] = dtab  # try again after the next list
                log.warn("could not create dtab {ns}: {error}", ns=ns, error=str(e))

    async def _watch_once(self) -> None:
        if self._stopped:
            return
        params = {"watch": "true", "timeoutSeconds": str(self._watch_timeout_s)}
        if self._rv:
            params["resourceVersion"] = self._rv
        self._events = 0
        handle = self.api.watch(self.path, params, self._on_line, self._idle_timeout_s)
        self._watch = handle
        started = self.reactor.seconds()
        try:
            await handle.done
        except ApiError as e:
            if e.status == 410:
                raise _Gone() from None
            raise
        finally:
            self._watch = None
        if self._events == 0 and self.reactor.seconds() - started < 1.0:
            raise ConnectionError("watch stream closed immediately")
        self._backoff.reset()

    def _on_line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                raise ValueError("not a watch event")
        except ValueError as e:
            log.warn("skipping a malformed watch line: {error}", error=str(e))
            return
        kind, obj = event.get("type"), event["object"]
        self._events += 1
        if self._events == 1 and kind != "ERROR":
            self._backoff.reset()
        if kind == "ERROR":
            code = obj.get("code")
            error: Exception = (
                _Gone()
                if code == 410
                else ApiError(code if isinstance(code, int) else 500, str(obj.get("message")))
            )
            if self._watch is not None:
                self._watch.abort(error)
            return
        metadata = obj.get("metadata")
        rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if isinstance(rv, str) and rv:
            self._rv = rv
        if kind == "BOOKMARK":
            return
        if kind == "DELETED":
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(name, str):
                self._set(name, None)
            return
        if kind in ("ADDED", "MODIFIED"):
            try:
                name, versioned = parse_dtab_object(obj)
            except ValueError as e:
                log.warn("skipping a malformed DTab event: {error}", error=str(e))
                return
            self._set(name, versioned)

    def state(self) -> dict[str, Any]:
        return {
            "api": self.api.access.show(),
            "path": self.path,
            "synced": self.synced,
            "resourceVersion": self._rv,
            "lastError": self.last_error,
        }


async def _raise(error: Exception) -> Any:
    raise error
