"""The proxy benchmark: how much does l5d-twisted cost compared with no proxy and nginx?

    python3 bench/proxy_bench.py                 # the full run (about 2.5 minutes)
    python3 bench/proxy_bench.py --duration 3    # a quick look

One command.  On free loopback ports it starts

* **backend**: nginx, one worker, answering every request with a fixed small 200;
* **nginx proxy**: a second nginx, one worker, reverse-proxying to the backend over a
  keep-alive upstream pool (the usual tuned setup);
* **l5d-twisted**: ``l5d-twisted run`` on a generated config with one router whose dtab
  sends ``/svc/backend`` to the backend through the ``io.l5d.fs`` namer, default client
  and service settings (p2c, failure accrual, retries budget, metrics) and the
  Prometheus telemeter, i.e. what a user would run;

with ``--pin`` (the default) the proxies on the last CPU and the backend and load generators
on the others, so each proxy gets one core to itself as its single process/worker would;
then measures each path (direct, nginx, l5d-twisted) twice:

1. **fixed concurrency**: ``wrk -c 50 -t 2 -d <duration>s --latency``: requests/s, p50, p99;
2. **fixed rate**: 1,000 requests/s open-loop (``bench/rategen.py``; wrk cannot hold a
   rate and wrk2 is not packaged): p50, p99 measured from each request's due time.

The fixed-rate columns give latency from each request's due time (includes any lag of the
generator itself, shown as "generator lag") and from the moment it was actually written;
"added" is the proxy's latency from send minus direct's.  It prints a Markdown table with
the latency each proxy adds over direct and each proxy's
peak RSS during the runs (``VmHWM``, plus ``VmRSS`` sampled; for nginx the master plus its
worker), and with ``--json FILE`` writes the raw numbers.  Everything it starts is stopped
by PID at exit.

Caveat: load generator, proxy and backend share the machine's cores, as on a CI box; the
table records the core count and the load average so runs can be compared fairly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

BACKEND_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/backend.pid;
error_log {dir}/backend-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp;
  scgi_temp_path {dir}/tmp;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ return 200 "hello from the backend\\n"; }}
  }}
}}
"""

NGINX_PROXY_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp;
  scgi_temp_path {dir}/tmp;
  keepalive_requests 1000000;
  upstream backend {{
    server 127.0.0.1:{backend_port};
    keepalive 128;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""

L5D_CONF = """\
admin:
  ip: 127.0.0.1
  port: {admin_port}
  shutdownGraceMs: 1000
namers:
- kind: io.l5d.fs
  rootDir: {dir}/disco
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


def wait_for_http(
    port: int, host: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until ``GET /`` with ``Host: host`` answers 200 (deadline)."""
    deadline = time.monotonic() + timeout
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 200"):
                return
            last = data.split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port} did not answer 200 within {timeout:g}s (last: {last})")


def read_status_kb(pid: int, field_name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    for task_dir in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task_dir / "children").read_text().split()]
    return kids


class RssSampler:
    """Samples the summed VmRSS of a process and its children every 100 ms, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def pids(self) -> list[int]:
        return [self.pid, *children_of(self.pid)]

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(read_status_kb(p, "VmRSS") for p in self.pids())
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def hwm_kb(self) -> int:
        """Peak RSS since start (kernel's high-water mark), summed over the processes."""
        return sum(read_status_kb(p, "VmHWM") for p in self.pids())


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None  # the proxy process (None: direct)
    results: dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="l5d-bench-"))
        (self.dir / "tmp").mkdir()
        (self.dir / "disco").mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- processes ----------------------------------------------------------------------
    def cpus(self, role: str) -> set[int] | None:
        """With --pin: proxies on the last CPU, backend and load generators on the others."""
        available = sorted(os.sched_getaffinity(0))
        if not self.args.pin or len(available) < 2:
            return None
        return {available[-1]} if role == "proxy" else set(available[:-1])

    def pinned(self, role: str) -> Any:
        cpus = self.cpus(role)
        return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, role: str = "proxy"
    ) -> subprocess.Popen[bytes]:
        with open(self.dir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=self.pinned(role),
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(
                (self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            )
        return ""

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in its session
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def nginx(self, name: str, conf: str, role: str) -> subprocess.Popen[bytes]:
        path = self.dir / f"{name}.conf"
        path.write_text(conf)
        return self.start(
            name,
            [
                "nginx",
                "-p",
                str(self.dir),
                "-c",
                str(path),
                "-e",
                str(self.dir / f"{name}-startup.log"),
            ],
            role=role,
        )

    def setup(self) -> list[Target]:
        backend_port = free_port()
        self.nginx("backend", BACKEND_CONF.format(dir=self.dir, port=backend_port), role="load")
        wait_for_http(backend_port, "backend", proc=self.procs[-1])

        nginx_port = free_port()
        nginx = self.nginx(
            "nginx-proxy",
            NGINX_PROXY_CONF.format(dir=self.dir, port=nginx_port, backend_port=backend_port),
            role="proxy",
        )
        wait_for_http(nginx_port, "backend", proc=nginx)

        (self.dir / "disco" / "backend").write_text(f"127.0.0.1 {backend_port}\n")
        l5d_port = free_port()
        config = self.dir / "l5d.yaml"
        config.write_text(L5D_CONF.format(dir=self.dir, port=l5d_port, admin_port=free_port()))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        l5d = self.start(
            "l5d-twisted",
            [sys.executable, "-m", "l5d_twisted", "run", str(config), "--log-level", "warn"],
            env=env,
        )
        try:
            wait_for_http(l5d_port, "backend", proc=l5d)
        except RuntimeError as e:
            raise RuntimeError(
                f"{e}\n--- l5d-twisted log ---\n{self.log_tail('l5d-twisted')}"
            ) from None
        return [
            Target("direct", backend_port),
            Target("nginx", nginx_port, nginx),
            Target("l5d-twisted", l5d_port, l5d),
        ]

    # -- measurements -------------------------------------------------------------------
    def wrk(self, target: Target, duration: float) -> dict[str, Any]:
        a = self.args
        argv = [
            "wrk",
            "-c",
            str(a.connections),
            "-t",
            str(a.threads),
            "-d",
            f"{duration:g}s",
            "--latency",
            "-H",
            "Host: backend",
            f"http://127.0.0.1:{target.port}/",
        ]
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + 60,
            preexec_fn=self.pinned("load"),
        ).stdout
        return parse_wrk(out)

    def rate(self, target: Target) -> dict[str, Any]:
        a = self.args
        argv = [
            sys.executable,
            str(REPO / "bench" / "rategen.py"),
            "--port",
            str(target.port),
            "--host",
            "backend",
            "--rps",
            str(a.rate),
            "--duration",
            str(a.duration),
            "--warmup",
            "2",
        ]
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=a.duration + 60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            preexec_fn=self.pinned("load"),
        )
        if out.returncode != 0:
            raise RuntimeError(f"rategen failed: {out.stderr}")
        return dict(json.loads(out.stdout))

    def measure(self, target: Target) -> None:
        a = self.args
        sampler = RssSampler(target.proc.pid) if target.proc else None
        with sampler or contextlib.nullcontext():
            self.wrk(target, min(3.0, a.duration))  # warm-up: pools, caches
            target.results["wrk"] = self.wrk(target, a.duration)
            target.results["rate"] = self.rate(target)
        if sampler is not None:
            target.results["rss_peak_mb"] = round(max(sampler.peak_kb, sampler.hwm_kb()) / 1024, 1)
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} died during the run:\n{self.log_tail(target.name)}")


def parse_wrk(out: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result: dict[str, Any] = {"rps": float(rps.group(1)) if rps else float("nan")}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[f"p{pct}"] = round(ms(m.group(1)), 3) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non_2xx"] = int(errors.group(1)) if errors else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = socket_errors.group(1) if socket_errors else ""
    return result


def table(targets: list[Target], args: argparse.Namespace) -> str:
    direct = targets[0].results
    at = f"@{args.rate:g}/s"
    rows = [
        (
            f"| path | req/s (c={args.connections}) | p50 ms | p99 ms | p50 / p99 ms {at} "
            f"| p50 / p99 ms {at} from send | added p50 / p99 ms {at} | generator lag p99 ms "
            "| peak RSS MB | errors |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in targets:
        w, r = t.results["wrk"], t.results["rate"]
        if t is targets[0]:
            added = "-"
        else:
            added_p50 = r["service_p50"] - direct["rate"]["service_p50"]
            added_p99 = r["service_p99"] - direct["rate"]["service_p99"]
            added = f"{added_p50:+.2f} / {added_p99:+.2f}"
        rss = t.results.get("rss_peak_mb", "-")
        errors = []
        if w["non_2xx"]:
            errors.append(f"wrk non-2xx {w['non_2xx']}")
        if w["socket_errors"]:
            errors.append(f"wrk sockets: {w['socket_errors']}")
        if r["failed"] or r["dropped"]:
            errors.append(f"rate failed {r['failed']} dropped {r['dropped']}")
        rows.append(
            f"| {t.name} | {w['rps']:,.0f} | {w['p50']:.2f} | {w['p99']:.2f} | {r['p50']:.2f} / {r['p99']:.2f} "
            f"| {r['service_p50']:.2f} / {r['service_p99']:.2f} | {added} | {r['send_lag_p99']:.2f} "
            f"| {rss} | {'; '.join(errors) or 'none'} |"
        )
    ratio = targets[2].results["wrk"]["rps"] / targets[1].results["wrk"]["rps"]
    rows.append("")
    achieved = ", ".join(str(t.results["rate"]["achieved_rps"]) for t in targets)
    rows.append(f"l5d-twisted / nginx req/s: {ratio:.2f}x; rate runs achieved {achieved} req/s.")
    return "\n".join(rows)


def environment(pin: bool) -> str:
    load = os.getloadavg()
    cpus = sorted(os.sched_getaffinity(0))
    placement = (
        f"proxy pinned to CPU {cpus[-1]}, backend and load generators to CPU {','.join(map(str, cpus[:-1]))}"
        if pin and len(cpus) > 1
        else "no CPU pinning"
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load average before the run "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, Python {sys.version.split()[0]}, "
        f"{subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}; {placement}"
    )


@contextlib.contextmanager
def running(bench: Bench) -> Iterator[list[Target]]:
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        yield bench.setup()
    finally:
        bench.stop_all()
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark l5d-twisted against no proxy and nginx (wrk + a fixed-rate generator)."
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds per measured run (default %(default)s)",
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="wrk connections (default %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default %(default)s)")
    parser.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="requests/s of the fixed-rate runs (default %(default)s)",
    )
    parser.add_argument(
        "--json", default=None, metavar="FILE", help="also write the raw results as JSON"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, logs)"
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the proxy to the last CPU and the backend and load generators to the others",
    )
    args = parser.parse_args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(
                f"proxy_bench: {tool} is not installed (scripts/setup.sh installs it)",
                file=sys.stderr,
            )
            return 2
    env_line = environment(args.pin)
    bench = Bench(args)
    try:
        with running(bench) as targets:
            for target in targets:
                print(f"measuring {target.name} ...", file=sys.stderr, flush=True)
                bench.measure(target)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"proxy_bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"{env_line}\n")
    print(table(targets, args))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"environment": env_line, "results": {t.name: t.results for t in targets}}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
