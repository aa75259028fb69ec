"""Start-up time: from exec of ``l5d-twisted run`` to its first routed request.

    python3 bench/startup/startup.py                  # 7 runs on the proxy benchmark's config
    python3 bench/startup/startup.py --runs 3 --config my.yaml --port 4140 --host web

Each run spawns a fresh ``python3 -m l5d_twisted run CONFIG`` (this checkout's code) and
polls the router port every 5 ms with ``GET /`` (``Host: <host>``) until the answer is a
200 from the backend (a 502 while the name is still binding does not count), with a
deadline; the time from just before the spawn to that answer is the start-up time.  The CPU
time the process used by then is recorded too: contention on a shared machine does not
inflate it.  The process is then stopped by PID.  Without ``--config`` it writes the proxy benchmark's config
(one router, ``io.l5d.fs``, Prometheus telemeter) and starts a minimal backend of its own on
a free loopback port.  Prints one JSON object: every run's seconds, the median and the max,
and the RSS (``VmRSS``) of the process just after its first routed request.

Before measuring, :func:`compile_as_shipped` byte-compiles this checkout's ``l5d_twisted``, as
the image does (``scripts/build-image.sh``) and ``pip install`` does: with
``PYTHONDONTWRITEBYTECODE=1`` in the environment (this machine sets it), every start would
otherwise compile ~120 modules from source, which costs start-up time and ~1.8 MB of RSS
(measured 40.6 -> 38.7 MB at the first request) that a shipped proxy does not pay.
``--from-source`` measures that case.

``--importtime`` also runs it once under ``python3 -X importtime`` and prints the imports
costing most (cumulative ms), to see what start-up spends on.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent

BENCH_CONFIG = """\
admin:
  ip: 127.0.0.1
  port: {admin_port}
  shutdownGraceMs: 1000
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  label: bench
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: {port}
telemetry:
- kind: io.l5d.prometheus
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``workers: N`` runs a supervisor and N workers)."""
    pids = [pid]
    for p in pids:
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids.extend(int(k) for k in (task / "children").read_text().split())
    return pids


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used by the process and its descendants (``/proc/PID/stat``)."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """VmRSS of the process and its descendants."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text(), re.M)
            total += int(m.group(1)) if m else 0
    return total


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"hello from the startup backend\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def backend() -> Iterator[int]:
    """A minimal HTTP backend on a free loopback port, in a thread of this process."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def first_200(port: int, host: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Poll until a routed 200; returns the monotonic time it arrived."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"l5d-twisted exited with {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                data = s.recv(64)
            if data.startswith(b"HTTP/1.1 200"):
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no routed 200 on 127.0.0.1:{port} within {timeout:g}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in its session


def one_run(
    config: Path,
    port: int,
    host: str,
    timeout: float = 30.0,
    python_args: tuple[str, ...] = (),
    stderr: Any = subprocess.DEVNULL,
    preexec_fn: Any = None,
) -> tuple[float, float, int]:
    """Seconds from spawn to the first routed 200, the CPU seconds the process used by then
    (what contention on a shared machine does not inflate) and its RSS (kB) right then."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, *python_args, "-m", "l5d_twisted", "run", str(config)]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, "--log-level", "warn"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(REPO),  # python -m puts the working directory first on sys.path
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    try:
        answered = first_200(port, host, proc, timeout)
        return answered - started, cpu_s(proc.pid), rss_kb(proc.pid)
    finally:
        stop(proc)


def compile_as_shipped() -> str:
    """Byte-compile ``l5d_twisted`` into its ``__pycache__`` (git-ignored), as installs do.

    Returns what was done, for the report line.  Stale ``.pyc`` files are rewritten, so
    this is cheap when nothing changed.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "l5d_twisted")],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    return "l5d_twisted byte-compiled first, as the image is"


def measure(
    config: Path, port: int, host: str, runs: int, preexec_fn: Any = None
) -> dict[str, Any]:
    seconds: list[float] = []
    cpu: list[float] = []
    rss: list[int] = []
    for _ in range(runs):
        s, c, kb = one_run(config, port, host, preexec_fn=preexec_fn)
        seconds.append(round(s, 3))
        cpu.append(round(c, 2))
        rss.append(kb)
    return {
        "runs_s": seconds,
        "median_s": round(statistics.median(seconds), 3),
        "max_s": max(seconds),
        "cpu_s": cpu,
        "median_cpu_s": round(statistics.median(cpu), 2),
        "rss_at_first_request_mb": round(statistics.median(rss) / 1024, 1),
    }


def importtime(config: Path, port: int, host: str, top: int = 25) -> list[tuple[float, str]]:
    """The imports costing most (cumulative ms) in one run under ``-X importtime``."""
    with tempfile.TemporaryFile() as err:
        one_run(config, port, host, python_args=("-X", "importtime"), stderr=err)
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    costs = []
    for line in lines:
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[len("import time:") :].split("|", 2)
            costs.append((int(cumulative) / 1000.0, name.rstrip()))
    return sorted(costs, reverse=True)[:top]


@contextlib.contextmanager
def bench_config() -> Iterator[tuple[Path, int]]:
    """The proxy benchmark's config, routing /svc/backend to a backend of our own."""
    with tempfile.TemporaryDirectory(prefix="l5d-startup-") as tmp, backend() as backend_port:
        disco = Path(tmp) / "disco"
        disco.mkdir()
        (disco / "backend").write_text(f"127.0.0.1 {backend_port}\n")
        port = free_port()
        config = Path(tmp) / "l5d.yaml"
        config.write_text(BENCH_CONFIG.format(admin_port=free_port(), port=port, disco=disco))
        yield config, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs (default %(default)s)")
    parser.add_argument("--config", type=Path, help="config to run (default: the bench's)")
    parser.add_argument("--port", type=int, help="its router port (with --config)")
    parser.add_argument("--host", default="backend", help="Host header (default %(default)s)")
    parser.add_argument("--importtime", action="store_true", help="also list the costly imports")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="do not byte-compile l5d_twisted first (with PYTHONDONTWRITEBYTECODE=1, every start compiles it)",
    )
    args = parser.parse_args(argv)
    if args.config is not None and args.port is None:
        parser.error("--config needs --port")
    if not args.from_source:
        compile_as_shipped()
    with contextlib.ExitStack() as stack:
        if args.config is None:
            config, port = stack.enter_context(bench_config())
        else:
            config, port = args.config, args.port
        try:
            result = measure(config, port, args.host, args.runs)
            if args.importtime:
                result["importtime_ms"] = [
                    [round(ms, 1), name] for ms, name in importtime(config, port, args.host)
                ]
        except RuntimeError as e:
            print(f"startup: {e}", file=sys.stderr)
            return 1
    result["byte_compiled"] = not args.from_source
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
