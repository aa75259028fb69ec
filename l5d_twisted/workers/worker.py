"""One worker process of ``workers: N``: the routers of the config, without the admin server.

Started by the supervisor (:mod:`.supervisor`) as ``l5d-twisted run --worker-fd 3 CONFIG``
with its end of the control channel (:mod:`.control`) on fd 3.  It waits for the ``start``
request, which carries the config text the supervisor read (every worker runs the same
config, even if the file changes meanwhile), then builds the mesh with
:class:`~l5d_twisted.mesh.Mesh` (``serve_admin=False``) with ``reusePort`` on every router
server, so that all workers listen on the same ports and the kernel spreads new
connections across them.  It answers the supervisor's requests:

==================  ==============================================================
``start``           config, index, admin address: build and start; answers the ports
``snapshot``        its metrics (parts: :func:`~l5d_twisted.telemetry.merged.snapshot_steps`)
                    and process metrics; made in steps between requests
``client_state``    per router, each client's state (``/client_state.json``)
``namer_state``     what a namer knows
``delegator``       how a path binds (``/delegator.json``)
``recent``          its recent requests (``io.l5d.recentRequests``)
``shutdown``        drain and exit (``grace_s`` optional), as on SIGTERM; once
``hurry``           cut the drain period short (the second SIGTERM)
==================  ==============================================================

A worker also drains on its own SIGTERM or SIGINT (Ctrl-C reaches the whole process
group).  If the supervisor goes away (the channel closes, or the kernel's parent-death
signal, SIGTERM, arrives) the worker drains and exits: no worker outlives its supervisor.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from l5d_twisted.workers.control import ChannelFactory, ControlChannel

log = Logger()

CONTROL_FD = 3
WORKER_ENV = "L5D_WORKER"  # the worker's index, set by the supervisor (for log lines)


def set_parent_death_signal(signum: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``signum`` when the supervisor dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def worker_config(config: Any, admin_ip: str, admin_port: int) -> Any:
    """The config a worker runs: every router server with ``reusePort``, the supervisor's
    admin address (a request dtab must not reach it)."""
    routers = []
    for router in config.routers:
        servers = tuple(
            dataclasses.replace(
                server,
                socket_options=dataclasses.replace(server.socket_options, reuse_port=True),
            )
            for server in router.servers
        )
        routers.append(dataclasses.replace(router, servers=servers))
    admin = dataclasses.replace(config.admin, ip=admin_ip, port=admin_port)
    return dataclasses.replace(config, routers=tuple(routers), admin=admin)


class Worker:
    """The worker side of the control channel, around one :class:`~l5d_twisted.mesh.Mesh`."""

    def __init__(self, reactor: Any, stop_reactor: Any) -> None:
        self.reactor = reactor
        self.stop_reactor = stop_reactor
        self.mesh: Any = None
        self.index = -1
        self.exit_code = 0
        self.channel = ControlChannel(
            handlers={
                "start": self.start,
                "snapshot": self.snapshot,
                "client_state": self.client_state,
                "namer_state": self.namer_state,
                "delegator": self.delegator,
                "recent": self.recent,
                "shutdown": self.shutdown_op,
                "hurry": self.hurry_op,
            },
            on_lost=self.supervisor_lost,
        )
        self._process_registry: Any = None

    def adopt(self, fd: int = CONTROL_FD) -> None:
        self.reactor.adoptStreamConnection(fd, socket.AF_UNIX, ChannelFactory(self.channel))
        os.close(fd)  # adopted: the reactor holds its own copy

    # -- lifecycle --------------------------------------------------------------------

    def start(self, args: dict[str, Any], part: Any) -> Deferred[dict[str, Any]]:
        from l5d_twisted.config import load_config
        from l5d_twisted.mesh import Mesh

        if self.mesh is not None:
            raise ValueError("already started")
        self.index = int(args["index"])
        config = load_config(str(args["text"]), str(args["source"]), str(args["source_dir"]))
        config = worker_config(config, str(args["admin_ip"]), int(args["admin_port"]))
        self.mesh = Mesh(config, self.reactor, serve_admin=False)
        self.mesh.on_shutdown(self.stop_reactor)

        def started(_: Any) -> dict[str, Any]:
            from l5d_twisted.cli.run import tune_gc

            tune_gc()
            log.info("worker {index} started (pid {pid})", index=self.index, pid=os.getpid())
            return {"pid": os.getpid(), "ports": self.mesh.ports()}

        def failed(failure: Any) -> Any:
            message = failure.getErrorMessage()
            print(f"l5d-twisted: worker {self.index}: cannot start: {message}", file=sys.stderr)
            self.exit_code = 1
            self.reactor.callLater(0, self.stop_reactor)
            return failure

        d: Deferred[dict[str, Any]] = self.mesh.start().addCallbacks(started, failed)
        return d

    def shutdown(self, grace_s: float | None = None) -> None:
        """Drain and stop, once (SIGTERM, the supervisor's ``shutdown``, or its loss)."""
        if self.mesh is None:
            self.stop_reactor()
            return
        if self.mesh.draining:
            return
        self.mesh.shutdown(grace_s)

    def hurry(self) -> None:
        if self.mesh is not None and self.mesh.draining:
            self.mesh.end_drain_period()

    def supervisor_lost(self) -> None:
        if self.mesh is not None and self.mesh.draining:
            return  # this worker is stopping: its own channel closes with it
        log.warn("worker {index}: the supervisor went away; draining", index=self.index)
        self.shutdown()

    def shutdown_op(self, args: dict[str, Any], part: Any) -> bool:
        grace = args.get("grace_s")
        self.shutdown(None if grace is None else float(grace))
        return True

    def hurry_op(self, args: dict[str, Any], part: Any) -> bool:
        self.hurry()
        return True

    # -- what the admin server shows ----------------------------------------------------

    def _mesh(self) -> Any:
        if self.mesh is None or self.mesh.metrics is None:
            from l5d_twisted.admin.http_error import HttpError

            raise HttpError(503, "worker not started")
        return self.mesh

    def snapshot(self, args: dict[str, Any], part: Any) -> Deferred[dict[str, Any]]:
        from l5d_twisted.telemetry.merged import process_families, process_registry, snapshot_steps
        from l5d_twisted.telemetry.render import reactor_cooperator, run_steps

        mesh = self._mesh()
        if self._process_registry is None:
            self._process_registry = process_registry()
            self._cooperator = reactor_cooperator(self.reactor)
        registry = self._process_registry
        return run_steps(
            self._cooperator,
            snapshot_steps(mesh.metrics, part),
            lambda: {
                "pid": os.getpid(),
                "index": self.index,
                "process": process_families(registry),
            },
        )

    def client_state(self, args: dict[str, Any], part: Any) -> dict[str, Any]:
        return {router.label: router.client_state() for router in self._mesh().routers}

    def namer_state(self, args: dict[str, Any], part: Any) -> Any:
        from l5d_twisted.admin.http_error import HttpError

        prefix = str(args.get("prefix", ""))
        namers = self._mesh().namers
        for candidate in (prefix, "/" + prefix.lstrip("/")):
            namer = namers.get(candidate)
            if namer is not None:
                return namer.state()
        known = ", ".join(sorted(namers)) or "none configured"
        raise HttpError(404, f"no namer with prefix {prefix!r}; namers: {known}\n")

    def delegator(self, args: dict[str, Any], part: Any) -> Deferred[dict[str, Any]]:
        from l5d_twisted.admin.delegator import explain

        return explain(
            list(self._mesh().routers),
            args.get("router"),
            str(args.get("path") or ""),
            str(args.get("dtab") or ""),
        )

    def recent(self, args: dict[str, Any], part: Any) -> list[Any] | None:
        recent = getattr(self._mesh(), "recent_requests", None)
        if recent is None:
            return None
        inner = getattr(recent, "recent_requests", None)
        recent = inner if inner is not None else recent
        return list(recent.to_json())


def start_worker_logging(fmt: str, level: str, index: str) -> None:
    """The mesh's log lines, each with a ``worker`` field (the worker's index)."""
    from twisted.logger import globalLogBeginner

    from l5d_twisted.logs import observer

    write = observer(fmt, level)
    worker: int | str = int(index) if index.isdigit() else index

    def tagged(event: dict[str, Any]) -> None:
        event.setdefault("worker", worker)
        write(event)

    observers: list[Any] = [tagged]  # a plain callable is a log observer
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)


def run_worker(args: Any) -> int:
    """``l5d-twisted run --worker-fd N``: what the supervisor starts."""
    from twisted.internet import reactor as global_reactor
    from twisted.internet.error import ReactorNotRunning

    set_parent_death_signal()
    reactor: Any = global_reactor
    start_worker_logging(args.log_format, args.log_level, os.environ.get(WORKER_ENV, ""))

    def stop_reactor() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    worker = Worker(reactor, stop_reactor)

    def on_signal(signum: int, frame: Any) -> None:
        def act() -> None:
            if worker.mesh is not None and worker.mesh.draining:
                worker.hurry()
            else:
                worker.shutdown()

        reactor.callFromThread(act)

    reactor.callWhenRunning(worker.adopt, int(args.worker_fd))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reactor.run(installSignalHandlers=False)
    return worker.exit_code
