"""``l5d-twisted run`` as a real process: start-up is all or nothing, stopping drains.

A sample ``world`` app with added latency keeps a request in flight while the mesh is
told to stop (SIGTERM, or POST /admin/shutdown): that request must still get its answer,
new connections must be refused, and the process must exit 0.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from l5d_testing import Processes, free_port, port_open, wait_for_port, wait_until


def mesh_config(
    tmp_path: Path, world_port: int, proxy_port: int, admin_port: int, extra_admin: str = ""
) -> Path:
    disco = tmp_path / "disco"
    disco.mkdir(exist_ok=True)
    (disco / "world").write_text(f"127.0.0.1 {world_port}\n")
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        f"""
admin:
  ip: 127.0.0.1
  port: {admin_port}
  shutdownGraceMs: 5000
{extra_admin}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: {proxy_port}
"""
    )
    return config


def start_mesh(
    processes: Processes, tmp_path: Path, latency_ms: int = 0, extra_admin: str = ""
) -> tuple[Any, int, int]:
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d(
        "example",
        "world",
        "--ip",
        "127.0.0.1",
        "--port",
        str(world_port),
        "--latency-ms",
        str(latency_ms),
        name="world",
    )
    config = mesh_config(tmp_path, world_port, proxy_port, admin_port, extra_admin)
    mesh = processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", world_port)
    wait_for_port("127.0.0.1", proxy_port)
    wait_for_port("127.0.0.1", admin_port)
    return mesh, proxy_port, admin_port


def get_via_proxy(proxy_port: int, results: list[Any]) -> None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=20)
        conn.request("GET", "http://world/")
        response = conn.getresponse()
        results.append((response.status, response.read()))
        conn.close()
    except Exception as e:  # recorded for the assertion
        results.append(e)


def in_flight_then(stop: Any, processes: Processes, tmp_path: Path, extra_admin: str = "") -> None:
    mesh, proxy_port, admin_port = start_mesh(
        processes, tmp_path, latency_ms=1500, extra_admin=extra_admin
    )
    results: list[Any] = []
    request = threading.Thread(target=get_via_proxy, args=(proxy_port, results))
    request.start()
    # the request is in flight once the server counts it pending
    wait_until(
        lambda: (
            b'rt:server:pending{rt="outgoing"' in _metrics(admin_port) and _pending(admin_port) >= 1
        ),
        what="a request in flight",
    )
    stop(mesh, admin_port)
    wait_until(
        lambda: not port_open("127.0.0.1", proxy_port),
        timeout=5,
        what="the proxy to stop accepting",
    )
    request.join(20)
    assert results and results[0][0] == 200, results
    assert results[0][1].startswith(b"world (127.0.0.1:"), results
    assert mesh.wait(10) == 0, processes.log(mesh)


def _metrics(admin_port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("GET", "/admin/metrics/prometheus")
    body = conn.getresponse().read()
    conn.close()
    return body


def _pending(admin_port: int) -> float:
    for line in _metrics(admin_port).decode().splitlines():
        if line.startswith('rt:server:pending{rt="outgoing"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_routes_through_a_real_process(processes: Processes, tmp_path: Path) -> None:
    mesh, proxy_port, admin_port = start_mesh(processes, tmp_path)
    results: list[Any] = []
    get_via_proxy(proxy_port, results)
    assert len(results) == 1 and results[0][0] == 200, results
    assert results[0][1].startswith(b"world (127.0.0.1:"), results  # the world reports ip:port
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("GET", "/admin/ping")
    assert conn.getresponse().read() == b"pong"


def test_sigterm_drains_in_flight_requests_and_exits_0(
    processes: Processes, tmp_path: Path
) -> None:
    in_flight_then(lambda mesh, admin: os.kill(mesh.pid, signal.SIGTERM), processes, tmp_path)


def test_admin_shutdown_drains_when_allowed(processes: Processes, tmp_path: Path) -> None:
    def shutdown(mesh: Any, admin_port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        conn.request("POST", "/admin/shutdown")
        assert conn.getresponse().status in (200, 202)

    in_flight_then(shutdown, processes, tmp_path, extra_admin="  allowShutdown: true")


def test_admin_shutdown_is_refused_unless_allowed(processes: Processes, tmp_path: Path) -> None:
    mesh, proxy_port, admin_port = start_mesh(processes, tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("POST", "/admin/shutdown")
    assert conn.getresponse().status == 403
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    conn.request("GET", "/admin/shutdown")
    assert conn.getresponse().status == 405
    assert mesh.poll() is None


def test_bad_config_exits_2_with_every_error_and_binds_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    admin_port = free_port()
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"admin: {{port: {admin_port}}}\n"
        "routers:\n- protocol: http\n  servers: [{port: abc}]\n  dtabb: /svc => /$/nil;\n"
    )
    proc = processes.l5d("run", str(config), name="bad")
    assert proc.wait(30) == 2
    log = processes.log(proc)
    assert "routers[0].servers[0].port" in log and "dtabb" in log and "did you mean 'dtab'" in log
    assert "Traceback" not in log
    assert not port_open("127.0.0.1", admin_port)


def test_a_port_in_use_stops_everything_and_exits_1(processes: Processes, tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        free, admin_port = free_port(), free_port()
        config = tmp_path / "ports.yaml"
        config.write_text(
            f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
routers:
- protocol: http
  label: a
  dtab: /svc => /$/inet/127.0.0.1/1;
  servers: [{{ip: 127.0.0.1, port: {free}}}]
- protocol: http
  label: b
  dtab: /svc => /$/inet/127.0.0.1/1;
  servers: [{{ip: 127.0.0.1, port: {taken}}}]
"""
        )
        proc = processes.l5d("run", str(config), name="ports")
        assert proc.wait(30) == 1, processes.log(proc)
        assert "cannot start" in processes.log(proc)
        assert not port_open("127.0.0.1", free), "the router that did start was stopped"
        assert not port_open("127.0.0.1", admin_port)
    finally:
        blocker.close()


def test_streaming_disabled_buffers_request_bodies_up_to_max_request_kb(
    processes: Processes, tmp_path: Path
) -> None:
    """With streamingEnabled: false a 64 KB POST is buffered, so a retryable 5XX is retried.

    The backend fails every first attempt of a request (by request id) and answers the
    retry; with streaming on, the same body streams, cannot be replayed and is not retried.
    """
    import http.server

    seen: dict[str, int] = {}

    class FailFirst(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rid = self.headers["l5d-reqid"]
            seen[rid] = seen.get(rid, 0) + 1
            status = 503 if seen[rid] == 1 else 200
            answer = b"%d bytes" % len(body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailFirst)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        results = {}
        for streaming in ("true", "false"):
            proxy_port, admin_port = free_port(), free_port()
            config = tmp_path / f"streaming-{streaming}.yaml"
            config.write_text(
                f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
routers:
- protocol: http
  streamingEnabled: {streaming}
  maxRequestKB: 128
  dtab: /svc => /$/inet/127.0.0.1/{backend.server_address[1]};
  service:
    responseClassifier: {{kind: io.l5d.http.retryableAll5XX}}
  servers: [{{ip: 127.0.0.1, port: {proxy_port}}}]
"""
            )
            processes.l5d("run", str(config), name=f"mesh-{streaming}")
            wait_for_port("127.0.0.1", proxy_port)
            conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
            conn.request("POST", "/upload", body=b"x" * 65536, headers={"Host": "svc"})
            response = conn.getresponse()
            results[streaming] = (response.status, response.read())
            conn.close()
        assert results["false"] == (200, b"65536 bytes"), "buffered: the 503 was retried"
        assert results["true"][0] == 503, "streamed: not replayable, so not retried"
    finally:
        backend.shutdown()
