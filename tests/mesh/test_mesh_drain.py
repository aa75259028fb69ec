"""Graceful drain of the mesh (issue 10, finding 7): readiness fails at once, the listeners
stay open for ``admin.drainPeriodMs`` while responses close their connections, then the
process stops listening, finishes what is in flight and exits.

The phases on a ``MemoryReactorClock``; the hand-over between two real ``l5d-twisted run``
processes sharing a port (``socketOptions.reusePort``) under 200 req/s of keep-alive load
with ``bench/drain/drain_switch.py``; SIGTERM twice and ``/admin/shutdown`` on real processes.
Timing figures belong to the benchmark (bench/README.md); here only behaviour, with
deadlines.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from l5d_testing import REPO, Processes, free_port, wait_until
from twisted.internet.testing import MemoryReactorClock

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.mesh import Mesh

sys.path.insert(0, str(REPO / "bench" / "drain"))

from drain_switch import OLD_IP, get, proxy_config, run_switch  # noqa: E402


def test_config_keys() -> None:
    config = load_config(
        """
admin: {drainPeriodMs: 5000}
routers:
- protocol: http
  servers: [{port: 4140, socketOptions: {reusePort: true, keepAlive: true, noDelay: false, reuseAddr: false}}]
"""
    )
    assert config.admin.drain_period_ms == 5000
    options = config.routers[0].servers[0].socket_options
    assert (options.reuse_port, options.keep_alive, options.no_delay, options.reuse_addr) == (
        True,
        True,
        False,
        False,
    )
    plain = load_config("routers: [{protocol: http}]")
    assert plain.admin.drain_period_ms == 0, "a plain config stops at once"
    defaults = plain.routers[0].servers[0].socket_options
    assert (defaults.reuse_port, defaults.keep_alive, defaults.no_delay, defaults.reuse_addr) == (
        False,
        False,
        True,
        True,
    )
    with pytest.raises(ConfigErrors, match="readTimeoutMs"):
        load_config("routers: [{protocol: http, servers: [{socketOptions: {readTimeoutMs: 100}}]}]")


def test_drain_phases_on_a_clock() -> None:
    config = load_config(
        """
admin: {port: 0, drainPeriodMs: 5000, shutdownGraceMs: 2000}
routers:
- protocol: http
  servers: [{port: 0}]
"""
    )
    reactor = MemoryReactorClock()
    mesh = Mesh(config, reactor)
    assert mesh.start().called
    server = mesh.servers[0]
    assert not mesh.draining
    stopped = mesh.stop()
    assert mesh.draining and server.draining, "not ready from the first moment"
    assert not server._listening_closed, "still accepting during the drain period"
    reactor.advance(4.9)
    assert not server._listening_closed and not stopped.called
    reactor.advance(0.2)
    assert server._listening_closed and stopped.called


def test_second_stop_request_cuts_the_drain_period_short_on_a_clock() -> None:
    config = load_config(
        "admin: {port: 0, drainPeriodMs: 60000}\nrouters: [{protocol: http, servers: [{port: 0}]}]"
    )
    reactor = MemoryReactorClock()
    mesh = Mesh(config, reactor)
    mesh.start()
    stopped = mesh.stop()
    reactor.advance(1)
    assert not stopped.called
    mesh.end_drain_period()
    assert mesh.servers[0]._listening_closed and stopped.called


def test_hand_over_between_two_processes_on_one_port_fails_no_request(
    processes: Processes, tmp_path: Path
) -> None:
    result = run_switch(
        processes,
        tmp_path,
        rps=200,
        connections=8,
        drain_period_ms=2000,
        grace_ms=3000,
        seconds=0,
        warm_requests=100,
    )
    load = result["load"]
    assert load["sent"] > 0 and load["answered"] == load["sent"], f"{result}"
    assert load["failed"] == 0, f"{result}"
    # the old process kept answering after the signal: its connections left with Connection: close
    assert result["old_served_after_signal"] > 0, f"{result}"
    assert result["new_served_after_signal"] > 0, f"{result}"
    assert result["old_exit_code"] == 0
    readiness = [status for _, status in result["readiness_after_signal"]]
    assert readiness[0] == 503, result["readiness_after_signal"]
    assert set(readiness) <= {503, 0}, "ready again during the drain"  # 0: the admin port closed
    assert result["readiness_after_signal"][0][0] < 1.0, "readiness fails at once"
    assert result["new_pid_alive"]


def _single(
    processes: Processes, tmp_path: Path, drain_period_ms: int, allow_shutdown: bool = False
) -> tuple[Any, int, int]:
    world_port = free_port(OLD_IP)
    processes.l5d("example", "world", "--ip", OLD_IP, "--port", str(world_port), name="world")
    proxy_port, admin_port = free_port(), free_port()
    config = proxy_config(
        tmp_path, "single", OLD_IP, world_port, proxy_port, admin_port, drain_period_ms, 3000
    )
    if allow_shutdown:
        config.write_text(config.read_text().replace("admin:\n", "admin:\n  allowShutdown: true\n"))
    proxy = processes.l5d("run", str(config), name="proxy")
    wait_until(
        lambda: get(admin_port, "/ready") == (200, b"ready"), 30, what="the proxy to be ready"
    )
    wait_until(lambda: _world(proxy_port)[0] == 200, 15, what="the proxy to route")
    return proxy, proxy_port, admin_port


def _world(proxy_port: int) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "world"})
        response = conn.getresponse()
        return response.status, response.getheader("connection"), response.read()
    finally:
        conn.close()


def _drains_then_exits(proxy: Any, proxy_port: int, admin_port: int) -> None:
    wait_until(lambda: get(admin_port, "/ready") == (503, b"draining"), 5, what="readiness to fail")
    # during the drain period: still accepting and answering, each answer closing its connection
    status, connection, body = _world(proxy_port)
    assert (status, connection) == (200, "close") and body.startswith(f"world ({OLD_IP}:".encode())
    assert proxy.poll() is None


def test_sigterm_twice_cuts_a_long_drain_period_short(processes: Processes, tmp_path: Path) -> None:
    proxy, proxy_port, admin_port = _single(processes, tmp_path, drain_period_ms=120_000)
    os.kill(proxy.pid, signal.SIGTERM)
    _drains_then_exits(proxy, proxy_port, admin_port)
    asked = time.monotonic()
    os.kill(proxy.pid, signal.SIGTERM)
    assert proxy.wait(30) == 0, processes.log(proxy)
    assert time.monotonic() - asked < 30
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()


def test_admin_shutdown_drains_like_sigterm(processes: Processes, tmp_path: Path) -> None:
    proxy, proxy_port, admin_port = _single(
        processes, tmp_path, drain_period_ms=1500, allow_shutdown=True
    )
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("POST", "/admin/shutdown")
    assert conn.getresponse().status == 202
    conn.close()
    _drains_then_exits(proxy, proxy_port, admin_port)
    assert proxy.wait(30) == 0, processes.log(proxy)
