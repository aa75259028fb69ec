"""A real proxy with two real backends, for attacking over raw sockets.

``FuzzMesh`` starts, on free 127.0.0.1 ports, two ``tests/http/backend.py`` backends
(services ``a`` and ``b``; ``ab`` is both), an ``io.l5d.fs`` directory naming them, a
*canary* listener that no config names (any connection to it means the proxy dialled an
address a client chose), and one ``l5d-twisted run`` router with the project's defaults
(only ``/svc => /#/io.l5d.fs;``).  ``loop`` is a service the operator pointed at the proxy
itself (a configured routing loop).

After each batch of attacks, ``check_health`` asserts what must always hold: the process
is alive, a probe through the proxy is answered correctly within ``PROBE_DEADLINE_S``, RSS
stays under ``RSS_LIMIT_MB``, the canary was never dialled, and no answer came from the
admin server through the data plane.  Every process started here is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, settings
from l5d_testing import REPO, Processes, free_port, wait_for_port, wait_until

BACKEND = REPO / "tests" / "http" / "backend.py"
PROBE_DEADLINE_S = 2.0
RSS_LIMIT_MB = 150.0
FD_LIMIT = 400  # open files of the proxy after a batch (it starts with ~20)

# Deterministic and database-less: CI runs the same examples every time.  No shrinking:
# the proxy is stateful (an early example can wreck it and every later one then fails), so
# the example that first failed is the one reported.
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


class Canary:
    """A listener no config names: records every connection it is given."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 0))
        self.sock.listen(64)
        self.ip = ip
        self.port = int(self.sock.getsockname()[1])
        self.connections: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.connections.append(data or b"<connected>")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Exchange:
    """What came back on one connection: the whole responses, and whether it ended."""

    raw: bytes
    responses: list[Response] = field(default_factory=list)
    closed: bool = False
    seconds: float = 0.0


_HEAD_END = b"\r\n\r\n"


def parse_responses(data: bytes, head_only: bool = False) -> tuple[list[Response], bytes]:
    """Whole responses at the start of ``data`` and what is left (an incomplete one)."""
    out: list[Response] = []
    while True:
        end = data.find(_HEAD_END)
        if end < 0:
            return out, data
        lines = data[:end].decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            return out, data
        headers = [
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])
        ]
        rest = data[end + 4 :]
        resp = Response(status, headers, b"")
        te = (resp.header("transfer-encoding") or "").lower()
        if head_only or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in te:
            body = b""
            pos = 0
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    return out, data
                size = int(rest[pos:nl].split(b";")[0] or b"0", 16)
                if size == 0:
                    tend = rest.find(_HEAD_END, nl) if rest[nl + 2 : nl + 4] != b"\r\n" else nl
                    if tend < 0:
                        return out, data
                    rest = rest[tend + 4 :]
                    break
                if len(rest) < nl + 2 + size + 2:
                    return out, data
                body += rest[nl + 2 : nl + 2 + size]
                pos = nl + 2 + size + 2
            resp.body = body
        elif resp.header("content-length") is not None:
            n = int(resp.header("content-length") or 0)
            if len(rest) < n:
                return out, data
            resp.body, rest = rest[:n], rest[n:]
        else:  # delimited by close: only whole once the connection ended
            return out, data
        if not (100 <= status < 200):
            out.append(resp)
        data = rest


def exchange(
    port: int,
    data: bytes,
    *,
    split: int = 0,
    expect: int = 1,
    idle: float = 0.3,
    total: float = 3.0,
    head_only: bool = False,
    ip: str = "127.0.0.1",
) -> Exchange:
    """Send ``data`` (in pieces of ``split`` bytes when > 0) and read what comes back.

    Stops when ``expect`` whole responses arrived, the peer closed, nothing came for
    ``idle`` s after the last byte, or after ``total`` s.
    """
    started = time.monotonic()
    got = b""
    closed = False
    with socket.create_connection((ip, port), timeout=total) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if split > 0:
                for i in range(0, len(data), split):
                    s.sendall(data[i : i + split])
            else:
                s.sendall(data)
        except OSError:  # the proxy may close early on garbage: read what it said
            pass
        deadline = started + total
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            s.settimeout(min(idle, deadline - now))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
            responses, _ = parse_responses(got, head_only)
            if len(responses) >= expect and expect > 0:
                break
    responses, rest = parse_responses(got, head_only)
    if closed and rest.startswith(b"HTTP/1.1 ") and _HEAD_END in rest:
        # a close-delimited body: whole now that the connection ended
        end = rest.find(_HEAD_END)
        lines = rest[:end].decode("latin-1").split("\r\n")
        with_status = lines[0].split(" ", 2)
        if len(with_status) > 1 and with_status[1].isdigit():
            headers = [
                (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])
            ]
            responses.append(Response(int(with_status[1]), headers, rest[end + 4 :]))
    return Exchange(got, responses, closed, time.monotonic() - started)


def request(
    method: str,
    target: str,
    host: str | None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def proc_status(pid: int, key: str) -> float:
    """A ``kB`` value of /proc/<pid>/status, in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024.0 if m else 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class FuzzMesh:
    def __init__(
        self, processes: Processes, work: Path, extra_router: dict[str, object] | None = None
    ) -> None:
        self.processes = processes
        self.work = work
        self.disco = work / "disco"
        self.disco.mkdir()
        self.backend_ports: list[int] = []
        for i in range(2):
            port = free_port()
            processes.start(sys.executable, str(BACKEND), str(port), name=f"backend{i}")
            self.backend_ports.append(port)
        for port in self.backend_ports:
            wait_for_port("127.0.0.1", port)
        self.canary = Canary()
        self.port = free_port()
        self.admin_port = free_port()
        a, b = self.backend_ports
        (self.disco / "a").write_text(f"127.0.0.1 {a}\n")
        (self.disco / "b").write_text(f"127.0.0.1 {b}\n")
        (self.disco / "ab").write_text(f"127.0.0.1 {a}\n127.0.0.1 {b}\n")
        (self.disco / "loop").write_text(f"127.0.0.1 {self.port}\n")
        router: dict[str, object] = {
            "protocol": "http",
            "label": "out",
            "dtab": "/svc => /#/io.l5d.fs;",
            "servers": [{"ip": "127.0.0.1", "port": self.port}],
        }
        router.update(extra_router or {})
        config = {
            "admin": {"ip": "127.0.0.1", "port": self.admin_port},
            "namers": [{"kind": "io.l5d.fs", "rootDir": str(self.disco)}],
            "routers": [router],
        }
        self.config_path = work / "l5d.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc = processes.l5d("run", str(self.config_path), "--log-level", "warn", name="l5d")
        wait_for_port("127.0.0.1", self.port, timeout=30)
        wait_for_port("127.0.0.1", self.admin_port, timeout=30)
        self.admin_signature = self._admin_config_text()
        self.probes = 0
        wait_until(
            lambda: self.probe_once() is None, timeout=30, what="a first probe through the proxy"
        )

    def _admin_config_text(self) -> bytes:
        ex = exchange(
            self.admin_port,
            request("GET", "/config.json", "127.0.0.1", [("Connection", "close")]),
            total=10,
        )
        assert ex.responses and ex.responses[0].status == 200, ex.raw[:300]
        # the admin's own config answer, as it would look if relayed through the proxy
        return ex.responses[0].body[:64]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS")

    def fds(self) -> int:
        return open_fds(self.pid)

    def probe_once(self, service: str | None = None) -> str | None:
        """None when a probe through the proxy is answered right in time, else why not."""
        self.probes += 1
        service = service or ("a" if self.probes % 2 else "b")
        target = f"/inspect?probe={self.probes}"
        try:
            ex = exchange(
                self.port,
                request("GET", target, service),
                total=PROBE_DEADLINE_S,
                idle=PROBE_DEADLINE_S,
            )
        except OSError as e:
            return f"probe connect failed: {e!r}"
        if not ex.responses:
            return f"no answer to a probe within {PROBE_DEADLINE_S}s ({ex.seconds:.2f}s, got {ex.raw[:200]!r})"
        resp = ex.responses[0]
        if resp.status != 200:
            return f"probe answered {resp.status}: {resp.body[:200]!r}"
        seen = json.loads(resp.body)
        if seen.get("target") != target:
            return f"probe desynchronised: sent {target}, the backend answered for {seen.get('target')}"
        return None

    def unexpected_dials(self) -> list[bytes]:
        return list(self.canary.connections)

    def check_health(self, context: object = "") -> None:
        """What must hold after any batch of attacks."""
        assert self.proc.poll() is None, (
            f"the proxy exited ({self.proc.returncode}) after {context!r}"
        )
        problem = self.probe_once()
        assert problem is None, f"{problem} after {context!r}"
        rss = self.rss_mb()
        assert rss < RSS_LIMIT_MB, f"RSS {rss:.0f} MB >= {RSS_LIMIT_MB} MB after {context!r}"
        fds = self.fds()
        assert fds < FD_LIMIT, f"{fds} open files after {context!r}"
        assert not self.canary.connections, (
            f"the proxy dialled an unconfigured address (the canary) after {context!r}: {self.canary.connections[:3]!r}"
        )

    def assert_not_admin(self, ex: Exchange, context: object = "") -> None:
        for resp in ex.responses:
            assert not (
                resp.status < 300
                and self.admin_signature
                and resp.body.startswith(self.admin_signature)
            ), f"the admin server answered through the data plane for {context!r}"

    def assert_served_by_configured_backends(self, ex: Exchange, context: object = "") -> None:
        """Each answer a backend gave says (``/inspect`` echoes what it received) which client
        the proxy bound the request to: only the configured namer's, never an address a
        request dtab named (``/$/inet/...``)."""
        for resp in ex.responses:
            if resp.status != 200 or not resp.body.startswith(b'{"method"'):
                continue
            try:
                seen = json.loads(resp.body)
            except ValueError:
                continue
            clients = [v for k, v in seen.get("headers", []) if k.lower() == "l5d-dst-client"]
            assert all(c.startswith("/#/io.l5d.fs/") for c in clients), (
                f"served through {clients} for {context!r}"
            )

    def metrics(self) -> dict[str, float]:
        ex = exchange(
            self.admin_port,
            request("GET", "/admin/metrics.json", "127.0.0.1", [("Connection", "close")]),
            total=10,
            idle=5,
        )
        assert ex.responses and ex.responses[0].status == 200
        data: dict[str, float] = json.loads(ex.responses[0].body)
        return data

    def close(self) -> None:
        self.canary.close()
        self.processes.stop_all()


class MeshHolder:
    """One mesh per test module, replaced when an attack left it unhealthy.

    Before a fix lands, the attack it fixes can wreck the proxy (gigabytes of RSS, a frozen
    reactor); the next test then gets a fresh one, so each failure is its own.
    """

    def __init__(
        self, tmp_path_factory: object, extra_router: dict[str, object] | None = None
    ) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.extra_router = extra_router
        self.current: FuzzMesh | None = None
        self.processes: Processes | None = None

    def _healthy(self, mesh: FuzzMesh) -> bool:
        try:
            mesh.check_health("the previous test")
        except (AssertionError, OSError, ValueError):
            return False
        return mesh.rss_mb() < RSS_LIMIT_MB * 0.75

    def healthy(self) -> FuzzMesh:
        if self.current is not None and self._healthy(self.current):
            return self.current
        self.close()
        work = self.tmp_path_factory.mktemp("fuzz")  # type: ignore[attr-defined]
        self.processes = Processes(work)
        self.current = FuzzMesh(self.processes, work, self.extra_router)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.canary.close()
            self.current = None
        if self.processes is not None:
            self.processes.stop_all()
            self.processes = None
