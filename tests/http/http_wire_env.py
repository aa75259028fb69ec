"""Helpers for the HTTP wire tests: a backend and harness proxies as real processes.

Processes are started once per test module (startup dominates these tests) through the
shared ``Processes`` helper, so each is stopped by PID at teardown.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from l5d_testing import Processes, free_port, wait_for_port, wait_until  # noqa: E402

__all__ = [
    "Processes",
    "free_port",
    "wait_for_port",
    "wait_until",
    "Wire",
    "raw_exchange",
    "read_response",
    "rss_peak_kb",
]


class Wire:
    """A backend plus proxies in front of it (extra ones with other settings on demand)."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.backend_port = free_port()
        self.backend = procs.start(
            sys.executable, str(HERE / "backend.py"), str(self.backend_port), name="backend"
        )
        wait_for_port("127.0.0.1", self.backend_port)
        self.proxy_port, self.proxy = self.start_proxy()

    def start_proxy(self, *extra: str, upstream: str | None = None) -> tuple[int, Any]:
        port = free_port()
        proc = self.procs.start(
            sys.executable,
            str(HERE / "proxy_harness.py"),
            "--listen",
            str(port),
            "--upstream",
            upstream or f"127.0.0.1:{self.backend_port}",
            *extra,
            name="proxy",
        )
        wait_for_port("127.0.0.1", port)
        return port, proc

    def backend_stats(self) -> dict[str, int]:
        status, _, body = raw_exchange(
            self.backend_port, b"GET /stats HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        )
        assert status == 200
        result: dict[str, int] = json.loads(body)
        return result


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


class Reader:
    """Reads HTTP/1.1 responses off a socket, independently of the code under test."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        if not data:
            return False
        self.buf += data
        return True

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before {marker!r}; got {self.buf[:200]!r}")
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def closed(self) -> bool:
        """True when the peer has closed (reads EOF or a reset)."""
        if self.buf:
            return False
        try:
            return not self._fill()
        except ConnectionResetError:
            return True


def read_response(
    reader: Reader, head_request: bool = False
) -> tuple[int, dict[str, list[str]], bytes, list[str]]:
    """(status, headers lowercased -> values, body, trailer lines), skipping 1xx."""
    while True:
        head = reader.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.setdefault(k.strip().lower(), []).append(v.strip())
        if status >= 200 or status == 101:
            break
    trailers: list[str] = []
    if head_request or status in (204, 304):
        return status, headers, b"", trailers
    if "chunked" in ",".join(headers.get("transfer-encoding", [])):
        parts = []
        while True:
            size = int(reader.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while True:
                    line = reader.read_until(b"\r\n")
                    if line == b"\r\n":
                        break
                    trailers.append(line.decode().strip())
                break
            parts.append(reader.read_exact(size))
            reader.read_exact(2)
        return status, headers, b"".join(parts), trailers
    if "content-length" in headers:
        return status, headers, reader.read_exact(int(headers["content-length"][0])), trailers
    return status, headers, reader.read_to_eof(), trailers


def raw_exchange(
    port: int, data: bytes, head_request: bool = False
) -> tuple[int, dict[str, list[str]], bytes]:
    with connect(port) as sock:
        sock.sendall(data)
        status, headers, body, _ = read_response(Reader(sock), head_request)
        return status, headers, body


def rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_closed(reader: Reader, timeout: float = 5.0) -> float:
    """Seconds until the peer closed the connection (fails after ``timeout``)."""
    start = time.monotonic()
    reader.sock.settimeout(timeout)
    assert reader.closed(), "connection still open"
    return time.monotonic() - start
