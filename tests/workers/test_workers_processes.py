"""``workers: 2`` as real processes on loopback: one mesh on the admin port, load spread over
the workers, merged metrics equal to the sum of each worker's own, SIGTERM drains them all,
a dead worker is replaced, and no worker outlives its supervisor.

Behaviour only, polled with deadlines; timing figures belong to bench/ (bench/README.md).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_until

HERE = Path(__file__).resolve().parent


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _json(port: int, path: str) -> Any:
    status, body = _get(port, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is gone
    except OSError:
        return False


def _processes_running(config: Path) -> list[int]:
    """Every live process whose command line names this test's config (none must remain)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if str(config).encode() in cmdline and _alive(int(entry)):
            found.append(int(entry))
    return found


class Mesh:
    def __init__(
        self,
        processes: Processes,
        tmp_path: Path,
        drain_period_ms: int = 0,
        allow_shutdown: bool = False,
    ) -> None:
        self.backend_port = free_port()
        self.proxy_port = free_port()
        self.admin_port = free_port()
        self.backend = processes.start(
            sys.executable, str(HERE / "backend.py"), str(self.backend_port), name="backend"
        )
        self.config = tmp_path / "workers.yaml"
        self.config.write_text(
            f"""
workers: 2
admin:
  port: {self.admin_port}
  drainPeriodMs: {drain_period_ms}
  allowShutdown: {str(allow_shutdown).lower()}
  shutdownGraceMs: 30000
telemetry:
- kind: io.l5d.prometheus
- kind: io.l5d.recentRequests
  capacity: 50
routers:
- protocol: http
  label: out
  dtab: /svc => /$/inet/127.0.0.1/{self.backend_port};
  servers:
  - port: {self.proxy_port}
"""
        )
        self.processes = processes
        self.proc = processes.l5d("run", str(self.config), name="supervisor")
        wait_until(
            lambda: _get(self.admin_port, "/ready") == (200, b"ready"),
            60,
            what="every worker to start",
        )
        wait_until(lambda: _get(self.backend_port, "/")[0] == 200, 15, what="the backend")

    def workers(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = _json(self.admin_port, "/admin/workers.json")["workers"]
        return rows

    def request(self, path: str = "/") -> tuple[int, bytes]:
        return _get(self.proxy_port, path, {"Host": "web"})  # a new connection each time

    def log(self) -> str:
        return self.processes.log(self.proc)


def test_load_spreads_and_merged_metrics_are_the_sum_of_each_workers(
    processes: Processes, tmp_path: Path
) -> None:
    mesh = Mesh(processes, tmp_path)
    workers = mesh.workers()
    assert [(w["index"], w["state"]) for w in workers] == [(0, "running"), (1, "running")]
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and mesh.proc.pid not in pids

    n = 60
    for _ in range(n):
        assert mesh.request() == (200, b"ok\n")

    name = "rt/out/service/svc/web/"
    own = [_json(mesh.admin_port, f"/admin/workers/{i}/metrics.json") for i in (0, 1)]
    merged = _json(mesh.admin_port, "/admin/metrics.json")
    per_worker = [m[name + "requests"] for m in own]
    assert sum(per_worker) == n == merged[name + "requests"]
    # the kernel spread the connections over both workers (SO_REUSEPORT)
    assert all(count > 0 for count in per_worker), per_worker
    for key in ("success", "status/200", "request_latency_ms.count"):
        assert merged[name + key] == own[0][name + key] + own[1][name + key] == n, key
    assert merged[name + "request_latency_ms.max"] == max(
        m[name + "request_latency_ms.max"] for m in own
    )
    server = f"rt/out/server/127.0.0.1/{mesh.proxy_port}/requests"
    assert merged[server] == own[0][server] + own[1][server] == n

    status, text = _get(mesh.admin_port, "/admin/metrics/prometheus")
    lines = text.decode().splitlines()
    assert f'rt:service:requests{{rt="out",service="svc/web"}} {float(n)}' in lines
    rss = [line for line in lines if line.startswith("process_resident_memory_bytes{")]
    assert {line.split('worker="')[1].split('"')[0] for line in rss} == {"0", "1", "supervisor"}

    # one mesh: the clients of both workers in one table, the delegator, recent requests
    state = _json(mesh.admin_port, "/client_state.json")
    client = state["out"][f"/$/inet/127.0.0.1/{mesh.backend_port}"]
    assert client["state"] == "bound" and client["workers"] == [0, 1]
    explained = _json(mesh.admin_port, "/delegator.json?path=/svc/web")
    assert (
        explained["explanation"]["delegate"]["path"] == f"/$/inet/127.0.0.1/{mesh.backend_port}/web"
    )
    recent = _json(mesh.admin_port, "/requests.json")
    assert len(recent) == 50 and all(r["status"] == 200 for r in recent)
    config = _json(mesh.admin_port, "/config.json")
    assert config["workers"] == 2
    # each worker's log lines say which worker wrote them
    workers_logging = {
        json.loads(line).get("worker") for line in mesh.log().splitlines() if line.startswith("{")
    }
    assert {0, 1} <= workers_logging


def test_sigterm_drains_every_worker_then_all_exit(processes: Processes, tmp_path: Path) -> None:
    mesh = Mesh(processes, tmp_path, drain_period_ms=120_000)
    pids = [w["pid"] for w in mesh.workers()]
    # a request in flight in some worker: the backend holds it until released
    held = socket.create_connection(("127.0.0.1", mesh.proxy_port), timeout=30)
    held.sendall(b"GET /slow HTTP/1.1\r\nHost: web\r\n\r\n")
    wait_until(
        lambda: (
            _json(mesh.admin_port, "/admin/metrics.json?q=svc/web/pending").get(
                "rt/out/service/svc/web/pending"
            )
            == 1.0
        ),
        15,
        what="the slow request to be in flight",
    )

    os.kill(mesh.proc.pid, signal.SIGTERM)
    wait_until(lambda: _get(mesh.admin_port, "/ready") == (503, b"draining"), 10, what="not ready")
    # drain period: both workers still answer, every answer closing its connection
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", mesh.proxy_port, timeout=10)
        conn.request("GET", "/", headers={"Host": "web"})
        response = conn.getresponse()
        assert (response.status, response.getheader("connection")) == (200, "close")
        response.read()
        conn.close()
    assert all(_alive(pid) for pid in pids) and mesh.proc.poll() is None

    os.kill(mesh.proc.pid, signal.SIGTERM)  # the second signal ends the drain period
    wait_until(lambda: not _port_accepts(mesh.proxy_port), 15, what="the workers to stop listening")
    assert mesh.proc.poll() is None, "exited with a request in flight"
    assert _get(mesh.backend_port, "/release")[0] == 200
    answer = held.recv(4096)
    held.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok\n"), answer
    assert mesh.proc.wait(30) == 0, mesh.log()
    wait_until(lambda: not any(_alive(pid) for pid in pids), 10, what="every worker to exit")
    assert _processes_running(mesh.config) == []


def _port_accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_worker_that_dies_is_replaced(processes: Processes, tmp_path: Path) -> None:
    mesh = Mesh(processes, tmp_path)
    before = {w["index"]: w["pid"] for w in mesh.workers()}
    requests = "rt/out/service/svc/web/requests"
    for _ in range(20):
        assert mesh.request() == (200, b"ok\n")
    assert _json(mesh.admin_port, "/admin/metrics.json")[requests] == 20
    os.kill(before[1], signal.SIGKILL)

    def replaced() -> bool:
        rows = {w["index"]: w for w in mesh.workers()}
        new = rows[1]
        return new["pid"] != before[1] and new["state"] == "running" and new["restarts"] == 1

    wait_until(replaced, 60, what="worker 1 to be replaced")
    assert {w["index"]: w["pid"] for w in mesh.workers()}[0] == before[0]
    for _ in range(20):
        assert mesh.request() == (200, b"ok\n")
    merged = _json(mesh.admin_port, "/admin/metrics.json")
    assert merged["workers/restarts"] == 1 and merged["workers/running"] == 2.0
    # what the dead worker had counted is kept: the mesh's counter never went down
    assert merged[requests] == 40
    os.kill(mesh.proc.pid, signal.SIGTERM)
    assert mesh.proc.wait(30) == 0, mesh.log()
    assert _processes_running(mesh.config) == []


def test_workers_follow_a_supervisor_killed_outright(processes: Processes, tmp_path: Path) -> None:
    mesh = Mesh(processes, tmp_path)
    pids = [w["pid"] for w in mesh.workers()]
    os.kill(mesh.proc.pid, signal.SIGKILL)
    mesh.proc.wait(10)
    wait_until(lambda: not any(_alive(pid) for pid in pids), 30, what="the workers to exit")
    assert _processes_running(mesh.config) == []


def test_a_worker_that_cannot_start_stops_the_mesh(processes: Processes, tmp_path: Path) -> None:
    """A router port held by another process (without SO_REUSEPORT): exit 1, nothing left."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port, admin_port = blocker.getsockname()[1], free_port()
    config = tmp_path / "busy.yaml"
    config.write_text(
        f"workers: 2\nadmin: {{port: {admin_port}}}\nrouters:\n- protocol: http\n"
        f"  dtab: /svc => /$/inet/127.0.0.1/1;\n  servers:\n  - port: {port}\n"
    )
    try:
        proc = processes.l5d("run", str(config), name="busy")
        assert proc.wait(60) == 1, processes.log(proc)
    finally:
        blocker.close()
    assert "cannot start" in processes.log(proc)
    assert _processes_running(config) == []


@pytest.mark.parametrize("value", ["0", "lots"])
def test_a_bad_workers_value_is_refused_before_anything_starts(
    processes: Processes, tmp_path: Path, value: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"workers: {value}\nrouters:\n- protocol: http\n")
    proc = processes.l5d("run", str(config), name="bad")
    assert proc.wait(30) == 2
    assert "workers: expected a number of worker processes 1-256, or auto" in processes.log(proc)


def test_workers_cannot_share_an_ephemeral_router_port(
    processes: Processes, tmp_path: Path
) -> None:
    config = tmp_path / "zero.yaml"
    config.write_text(
        f"workers: 2\nadmin: {{port: {free_port()}}}\nrouters:\n- protocol: http\n"
        "  servers:\n  - port: 0\n"
    )
    proc = processes.l5d("run", str(config), name="zero")
    assert proc.wait(30) == 2
    assert "cannot share a router port 0" in processes.log(proc)
    assert "routers[0].servers[0]" in processes.log(proc)
    assert _processes_running(config) == []


def test_admin_shutdown_drains_every_worker(processes: Processes, tmp_path: Path) -> None:
    mesh = Mesh(processes, tmp_path, allow_shutdown=True)
    pids = [w["pid"] for w in mesh.workers()]
    conn = http.client.HTTPConnection("127.0.0.1", mesh.admin_port, timeout=10)
    conn.request("POST", "/admin/shutdown?graceMs=5000")
    assert conn.getresponse().status == 202
    conn.close()
    assert mesh.proc.wait(30) == 0, mesh.log()
    wait_until(lambda: not any(_alive(pid) for pid in pids), 10, what="every worker to exit")
    assert "in-flight requests finish within 5.0s" in mesh.log()  # the grace reached them
