"""The sample apps in real processes on free loopback ports."""

from __future__ import annotations

import http.client
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port, wait_until


def call(
    port: int,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_app(processes: Processes, app: str, *args: str, env: dict[str, str] | None = None) -> int:
    port = free_port()
    processes.l5d(
        "example", app, "--ip", "127.0.0.1", "--port", str(port), *args, env=env, name=app
    )
    wait_for_port("127.0.0.1", port)
    return port


def statuses(port: int, n: int) -> list[int]:
    """``n`` GETs over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(n):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            out.append(response.status)
    finally:
        conn.close()
    return out


def test_world_answers_with_its_ip_port_and_health(processes: Processes) -> None:
    # ip:port, not just the ip: instances on one machine share the ip (issue 16)
    port = start_app(processes, "world")
    assert call(port) == (200, f"world (127.0.0.1:{port})!".encode())
    assert call(port, "/any/path?x=1") == (200, f"world (127.0.0.1:{port})!".encode())
    assert call(port, "/health") == (200, b"ok\n")


def test_an_app_on_port_0_reports_the_port_it_got(processes: Processes) -> None:
    proc = processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", "0", name="world")
    match = wait_until(
        lambda: re.search(r"world listening on 127\.0\.0\.1:(\d+)", processes.log(proc)),
        what="the listening log line",
    )
    port = int(match.group(1))  # type: ignore[attr-defined]
    assert port != 0
    assert call(port) == (200, f"world (127.0.0.1:{port})!".encode())


def test_world_reports_pod_ip_when_set(processes: Processes) -> None:
    port = start_app(processes, "world", env={"POD_IP": "10.1.2.3"})
    assert call(port) == (200, b"world (10.1.2.3)!")


def test_failure_rate_knob_at_run_time(processes: Processes) -> None:
    port = start_app(processes, "world")
    assert set(statuses(port, 20)) == {200}
    assert call(port, "/setFailureRate", "POST", b"0.5") == (200, b"0.5\n")
    assert call(port, "/setFailureRate") == (200, b"0.5\n")
    results = statuses(port, 400)
    failed = results.count(500) / len(results)
    assert 0.35 <= failed <= 0.65, failed
    assert set(results) == {200, 500}
    assert call(port, "/setFailureRate", "POST", b"1") == (200, b"1\n")
    assert set(statuses(port, 20)) == {500}
    status, body = call(port, "/setFailureRate", "POST", b"1.5")
    assert status == 400 and b"between 0 and 1" in body
    status, body = call(port, "/setFailureRate", "POST", b"lots")
    assert status == 400 and b"number" in body
    assert call(port, "/setFailureRate", "PUT", b"0")[0] == 405
    assert call(port, "/health") == (200, b"ok\n")  # control paths ignore the knobs
    assert call(port, "/setFailureRate", "POST", b"0")[0] == 200
    assert set(statuses(port, 20)) == {200}


def test_failure_rate_flag(processes: Processes) -> None:
    port = start_app(processes, "world", "--failure-rate", "1")
    status, body = call(port)
    assert status == 500 and b"failed on purpose" in body


def timed_call(port: int) -> tuple[int, float]:
    started = time.monotonic()
    status, _ = call(port)
    return status, time.monotonic() - started


def test_latency_knob_and_flag(processes: Processes) -> None:
    port = start_app(processes, "world", "--latency-ms", "150")
    status, took = timed_call(port)
    assert status == 200 and took >= 0.15
    assert call(port, "/setLatency", "POST", b"300") == (200, b"300\n")
    status, took = timed_call(port)
    assert status == 200 and took >= 0.3
    assert call(port, "/setLatency", "POST", b"0") == (200, b"0\n")
    status, took = timed_call(port)
    assert status == 200 and took < 0.15
    status, body = call(port, "/setLatency", "POST", b"-5")
    assert status == 400 and b"between 0 and" in body


def test_bad_flags_are_rejected_with_a_message(processes: Processes) -> None:
    proc = processes.l5d("example", "world", "--failure-rate", "2", name="bad")
    assert proc.wait(15) == 2
    assert "failure rate must be between 0 and 1" in processes.log(proc)


def test_port_in_use_is_a_clear_error(processes: Processes) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = processes.l5d("example", "world", "--port", str(port), name="busy")
        assert proc.wait(15) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in processes.log(proc)


def test_pipelined_requests_are_answered_in_order_and_garbage_gets_400(
    processes: Processes,
) -> None:
    port = start_app(processes, "world")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(
            b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /setLatency HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n0"
        )
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.index(b"ok\n") < data.index(b"world (") < data.rindex(b"\r\n\r\n0\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400")
    assert call(port) == (200, f"world (127.0.0.1:{port})!".encode())  # still serving


def test_sigterm_exits_cleanly(processes: Processes) -> None:
    start_app(processes, "world")
    proc = processes.procs[-1]
    assert processes.stop(proc) == 0
    assert "world stopped" in processes.log(proc)


# -- hello, through a stub proxy of our own -------------------------------------------------


class StubProxy:
    """Records what hello sends to its http_proxy and answers as ``world`` would."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.body = b"world (stub)!"
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                stub.requests.append(
                    {
                        "line": self.requestline,
                        "headers": list(self.headers.items()),
                        "client_port": self.client_address[1],
                    }
                )
                self.send_response(stub.status)
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_proxy() -> Iterator[StubProxy]:
    stub = StubProxy()
    try:
        yield stub
    finally:
        stub.close()


def test_hello_calls_world_through_the_proxy_copying_ctx_headers(
    processes: Processes, stub_proxy: StubProxy
) -> None:
    port = start_app(processes, "hello", env={"http_proxy": f"http://127.0.0.1:{stub_proxy.port}"})
    status, body = call(
        port,
        "/",
        headers={
            "l5d-ctx-deadline": "1 2",
            "L5d-Ctx-Trace": "abc",
            "l5d-dtab": "/svc=>/x",
            "l5d-reqid": "r1",
            "X-Other": "y",
        },
    )
    assert (status, body) == (200, f"Hello (127.0.0.1:{port}) world (stub)!".encode())
    (sent,) = stub_proxy.requests
    assert sent["line"] == "GET http://world/ HTTP/1.1"
    headers = {k.lower(): v for k, v in sent["headers"]}
    assert headers["host"] == "world"
    assert headers["l5d-ctx-deadline"] == "1 2"
    assert headers["l5d-ctx-trace"] == "abc"
    assert not {"l5d-dtab", "l5d-reqid", "x-other"} & headers.keys()
    # keep-alive: the next call reuses the pooled connection to the proxy
    assert call(port) == (200, f"Hello (127.0.0.1:{port}) world (stub)!".encode())
    assert stub_proxy.requests[1]["client_port"] == sent["client_port"]


def test_hello_target_flag_and_upstream_failures(
    processes: Processes, stub_proxy: StubProxy
) -> None:
    port = start_app(
        processes,
        "hello",
        "--target",
        "http://other:8080/x?y=1",
        env={"HTTP_PROXY": f"127.0.0.1:{stub_proxy.port}", "POD_IP": "10.9.9.9"},
    )
    assert call(port) == (200, b"Hello (10.9.9.9) world (stub)!")
    assert stub_proxy.requests[-1]["line"] == "GET http://other:8080/x?y=1 HTTP/1.1"
    stub_proxy.status, stub_proxy.body = 500, b"boom\nmore"
    status, body = call(port)
    assert status == 502 and b"answered 500: boom" in body


def test_hello_answers_502_when_the_proxy_is_down(processes: Processes) -> None:
    port = start_app(processes, "hello", env={"http_proxy": f"127.0.0.1:{free_port()}"})
    status, body = call(port)
    assert status == 502 and b"cannot reach http://world/" in body


def test_hello_without_proxy_calls_directly(processes: Processes) -> None:
    world = start_app(processes, "world")
    hello = start_app(processes, "hello", "--target", f"http://127.0.0.1:{world}/")
    assert call(hello) == (200, f"Hello (127.0.0.1:{hello}) world (127.0.0.1:{world})!".encode())
    assert call(world, "/setFailureRate", "POST", b"1")[0] == 200
    assert call(hello)[0] == 502


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
