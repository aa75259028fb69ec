"""The supervisor's admin server: one mesh made of N workers (docs/operations.md, Workers).

The supervisor routes nothing; it serves the admin port for all its workers with the same
:class:`~l5d_twisted.admin.server.AdminServer` a single process uses, over a
:class:`WorkersTarget`:

* metrics: a :class:`~l5d_twisted.telemetry.merged.MergedMetrics` tree, refreshed from
  every worker's snapshot before each metrics render (so a scrape shows what the workers
  had counted when it arrived) and every dashboard sample interval; see
  :mod:`l5d_twisted.telemetry.merged` for how each kind of metric merges.  Process
  metrics carry a ``worker`` label;
* ``/delegator.json`` and ``/namer_state/...``: answered by one worker (every worker runs
  the same config and namers, so any can);
* ``/client_state.json``: every worker's clients, merged: a client any worker has, with
  the state and addresses of the lowest-numbered worker that has it (the namers give
  every worker the same) and ``workers``, the workers that have built it (a client is
  built by the first request for it in each worker);
* ``/requests``: every worker's recent requests, newest first;
* ``/admin/workers.json``: each worker's index, pid, state, restarts and uptime;
  ``/admin/workers/<i>/metrics.json``: one worker's own metrics (what it counted alone);
* ``/ready``: 503 from the first moment of a drain, and while no worker is running (the
  admin port listens only once every worker has started).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.server import Request as WebRequest

from l5d_twisted.admin.http_error import HttpError
from l5d_twisted.admin.requests_page import render_requests_page
from l5d_twisted.admin.server import AdminServer, _AdminPort, _arg, _send_json
from l5d_twisted.telemetry.merged import (
    MergedMetrics,
    WorkerProcessCollector,
    merge_records,
    merge_steps,
    retire,
)
from l5d_twisted.telemetry.metrics import Name
from l5d_twisted.telemetry.metrics_json import flat_metrics
from l5d_twisted.telemetry.prometheus import PrometheusExposition
from l5d_twisted.telemetry.render import reactor_cooperator, run_steps

log = Logger()

# A worker that does not answer a snapshot within this long is shown as it last answered.
SNAPSHOT_TIMEOUT_S = 5.0


class MergedView:
    """The merged tree, refreshed on demand: a refresh asked for while one runs waits for
    the next, which starts when the running one ends (at most one more), so what a caller
    gets was read after it asked."""

    def __init__(self, reactor: Any, workers: Callable[[], list[Any]]) -> None:
        self.reactor = reactor
        self.workers = workers  # the live, started workers (supervisor.WorkerHandle)
        self.tree = MergedMetrics(reactor)
        # Merging runs in steps, so the admin server answers probes meanwhile.
        self.cooperator = reactor_cooperator(reactor)
        self.process = WorkerProcessCollector()
        self.last: dict[int, list[Any]] = {}  # worker index -> its last snapshot's records
        self.retired: dict[Name, tuple[str, Any]] = {}  # what ended workers had counted
        self.refreshes = 0
        self._fetching = False
        self._forget_later: list[int] = []
        self._current: list[Deferred[None]] = []
        self._next: list[Deferred[None]] = []

    def refresh(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self._fetching:
            self._next.append(d)
        else:
            self._current.append(d)
            self._start()
        return d

    def _start(self) -> None:
        self._fetching = True
        workers = self.workers()
        fetches = [self._snapshot(w) for w in workers]
        DeferredList(fetches, consumeErrors=True).addCallback(lambda _: self._load(workers))

    def _snapshot(self, worker: Any) -> Deferred[None]:
        d: Deferred[Any] = worker.channel.request("snapshot")
        d.addTimeout(SNAPSHOT_TIMEOUT_S, self.reactor)

        def got(answer: Any) -> None:
            result, parts = answer
            self.last[worker.index] = parts
            self.process.workers[str(worker.index)] = result.get("process") or []

        def failed(failure: Any) -> None:
            log.warn(
                "worker {index} snapshot failed: {why}; showing its last",
                index=worker.index,
                why=failure.getErrorMessage(),
            )

        return d.addCallbacks(got, failed)

    def _load(self, workers: list[Any]) -> None:
        live = {w.index for w in workers}
        for index in [i for i in self.process.workers if int(i) not in live]:
            del self.process.workers[index]
        snapshots = [self.last.get(w.index, []) for w in workers]
        merged: dict[Name, tuple[str, Any]] = {}

        def steps() -> Iterator[None]:
            yield from merge_steps(snapshots, merged, self.retired)
            yield from self.tree.load_steps(merged)

        run_steps(self.cooperator, steps(), lambda: None).addCallbacks(
            self._loaded, self._load_failed
        )

    def _load_failed(self, failure: Any) -> None:
        log.failure("merging the workers' metrics failed", failure)
        self._loaded(None)

    def _loaded(self, _: Any) -> None:
        self.refreshes += 1
        self._fetching = False
        forget, self._forget_later = self._forget_later, []
        for index in forget:
            self.forget(index)
        waiting, self._current = self._current, []
        if self._next:
            self._current, self._next = self._next, []
            self._start()
        for d in waiting:
            d.callback(None)

    def forget(self, index: int) -> None:
        """A worker ended: its replacement starts counting at 0, so what it had counted (as
        of its last snapshot) is kept and added to the merged counters and totals.  During
        a merge, once it is done (that merge still reads the worker's last snapshot: counted
        twice, a counter would go up, then down)."""
        if self._fetching:
            self._forget_later.append(index)
            return
        retire(self.last.pop(index, []), self.retired)
        self.process.workers.pop(str(index), None)


class _RouterInfo:
    """What the admin server reads of a router (label, dstPrefix, dtab) from its config."""

    def __init__(self, config: Any) -> None:
        self.label = config.label
        self.dst_prefix = config.dst_prefix
        self.dtab = config.dtab
        self.interpreter = None

    def client_state(self) -> dict[str, dict[str, Any]]:
        return {}


class WorkersTarget:
    """The :class:`~l5d_twisted.admin.target.AdminTarget` of a supervisor."""

    def __init__(self, supervisor: Any, view: MergedView) -> None:
        self.supervisor = supervisor
        self.config = supervisor.config
        self.view = view
        self.metrics = view.tree
        self.routers = [_RouterInfo(r) for r in self.config.routers]
        self.namers: dict[str, Any] = {}
        self.recent_requests = None
        self.telemeters: list[Any] = []
        self.allow_shutdown = bool(self.config.admin.allow_shutdown)

    @property
    def draining(self) -> bool:
        return bool(self.supervisor.stopping or not self.supervisor.all_started)

    def config_json(self) -> dict[str, Any]:
        from l5d_twisted.config.tojson import config_json

        return config_json(self.config)

    def shutdown(self, grace_s: float) -> Deferred[None]:
        d: Deferred[None] = self.supervisor.shutdown(grace_s)
        return d

    def build_telemeters(self) -> None:
        """The config's telemeters over the merged tree, for the admin paths they serve."""
        from l5d_twisted.context import PluginContext
        from l5d_twisted.registry import TELEMETERS, load_plugins

        load_plugins()
        ctx = PluginContext(
            reactor=self.supervisor.reactor,
            stats=self.metrics.stats,
            config_dir=getattr(self.config, "source_dir", "."),
        )
        for spec in self.config.telemetry:
            telemeter = TELEMETERS.get(spec.kind).factory(spec.config, ctx)
            exposition = getattr(telemeter, "exposition", None)
            if isinstance(exposition, PrometheusExposition):
                exposition.process_registry = self.view.process.registry()
            self.telemeters.append(telemeter)

    def recent_capacity(self) -> int:
        for spec in self.config.telemetry:
            capacity = getattr(spec.config, "capacity", None)
            if spec.kind == "io.l5d.recentRequests" and isinstance(capacity, int):
                return capacity
        return 0


class WorkersAdminServer(AdminServer):
    """The admin server over a :class:`WorkersTarget`: what a single process answers from
    its own state, answered from the workers."""

    def __init__(self, target: WorkersTarget, reactor: Any, **kwargs: Any) -> None:
        super().__init__(target, reactor, **kwargs)  # type: ignore[arg-type]
        self.workers_target = target
        self.routes[b"/admin/workers.json"] = self.workers_json
        # The dashboard samples the merged tree: refresh it just before each sample.
        self._refresher: Any = None

    def listen_on(self, sock: socket.socket) -> Any:
        """Serve on a bound socket (the supervisor reserved the port before the workers)."""
        from twisted.internet.task import LoopingCall

        sock.listen(50)  # Twisted's default backlog
        sock.setblocking(False)  # as adoptStreamPort requires
        try:
            port = self.reactor.adoptStreamPort(
                sock.fileno(), sock.family, self.listening_factory()
            )
        finally:
            sock.close()  # adopted: the reactor holds its own copy
        self.sampler.start()
        host = port.getHost()
        log.info("admin server on {ip}:{port}", ip=host.host, port=host.port)
        self._refresher = LoopingCall(self.workers_target.view.refresh)
        self._refresher.clock = self.reactor
        self._refresher.start(max(0.5, self.sampler.interval_s - 0.5), now=True)
        return _AdminPort(port, self.sampler.stop)

    def stop_refreshing(self) -> None:
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()

    # -- metrics: refreshed before each render ---------------------------------------------

    def _render(self, request: WebRequest, steps: Any, out: list[bytes]) -> Deferred[list[bytes]]:
        d: Deferred[Any] = self.workers_target.view.refresh()
        d.addCallback(lambda _: super(WorkersAdminServer, self)._render(request, steps, out))
        return d

    def prometheus(self, request: WebRequest) -> Deferred[list[bytes]]:
        if self._default_prometheus is None:
            exposition = PrometheusExposition(self.target.metrics, process_metrics=False)
            exposition.process_registry = self.workers_target.view.process.registry()
            self._default_prometheus = exposition
        return self._prometheus(request, self._default_prometheus)

    def _prefix_handler(self, path: bytes) -> Any:
        if path.startswith(b"/admin/workers/") and path.endswith(b"/metrics.json"):
            return self.worker_metrics_json
        return super()._prefix_handler(path)

    def worker_metrics_json(self, request: WebRequest) -> Deferred[bytes]:
        raw = (request.path or b"")[len(b"/admin/workers/") : -len(b"/metrics.json")]
        worker = self._worker(raw.decode("latin-1"))
        d: Deferred[Any] = worker.channel.request("snapshot")
        d.addTimeout(SNAPSHOT_TIMEOUT_S, self.reactor)

        def render(answer: Any) -> bytes:
            tree = MergedMetrics(self.reactor)
            tree.load(merge_records([answer[1]]))
            return _send_json(request, flat_metrics(tree, _arg(request, "q")))

        return d.addCallback(render)

    def _worker(self, text: str) -> Any:
        for worker in self.workers_target.supervisor.live_workers():
            if str(worker.index) == text:
                return worker
        known = ", ".join(str(w.index) for w in self.workers_target.supervisor.live_workers())
        raise HttpError(404, f"no running worker {text!r}; running: {known or 'none'}\n")

    def _any_worker(self) -> Any:
        workers = self.workers_target.supervisor.live_workers()
        if not workers:
            raise HttpError(503, "no worker is running\n")
        return workers[0]

    # -- answered by the workers -------------------------------------------------------------

    def client_state_json(self, request: WebRequest) -> Deferred[bytes]:  # type: ignore[override]
        workers = self.workers_target.supervisor.live_workers()
        asks = [w.channel.request("client_state") for w in workers]

        def merge(results: list[tuple[bool, Any]]) -> bytes:
            state: dict[str, dict[str, Any]] = {r.label: {} for r in self.target.routers}
            for worker, (ok, answer) in zip(workers, results):
                if not ok:
                    continue
                for label, clients in (answer[0] or {}).items():
                    merged = state.setdefault(label, {})
                    for client_id, client in clients.items():
                        if client_id not in merged:
                            merged[client_id] = {**client, "workers": []}
                        merged[client_id]["workers"].append(worker.index)
            return _send_json(request, state)

        return DeferredList(asks, consumeErrors=True).addCallback(merge)

    def namer_state(self, request: WebRequest) -> Deferred[bytes]:  # type: ignore[override]
        raw = (request.path or b"")[len(b"/namer_state/") :].decode("utf-8", "replace")
        prefix = raw[: -len(".json")] if raw.endswith(".json") else raw
        d: Deferred[Any] = self._any_worker().channel.request("namer_state", prefix=prefix)
        return d.addCallback(lambda answer: _send_json(request, answer[0]))

    def delegator_json(self, request: WebRequest) -> Deferred[bytes]:
        d: Deferred[Any] = self._any_worker().channel.request(
            "delegator",
            router=_arg(request, "router"),
            path=_arg(request, "path") or "",
            dtab=_arg(request, "dtab") or "",
        )
        return d.addCallback(lambda answer: _send_json(request, answer[0]))

    def _recent_records(self) -> Deferred[list[Any] | None]:
        from l5d_twisted.telemetry.recent import RequestRecord

        capacity = self.workers_target.recent_capacity()
        workers = self.workers_target.supervisor.live_workers()
        asks = [w.channel.request("recent") for w in workers]

        def merge(results: list[tuple[bool, Any]]) -> list[Any] | None:
            if not capacity:
                return None
            records = []
            for ok, answer in results:
                for item in (answer[0] or []) if ok else []:
                    try:
                        records.append(RequestRecord(**item))
                    except TypeError:
                        continue
            records.sort(key=lambda r: r.time, reverse=True)
            return records[:capacity]

        return DeferredList(asks, consumeErrors=True).addCallback(merge)

    def requests_json(self, request: WebRequest) -> Deferred[bytes]:  # type: ignore[override]
        def send(records: list[Any] | None) -> bytes:
            return _send_json(request, [r.to_json() for r in records or []])

        return self._recent_records().addCallback(send)

    def requests_page(self, request: WebRequest) -> Deferred[bytes]:  # type: ignore[override]
        web: Any = request  # twisted.web is untyped

        def page(records: list[Any] | None) -> bytes:
            web.setHeader(b"content-type", b"text/html; charset=utf-8")
            return render_requests_page(records)

        return self._recent_records().addCallback(page)

    # -- supervisor pages ----------------------------------------------------------------------

    def ready(self, request: WebRequest) -> bytes:
        """Also 503 while no worker is running (all of them died and are being replaced)."""
        supervisor = self.workers_target.supervisor
        if not supervisor.stopping and not supervisor.live_workers():
            web: Any = request  # twisted.web is untyped
            web.setHeader(b"content-type", b"text/plain")
            web.setHeader(b"cache-control", b"no-store")
            web.setResponseCode(503)
            return b"no worker running"
        return super().ready(request)

    def workers_json(self, request: WebRequest) -> bytes:
        now = time.monotonic()
        supervisor = self.workers_target.supervisor
        rows = []
        for worker in supervisor.handles():
            rows.append(
                {
                    "index": worker.index,
                    "pid": worker.pid,
                    "state": worker.state,
                    "restarts": supervisor.restarts.get(worker.index, 0),
                    "uptime_s": round(now - worker.started_at, 3) if worker.started_at else None,
                }
            )
        return _send_json(
            request,
            {"workers": rows, "supervisor_pid": supervisor.pid, "count": supervisor.count},
        )
