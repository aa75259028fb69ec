"""The supervisor of ``workers: N``: starts N worker processes, serves the admin port, drains.

``l5d-twisted run`` with ``workers`` above 1 (after ``auto`` is resolved) runs this in the
process that was started (PID 1 in a container, the one the kubelet signals):

1. it binds the admin port (so the workers know it), and listens on it once every worker
   has started, as one process opens its admin port last;
2. it starts N workers (:mod:`.worker`), each with a private control channel (a
   ``socketpair``) and the config text it read, and waits until every one has bound its
   router ports (all with ``SO_REUSEPORT``); if any worker fails to start, it stops the
   others and exits 1, so the mesh never half-starts;
3. while running, a worker that dies is started again after a backoff (0.5 s doubling to
   30 s; reset once a worker has run 60 s) and the others keep serving the ports;
4. on SIGTERM or SIGINT (or ``POST /admin/shutdown``) it turns ``/ready`` to 503 and asks
   every worker to drain, as one process does (``admin.drainPeriodMs`` with
   ``Connection: close``, then the listeners close and requests in flight finish within
   ``admin.shutdownGraceMs``); a second signal cuts every worker's drain period short.
   It exits once every worker has exited (0, or 1 if a worker had to be killed): a worker
   still alive ``drainPeriodMs + shutdownGraceMs + 5 s`` after the signal gets SIGKILL.

A worker never outlives the supervisor: it drains and exits when its control channel
closes, and Linux sends it SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.workers.control import ChannelFactory, ControlChannel
from l5d_twisted.workers.worker import CONTROL_FD, WORKER_ENV

log = Logger()

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a worker up this long resets its backoff
KILL_AFTER_EXTRA_S = 5.0


class WorkerHandle(ProcessProtocol):
    """One worker process as the supervisor sees it."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.pid: int | None = None
        self.state = "starting"  # starting -> running -> (stopping) -> ended
        self.started_at: float | None = None
        self.spawned_at = time.monotonic()
        self.channel = ControlChannel()
        self.ended: Deferred[int] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        value: Any = reason.value
        code = 0 if isinstance(value, ProcessDone) else value.exitCode
        if code is None:
            code = 128 + int(getattr(value, "signal", 0) or 0)
        self.state = "ended"
        self.supervisor.worker_ended(self, int(code))
        self.ended.callback(int(code))

    def signal(self, name: str) -> None:
        transport: Any = self.transport
        try:
            if transport is not None:
                transport.signalProcess(name)
        except (ProcessExitedAlready, OSError):
            pass


class Supervisor:
    def __init__(
        self,
        config: Any,
        config_text: str,
        config_source: str,
        count: int,
        reactor: Any,
        log_format: str = "json",
        log_level: str = "info",
    ) -> None:
        self.config = config
        self.config_text = config_text
        self.config_source = config_source
        self.count = count
        self.reactor = reactor
        self.log_format = log_format
        self.log_level = log_level
        self.pid = os.getpid()
        self.workers: dict[int, WorkerHandle] = {}
        self.restarts: dict[int, int] = {}
        self._backoff: dict[int, float] = {}
        self._pending_restarts: dict[int, Any] = {}
        self.all_started = False
        self.stopping = False
        self.exit_code = 0
        self.admin: Any = None
        self.admin_port: Any = None  # listening once every worker has started
        self._admin_socket: socket.socket | None = None  # bound (the port reserved) until then
        self._stopped: Deferred[None] | None = None
        self._started: Deferred[None] = Deferred()
        self._on_shutdown: list[Any] = []
        self._kill_timer: Any = None

    # -- what the admin server reads --------------------------------------------------

    def handles(self) -> list[WorkerHandle]:
        return [self.workers[i] for i in sorted(self.workers)]

    def live_workers(self) -> list[WorkerHandle]:
        """Workers that have started and whose channel is up."""
        return [w for w in self.handles() if w.state == "running" and w.channel.connected_]

    def on_shutdown(self, callback: Any) -> None:
        self._on_shutdown.append(callback)

    def admin_port_number(self) -> int:
        if self.admin_port is not None:
            return int(self.admin_port.getHost().port)
        assert self._admin_socket is not None
        return int(self._admin_socket.getsockname()[1])

    # -- starting ------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        from l5d_twisted.workers.admin import MergedView, WorkersAdminServer, WorkersTarget

        view = MergedView(self.reactor, self.live_workers)
        target = WorkersTarget(self, view)
        target.build_telemeters()
        self.admin = WorkersAdminServer(target, self.reactor)
        admin = self.config.admin
        # The port is bound now (the workers must know it: a request dtab may not reach it)
        # but listens only once the routers do, as in one process: an open admin port
        # means a serving mesh.
        self._admin_socket = reserve_port(admin.ip, admin.port)
        self.restarts_counter = view.tree.stats.counter("workers", "restarts")
        view.tree.stats.gauge("workers", "running", fn=lambda: float(len(self.live_workers())))
        for index in range(self.count):
            self._spawn(index)
        return self._started

    def _spawn(self, index: int) -> WorkerHandle:
        handle = WorkerHandle(self, index)
        self.workers[index] = handle
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [
                sys.executable,
                "-m",
                "l5d_twisted",
                "run",
                "--worker-fd",
                str(CONTROL_FD),
                "--log-format",
                self.log_format,
                "--log-level",
                self.log_level,
                self.config_source,
            ]
            transport = self.reactor.spawnProcess(
                handle,
                sys.executable,
                argv,
                env=_worker_env(index),
                childFDs={0: 0, 1: 1, 2: 2, CONTROL_FD: child_end.fileno()},
            )
            handle.pid = transport.pid
            self.reactor.adoptStreamConnection(
                parent_end.fileno(), socket.AF_UNIX, ChannelFactory(handle.channel)
            )
        finally:
            child_end.close()
            parent_end.close()
        admin_port = self.admin_port_number()
        d = handle.channel.request(
            "start",
            index=index,
            text=self.config_text,
            source=self.config_source,
            source_dir=getattr(self.config, "source_dir", "."),
            admin_ip=self.config.admin.ip,
            admin_port=admin_port,
        )
        d.addCallbacks(lambda answer: self._worker_started(handle, answer[0]), lambda _: None)
        return handle

    def _worker_started(self, handle: WorkerHandle, answer: Any) -> None:
        if handle.state != "starting":
            return
        handle.state = "running"
        handle.started_at = time.monotonic()
        log.info(
            "worker {index} running (pid {pid}): {ports}",
            index=handle.index,
            pid=handle.pid,
            ports=answer.get("ports") if isinstance(answer, dict) else None,
        )
        if self.stopping:
            self._ask_to_stop(handle, None)
            return
        if not self.all_started and all(w.state == "running" for w in self.workers.values()):
            self.all_started = True
            reserved, self._admin_socket = self._admin_socket, None
            if reserved is not None:
                self.admin_port = self.admin.listen_on(reserved)
            log.info(
                "mesh started: {count} workers, admin on {admin}",
                count=self.count,
                admin=f"{self.config.admin.ip}:{self.admin_port_number()}",
            )
            self._started.callback(None)

    # -- a worker ended ------------------------------------------------------------------

    def worker_ended(self, handle: WorkerHandle, code: int) -> None:
        if self.workers.get(handle.index) is not handle:
            return
        self.admin.target.view.forget(handle.index)
        if self.stopping:
            log.info("worker {index} exited ({code})", index=handle.index, code=code)
            if code != 0:
                self.exit_code = self.exit_code or 1
            return
        if not self.all_started:
            log.error(
                "worker {index} exited ({code}) while starting: stopping the mesh",
                index=handle.index,
                code=code,
            )
            self.exit_code = 1
            if not self._started.called:
                self._started.errback(RuntimeError(f"worker {handle.index} could not start"))
            self.shutdown(0.0, drain_period_s=0.0)
            return
        up_s = time.monotonic() - handle.spawned_at
        if up_s >= STABLE_AFTER_S:
            self._backoff.pop(handle.index, None)
        delay = self._backoff.get(handle.index, BACKOFF_FIRST_S)
        self._backoff[handle.index] = min(BACKOFF_MAX_S, delay * 2)
        log.error(
            "worker {index} (pid {pid}) exited ({code}); starting another in {delay}s",
            index=handle.index,
            pid=handle.pid,
            code=code,
            delay=delay,
        )
        self._pending_restarts[handle.index] = self.reactor.callLater(
            delay, self._restart, handle.index
        )

    def _restart(self, index: int) -> None:
        self._pending_restarts.pop(index, None)
        if self.stopping:
            return
        self.restarts[index] = self.restarts.get(index, 0) + 1
        self.restarts_counter.incr()
        self._spawn(index)

    # -- stopping ------------------------------------------------------------------------

    def shutdown(
        self, grace_s: float | None = None, drain_period_s: float | None = None
    ) -> Deferred[None]:
        """Drain every worker, wait for them all to exit, then close the admin server."""
        if self._stopped is not None:
            return self._stopped
        self.stopping = True
        for call in self._pending_restarts.values():
            if call.active():
                call.cancel()
        self._pending_restarts.clear()
        admin = self.config.admin
        drain_s = admin.drain_period_ms / 1000.0 if drain_period_s is None else drain_period_s
        grace = admin.shutdown_grace_ms / 1000.0 if grace_s is None else grace_s
        log.info("mesh stopping: draining {n} workers", n=len(self.workers))
        handles = self.handles()
        for handle in handles:
            self._ask_to_stop(handle, grace_s, hurry=drain_period_s == 0.0)
        self._kill_timer = self.reactor.callLater(
            drain_s + grace + KILL_AFTER_EXTRA_S, self._kill_left
        )
        ended = [h.ended for h in handles if h.state != "ended"]
        self._stopped = DeferredList(ended, consumeErrors=True).addCallback(self._all_ended)
        return self._stopped

    def _ask_to_stop(
        self, handle: WorkerHandle, grace_s: float | None, hurry: bool = False
    ) -> None:
        if handle.state == "ended":
            return
        if handle.state == "running":
            handle.state = "stopping"
        if not handle.channel.connected_:
            handle.signal("TERM")
            return
        # No answer (the channel closed) needs nothing more: a worker whose channel closes
        # drains by itself, and one that hangs is killed at the deadline (_kill_left).
        handle.channel.request("shutdown", grace_s=grace_s).addErrback(lambda _: None)
        if hurry:
            handle.channel.request("hurry").addErrback(lambda _: None)

    def hurry(self) -> None:
        """A second signal: cut every worker's drain period short."""
        for handle in self.handles():
            if handle.state != "ended" and handle.channel.connected_:
                handle.channel.request("hurry").addErrback(lambda _: None)

    def _kill_left(self) -> None:
        self._kill_timer = None
        for handle in self.handles():
            if handle.state != "ended":
                log.error("worker {index} still running: killed", index=handle.index)
                self.exit_code = self.exit_code or 1
                handle.signal("KILL")

    def _all_ended(self, _: Any) -> None:
        if self._kill_timer is not None and self._kill_timer.active():
            self._kill_timer.cancel()
        if self.admin is not None:
            self.admin.stop_refreshing()
        if self.admin_port is not None:
            self.admin_port.stopListening()
        if self._admin_socket is not None:
            self._admin_socket.close()
            self._admin_socket = None
        log.info("mesh stopped")
        for callback in self._on_shutdown:
            callback()


def reserve_port(ip: str, port: int) -> socket.socket:
    """A TCP socket bound to ``ip:port`` (SO_REUSEADDR, as Twisted binds), not listening yet."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot bind the admin port {ip}:{port}: {e.strerror}") from None
    return sock


def _worker_env(index: int) -> dict[str, str]:
    """The supervisor's environment, with this very package first on the import path."""
    env = dict(os.environ)
    env[WORKER_ENV] = str(index)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
