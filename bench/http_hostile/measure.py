"""Issue 10's HTTP findings (3, 4, 5, 8) measured against a real ``l5d-twisted run``.

    python3 bench/http_hostile/measure.py                    # this checkout
    python3 bench/http_hostile/measure.py --tree /tmp/old    # another (e.g. ``git archive``)
    python3 bench/http_hostile/measure.py --only hung slow   # some of: accrual host bigheader hung slow

On 127.0.0.1 and free ports: two ``world`` backends (``tests/http/backend.py``), a backend
answering with a 30 MB header, a backend that accepts and never answers, and one mesh
(io.l5d.fs, consecutive-failures accrual, every other key at its default).  Prints JSON:

* ``accrual``: 12 chunked uploads with a malformed chunk size, then 12 abandoned mid-way:
  their statuses, ``failure_accrual/removals``, the client scope's failures and
  client_errors, and 20 probes after;
* ``host``: the Host the backend sees for ``GET http://world/`` sent with ``Host: hello``;
  the status of two Host headers and of an ``HTTP/2.0`` request line;
* ``bigheader``: status, time and RSS (current and peak growth) for a 30 MB response header;
* ``hung``: 1,000 requests to the never-answering backend: the mesh's open descriptors
  after 3 s and 20 s, how the 1,000 were answered by then, and probes meanwhile;
* ``slow``: a chunked upload sending 5 bytes every 5 s: what it was answered, after how long.

Figures depend on the machine and its load (recorded as ``loadavg``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from l5d_testing import free_port, wait_for_port  # noqa: E402

BACKEND = REPO / "tests" / "http" / "backend.py"
ALL = ("accrual", "host", "bigheader", "hung", "slow")
UPLOAD = b"POST http://world/sink HTTP/1.1\r\nHost: world\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
PROBE = b"GET http://world/inspect HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n"


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """One response (bodies with Content-Length), or whatever came before EOF/timeout."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return buf
            buf += data
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(v)
                        for k, _, v in (f.partition(b":") for f in head.split(b"\r\n")[1:])
                        if k.strip().lower() == b"content-length"
                    ),
                    0,
                )
                if len(rest) >= length:
                    return buf
    except (TimeoutError, ConnectionResetError):
        return buf


def exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_answer(sock, timeout)


def status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None


class Listener:
    """A loopback backend run on a thread: ``big`` (a 30 MB header) or ``hang`` (silence)."""

    def __init__(self, kind: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self.kind = kind
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.kind == "big":
                threading.Thread(target=self._big, args=(conn,), daemon=True).start()

    @staticmethod
    def _big(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: ")
            for _ in range(480):  # 30 MB
                conn.sendall(b"a" * 65536)
            conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Setup:
    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = Path(tempfile.mkdtemp())
        self.worlds = [free_port(), free_port()]
        for port in self.worlds:
            self._start(sys.executable, str(BACKEND), str(port))
        self.big, self.hang = Listener("big"), Listener("hang")
        disco = self.tmp / "disco"
        disco.mkdir()
        (disco / "world").write_text("".join(f"127.0.0.1 {p}\n" for p in self.worlds))
        (disco / "big").write_text(f"127.0.0.1 {self.big.port}\n")
        (disco / "hang").write_text(f"127.0.0.1 {self.hang.port}\n")
        self.port, self.admin = free_port(), free_port()
        config = self.tmp / "linkerd.yaml"
        config.write_text(
            f"admin: {{ip: 127.0.0.1, port: {self.admin}}}\n"
            f"namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]\n"
            "routers:\n- protocol: http\n  label: outgoing\n  dtab: /svc => /#/io.l5d.fs;\n"
            f"  servers: [{{ip: 127.0.0.1, port: {self.port}}}]\n"
        )
        self.mesh = self._start(sys.executable, "-m", "l5d_twisted", "run", str(config))
        for port in [*self.worlds, self.port, self.admin]:
            wait_for_port("127.0.0.1", port, 30)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(self.tree))
        log = open(self.tmp / f"proc-{len(self.procs)}.log", "wb")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(
            list(args),
            cwd=self.tree,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.big.close()
        self.hang.close()

    def metric_sum(self, suffix: str, infix: str = "") -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.admin}/admin/metrics.json", timeout=10
        ) as r:
            metrics = json.loads(r.read())
        return sum(
            v
            for k, v in metrics.items()
            if k.endswith(suffix) and infix in k and isinstance(v, (int, float))
        )

    def uploads_in_progress(self) -> int:
        total = 0
        for port in self.worlds:
            answer = exchange(port, b"GET /stats HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            total += json.loads(answer.partition(b"\r\n\r\n")[2])["streaming"]
        return total


def wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def accrual(s: Setup, out: dict[str, Any]) -> None:
    out["malformed_statuses"] = [
        status(exchange(s.port, UPLOAD + b"zz\r\nnot a chunk\r\n")) for _ in range(12)
    ]
    out["removals_after_12_malformed"] = s.metric_sum("failure_accrual/removals")
    for _ in range(12):
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(UPLOAD)
        wait(lambda: s.uploads_in_progress() >= 1)
        sock.close()
        wait(lambda: s.uploads_in_progress() == 0)
    out["removals_after_12_abandoned_more"] = s.metric_sum("failure_accrual/removals")
    out["client_scope_failures"] = s.metric_sum("failures", "rt/outgoing/client/")
    out["client_scope_client_errors"] = s.metric_sum("client_errors", "rt/outgoing/client/")
    out["probes_ok_of_20_after"] = [status(exchange(s.port, PROBE)) for _ in range(20)].count(200)


def host(s: Setup, out: dict[str, Any]) -> None:
    answer = exchange(
        s.port, b"GET http://world/inspect HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n"
    )
    seen = {k.lower(): v for k, v in json.loads(answer.partition(b"\r\n\r\n")[2])["headers"]}
    out["host_seen_for_absolute_world_with_host_hello"] = seen.get("host")
    out["two_host_headers_status"] = status(
        exchange(
            s.port,
            b"GET /inspect HTTP/1.1\r\nHost: world\r\nHost: hello\r\nConnection: close\r\n\r\n",
        )
    )
    out["http_2_0_request_line_status"] = status(
        exchange(s.port, b"GET /inspect HTTP/2.0\r\nHost: world\r\n\r\n")
    )


def bigheader(s: Setup, out: dict[str, Any]) -> None:
    rss0, peak0 = proc_status(s.mesh.pid, "VmRSS"), proc_status(s.mesh.pid, "VmHWM")
    start = time.monotonic()
    out["bigheader_status"] = status(
        exchange(s.port, b"GET http://big/ HTTP/1.1\r\nHost: big\r\nConnection: close\r\n\r\n", 60)
    )
    out["bigheader_seconds"] = round(time.monotonic() - start, 2)
    out["bigheader_rss_mb_before_after"] = [
        round(rss0 / 1024, 1),
        round(proc_status(s.mesh.pid, "VmRSS") / 1024, 1),
    ]
    out["bigheader_peak_rss_growth_mb"] = round(
        (proc_status(s.mesh.pid, "VmHWM") - peak0) / 1024, 1
    )


def hung(s: Setup, out: dict[str, Any]) -> None:
    fds0 = open_fds(s.mesh.pid)
    socks = []
    for _ in range(1000):
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"GET http://hang/ HTTP/1.1\r\nHost: hang\r\n\r\n")
        socks.append(sock)
    time.sleep(3)
    out["hung_fds_before_and_at_3s"] = [fds0, open_fds(s.mesh.pid)]
    probes = ok = 0
    start = time.monotonic()
    while time.monotonic() - start < 15:
        probes += 1
        try:
            ok += status(exchange(s.port, PROBE, 5)) == 200
        except OSError:
            pass
        time.sleep(0.5)
    time.sleep(2)
    out["hung_fds_at_20s"] = open_fds(s.mesh.pid)
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(500)}
    answers: dict[str, int] = {}
    for sock in socks:
        key = "waiting"
        if sock.fileno() in ready:
            try:
                data = sock.recv(100)
                key = str(status(data)) if data else "closed"
            except OSError:
                key = "reset"
        answers[key] = answers.get(key, 0) + 1
        sock.close()
    out["hung_answers_at_20s"] = answers
    out["hung_probes_ok"] = f"{ok}/{probes}"


def slow(s: Setup, out: dict[str, Any]) -> None:
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(
        b"POST http://world/sink HTTP/1.1\r\nHost: world\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    start = time.monotonic()
    got = b""
    closed = False
    while time.monotonic() - start < 40 and not got and not closed:
        try:
            sock.sendall(b"5\r\nhello\r\n")
        except OSError:
            break
        got = read_answer(sock, 5.0)
        closed = not got and sock.fileno() < 0
    out["slow_upload_answer"] = got.split(b"\r\n")[0].decode() if got else "none (still open)"
    out["slow_upload_seconds"] = round(time.monotonic() - start, 1)
    sock.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", default=str(REPO), help="the checkout whose l5d_twisted runs")
    parser.add_argument("--only", nargs="*", choices=ALL, default=list(ALL))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the processes it started are stopped
    setup = Setup(Path(args.tree))
    out: dict[str, Any] = {"tree": args.tree}
    try:
        for name in args.only:
            globals()[name](setup, out)
    finally:
        out["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
        setup.stop()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
