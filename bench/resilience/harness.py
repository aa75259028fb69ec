"""What the resilience scenarios share: backends, a mesh, fixed-rate load, metrics, tables.

Everything runs on loopback: ``l5d-twisted example world`` backends (their
``--latency-ms`` / ``--failure-rate`` knobs, changed live with ``POST /setLatency`` and
``/setFailureRate``), discovered through an ``io.l5d.fs`` directory by one ``l5d-twisted
run`` router, and load from an open-loop generator in this process
(``l5d_twisted.examples.traffic.OpenLoopTraffic``: request ``i`` is due at
``start + i/rps`` and its latency counts from then, so stalls are not hidden).

Every process is started in its own session and stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from twisted.internet import task, threads  # noqa: E402

from l5d_twisted.examples.client import HttpClient, Target  # noqa: E402
from l5d_twisted.examples.traffic import OpenLoopTraffic, percentile  # noqa: E402

SERVICE = "world"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("http_proxy", None)
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "l5d_twisted", *args],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


@dataclass
class Backend:
    port: int
    proc: subprocess.Popen[bytes]

    def set_knob(self, knob: str, value: float) -> None:
        """POST /setLatency or /setFailureRate (blocking; fine between load phases)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{knob}", data=str(value).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()


@dataclass
class MeshSettings:
    balancer: dict[str, Any] = field(default_factory=lambda: {"kind": "p2c"})
    accrual: dict[str, Any] = field(default_factory=lambda: {"kind": "io.l5d.consecutiveFailures"})
    classifier: str = "io.l5d.http.nonRetryable5XX"
    budget: dict[str, Any] | None = None

    def describe(self) -> str:
        return f"{self.balancer['kind']}, {self.accrual['kind']}, {self.classifier}"


class Cluster:
    """Backends plus one mesh router in front of them (restartable per variant)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.disco = work_dir / "disco"
        self.disco.mkdir(exist_ok=True)
        self.procs = Processes(work_dir)
        self.backends: list[Backend] = []
        self.mesh: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.admin_port = free_port()
        # Ctrl-C / SIGTERM stop the reactor before the scenario's cleanup can run: stop the
        # children then (each by PID).
        from twisted.internet import reactor

        reactor.addSystemEventTrigger("before", "shutdown", self.procs.stop_all)  # type: ignore[attr-defined]

    def start_backends(self, n: int, failure_rates: dict[int, float] | None = None) -> None:
        for i in range(n):
            port = free_port()
            args = ["example", "world", "--ip", "127.0.0.1", "--port", str(port)]
            rate = (failure_rates or {}).get(i)
            if rate:
                args += ["--failure-rate", str(rate)]
            self.backends.append(Backend(port, self.procs.start(f"world-{i}", *args)))
        for b in self.backends:
            wait_for_port(b.port)
        lines = "".join(f"127.0.0.1 {b.port}\n" for b in self.backends)
        (self.disco / SERVICE).write_text(lines)

    def mesh_config(self, settings: MeshSettings) -> dict[str, Any]:
        service: dict[str, Any] = {"responseClassifier": {"kind": settings.classifier}}
        if settings.budget is not None:
            service["retries"] = {"budget": settings.budget}
        return {
            "admin": {"ip": "127.0.0.1", "port": self.admin_port},
            "namers": [{"kind": "io.l5d.fs", "rootDir": str(self.disco)}],
            "routers": [
                {
                    "protocol": "http",
                    "label": "out",
                    "dtab": "/svc => /#/io.l5d.fs;",
                    "servers": [{"ip": "127.0.0.1", "port": self.port}],
                    "client": {
                        "loadBalancer": settings.balancer,
                        "failureAccrual": settings.accrual,
                    },
                    "service": service,
                }
            ],
        }

    def start_mesh(self, settings: MeshSettings) -> None:
        self.stop_mesh()
        config = self.work_dir / "l5d.yaml"
        config.write_text(yaml.safe_dump(self.mesh_config(settings), sort_keys=False))
        self.mesh = self.procs.start("l5d", "run", str(config), "--log-level", "warn")
        wait_for_port(self.port)
        wait_for_port(self.admin_port)

    def stop_mesh(self) -> None:
        if self.mesh is not None:
            self.procs.stop(self.mesh)
            self.mesh = None

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.admin_port}/admin/metrics.json", timeout=5
        ) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def client_metric(self, name: str) -> float:
        return float(self.metrics().get(f"rt/out/client/#/io.l5d.fs/{SERVICE}/{name}", 0))

    def service_metric(self, name: str) -> float:
        return float(self.metrics().get(f"rt/out/service/svc/{SERVICE}/{name}", 0))


@contextmanager
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="l5d-resilience-") as tmp:
        c = Cluster(Path(tmp))
        try:
            yield c
        finally:
            c.procs.stop_all()


@dataclass
class LoadResult:
    rps: float
    seconds: float
    sent: int
    ok: int
    failed: int
    dropped: int
    latencies_ms: list[float]

    @property
    def success_rate(self) -> float:
        return self.ok / self.sent if self.sent else float("nan")

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class Load:
    """Open-loop GET / with ``Host: world`` at a fixed rate through the mesh."""

    def __init__(self, reactor: Any, port: int) -> None:
        self.reactor = reactor
        self.client = HttpClient(reactor, timeout_s=15.0, max_idle_per_dest=4096)
        self.target = Target(SERVICE.encode(), b"/", "127.0.0.1", port)

    def _send(self) -> Any:
        return self.client.request(b"GET", self.target, [])

    async def run(self, rps: float, seconds: float, record: bool = True) -> LoadResult:
        traffic = OpenLoopTraffic(
            self.reactor, self._send, rps, max_outstanding=20000, record_latencies=record
        )
        traffic.start()
        await sleep(self.reactor, seconds)
        traffic.stop()
        deadline = self.reactor.seconds() + 16.0
        while traffic.stats.outstanding > 0 and self.reactor.seconds() < deadline:
            await sleep(self.reactor, 0.05)
        s = traffic.stats
        return LoadResult(
            rps,
            seconds,
            s.sent,
            s.succeeded,
            s.failed,
            s.dropped,
            [v * 1000.0 for v in s.latencies_s],
        )

    def close(self) -> None:
        self.client.close()


async def in_thread(fn: Any, *args: Any) -> Any:
    """Run a blocking call (knob change, metrics fetch) without stalling the load."""
    return await threads.deferToThread(fn, *args)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_scenario(main: Any) -> int:
    """Run ``await main(reactor)`` on the reactor; print its result; exit code."""
    from twisted.internet import reactor as _reactor
    from twisted.internet.defer import Deferred

    reactor: Any = _reactor
    outcome: list[Any] = []

    def go() -> None:
        d = Deferred.fromCoroutine(main(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    result: Any = outcome[0] if outcome else None
    if hasattr(result, "getTraceback"):
        print(result.getTraceback(), file=sys.stderr)
        return 1
    print(result)
    return 0
