"""Micro benchmark of the HTTP wire: direct backend vs nginx proxy vs the harness proxy.

    python3 bench/http_wire/run.py [--duration 5] [--connections 50] [--threads 2] [--rounds 3]

Starts (all on 127.0.0.1, free ports, stopped by PID at the end): an nginx backend answering
a small fixed body, an nginx reverse proxy with keep-alive upstream connections, a blind
Twisted byte relay (``twisted_relay.py``: the reactor's own floor) and
``tests/http/proxy_harness.py`` (serve_http + EndpointClient); runs ``wrk`` against each
and prints requests/s, the proxy process's CPU per request, and the ratio of the harness to
nginx.  Needs nginx and wrk.  On a shared machine compare CPU per request: req/s moves
with whatever else runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{backend};
        location / {{ return 200 "hello world, this is a small response body\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{proxy};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (and their reaped children), from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def nginx_workers(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wrk(port: int, duration: int, connections: int, threads: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        print("  wrk reported:", errors.group(0))
    total = re.search(r"(\d+) requests in", out)
    return (float(match.group(1)) if match else 0.0), (int(total.group(1)) if total else 0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} not found")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    backend, nginx_proxy, harness, relay = free_port(), free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, backend=backend, proxy=nginx_proxy))
        try:
            procs.append(
                subprocess.Popen(
                    [nginx, "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp],
                    stderr=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(REPO, "tests", "http", "proxy_harness.py"),
                        "--listen",
                        str(harness),
                        "--upstream",
                        f"127.0.0.1:{backend}",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(HERE, "twisted_relay.py"),
                        str(relay),
                        str(backend),
                    ]
                )
            )
            for port in (backend, nginx_proxy, harness, relay):
                wait_port(port)
            wrk(harness, 1, args.connections, args.threads)  # warm up
            results = {}
            # CPU per request of the proxy process itself: robust when other load shares the
            # machine, unlike req/s (nginx: its worker; harness: the Python process)
            proxy_pids = {
                "nginx proxy": nginx_workers(procs[0].pid),
                "l5d http wire": [procs[1].pid],
                "twisted relay": [procs[2].pid],
            }
            targets = (
                ("direct", backend),
                ("nginx proxy", nginx_proxy),
                ("twisted relay", relay),
                ("l5d http wire", harness),
            )
            rates: dict[str, list[float]] = {name: [] for name, _ in targets}
            cpu: dict[str, list[float]] = {name: [] for name, _ in targets}
            # interleaved rounds, medians: other load on the machine comes and goes
            for _ in range(args.rounds):
                for name, port in targets:
                    pids = proxy_pids.get(name, [])
                    before = cpu_seconds(pids)
                    rps, total = wrk(port, args.duration, args.connections, args.threads)
                    rates[name].append(rps)
                    cpu[name].append((cpu_seconds(pids) - before) / max(total, 1) * 1e6)
            for name, _ in targets:
                results[name] = statistics.median(rates[name])
                per = (
                    f"  proxy CPU {statistics.median(cpu[name]):6.1f} us/request"
                    if proxy_pids.get(name)
                    else ""
                )
                print(f"{name:>14}: {results[name]:10.0f} req/s{per}")
            ratio = results["l5d http wire"] / max(results["nginx proxy"], 1.0)
            print(
                f"harness / nginx proxy = {ratio:.2f}x (median of {args.rounds} rounds; "
                f"c={args.connections}, t={args.threads}, {args.duration}s each)"
            )
            print(
                f"load average during the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)"
            )
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        os.kill(proc.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
