"""The proxy benchmark: how much does l5d-twisted cost compared with no proxy, nginx, haproxy?

    python3 bench/proxy_bench.py                 # the full run (about 3.5 minutes)
    python3 bench/proxy_bench.py --duration 3    # a quick look (about 1 minute)
    python3 bench/proxy_bench.py --targets direct,nginx,l5d1   # some rows only

One command.  On free loopback ports it starts

* **backend**: nginx, one worker, answering every request with a fixed small 200;
* **nginx proxy**: a second nginx, one worker, reverse-proxying to the backend over a
  keep-alive upstream pool (the usual tuned setup);
* **haproxy**: haproxy (the Debian package), one thread, the same keep-alive setup
  (``http-reuse always``: idle backend connections shared between client connections);
* **l5d-twisted**: ``l5d-twisted run`` on a generated config with one router whose dtab
  sends ``/svc/backend`` to the backend through the ``io.l5d.fs`` namer, default client
  and service settings (p2c, failure accrual, retries budget, metrics) and the
  Prometheus telemeter, i.e. what a user would run; once with ``workers: 1`` (one
  process) and once with ``workers: 2`` (a supervisor and two worker processes sharing the
  port with SO_REUSEPORT);

with ``--pin`` (the default) the single-process proxies on the last CPU and the backend and
load generators on the others, so each gets one core to itself as its single process/worker
would; ``workers: 2`` gets the last two CPUs when there are 4 or more (the backend and
load generators then the rest), else every CPU, including the one the load generator and
the backend run on (on a 2-CPU machine that is the only way to give it two cores, so its
row, marked "unpinned", shows the mechanism, not how it scales on a node with cores to
spare).  Then it measures each path twice:

1. **fixed concurrency**: ``wrk -c 50 -t 2 -d <duration>s --latency``: requests/s, p50, p99;
2. **fixed rate**: 1,000 requests/s open-loop (``bench/rategen.py``; wrk cannot hold a
   rate and wrk2 is not packaged): p50, p99 measured from each request's due time.

The fixed-rate columns give latency from each request's due time (includes any lag of the
generator itself, shown as "generator lag") and from the moment it was actually written;
"added" is the proxy's latency from send minus direct's.  It prints a Markdown table with
the latency each proxy adds over direct, each proxy's RSS right after its load runs
(``VmRSS``) and at its peak (``VmHWM``, or the highest ``VmRSS`` sampled every 100 ms), summed
over its processes (nginx: master + worker; workers: 2: supervisor + workers), and
l5d-twisted's start-up time (``bench/startup/startup.py``: exec to the first routed 200,
median and max of ``--startup-runs``, with the CPU time used by then); with ``--json FILE``
it writes the raw numbers.  Everything it starts is stopped by PID at exit.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench" / "startup"))

import startup  # noqa: E402  (bench/startup/startup.py)

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

HAPROXY_CONF = """\
global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
frontend proxy
  bind 127.0.0.1:{port} backlog 4096
  default_backend backend
backend backend
  server backend 127.0.0.1:{backend_port}
"""

L5D_CONF = """\
workers: {workers}
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


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (nginx's worker, l5d-twisted's worker processes)."""
    pids = [pid]
    for p in pids:
        pids.extend(children_of(p))
    return pids


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    return round(sum(read_status_kb(p, field_name) for p in process_tree(pid)) / 1024, 1)


class RssSampler:
    """Samples the summed VmRSS of a process tree every 100 ms, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(read_status_kb(p, "VmRSS") for p in process_tree(self.pid))
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
        return sum(read_status_kb(p, "VmHWM") for p in process_tree(self.pid))


@dataclass
class Target:
    key: str  # --targets name
    name: str  # table row
    port: int
    proc: subprocess.Popen[bytes] | None = None  # the proxy process (None: direct)
    role: str = "proxy"  # CPU placement (Bench.cpus): proxy, workers
    results: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""  # why the row was not measured


TARGETS = ("direct", "nginx", "haproxy", "l5d1", "l5d2")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="l5d-bench-"))
        (self.dir / "tmp").mkdir()
        (self.dir / "disco").mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.startup: dict[str, dict[str, Any]] = {}

    # -- processes ----------------------------------------------------------------------
    def cpus(self, role: str) -> set[int] | None:
        """With --pin: single-process proxies ("proxy") on the last CPU, backend and load
        generators ("load") on the others; ``workers: 2`` ("workers") on the last two CPUs
        when there are 4 or more (the load then on the rest), else on every CPU."""
        available = sorted(os.sched_getaffinity(0))
        if not self.args.pin or len(available) < 2:
            return None
        spare = len(available) >= 4  # room for two proxy CPUs and two load CPUs
        if role == "workers":
            return set(available[-2:]) if spare else set(available)
        if role == "proxy":
            return {available[-1]}
        return set(available[:-2] if spare else available[:-1])

    def pinned(self, role: str) -> Callable[[], None] | None:
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
                cwd=str(REPO),
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

    def l5d_config(self, workers: int, port: int) -> Path:
        config = self.dir / f"l5d-{workers}.yaml"
        config.write_text(
            L5D_CONF.format(dir=self.dir, port=port, admin_port=free_port(), workers=workers)
        )
        return config

    def l5d_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def workers_unsupported(self, config: Path) -> str:
        """Why ``workers: N`` cannot be run by this checkout ("" if it can)."""
        check = subprocess.run(
            [sys.executable, "-m", "l5d_twisted", "check", str(config)],
            capture_output=True,
            text=True,
            env=self.l5d_env(),
            cwd=str(REPO),
            timeout=60,
        )
        if check.returncode != 0:
            return (
                "this checkout's config has no `workers` key: "
                + " ".join((check.stdout + check.stderr).split())[:200]
            )
        return ""

    def l5d(self, key: str, workers: int) -> Target:
        port = free_port()
        role = "proxy" if workers == 1 else "workers"
        cpus = self.cpus(role)
        shared = cpus is None or cpus & (self.cpus("load") or set())
        name = f"l5d-twisted workers: {workers}" + (" (unpinned)" if workers > 1 and shared else "")
        config = self.l5d_config(workers, port)
        target = Target(key, name, port, role=role)
        target.skipped = self.workers_unsupported(config)
        if target.skipped:
            return target
        if self.args.startup_runs > 0:
            print(f"start-up of {name} ...", file=sys.stderr, flush=True)
            self.startup[key] = startup.measure(
                config, port, "backend", self.args.startup_runs, self.pinned(role)
            )
        argv = [sys.executable, "-m", "l5d_twisted", "run", str(config), "--log-level", "warn"]
        target.proc = self.start(key, argv, env=self.l5d_env(), role=role)
        try:
            wait_for_http(port, "backend", proc=target.proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n--- {name} log ---\n{self.log_tail(key)}") from None
        processes = len(process_tree(target.proc.pid))
        if workers > 1 and processes < workers + 1:
            target.skipped = (
                f"ran as {processes} process(es), not a supervisor and {workers} workers"
            )
        return target

    def setup(self) -> list[Target]:
        wanted = set(self.args.targets)
        backend_port = free_port()
        self.nginx("backend", BACKEND_CONF.format(dir=self.dir, port=backend_port), role="load")
        wait_for_http(backend_port, "backend", proc=self.procs[-1])
        (self.dir / "disco" / "backend").write_text(f"127.0.0.1 {backend_port}\n")
        targets = [Target("direct", "direct", backend_port)]

        if "nginx" in wanted:
            port = free_port()
            nginx = self.nginx(
                "nginx-proxy",
                NGINX_PROXY_CONF.format(dir=self.dir, port=port, backend_port=backend_port),
                role="proxy",
            )
            wait_for_http(port, "backend", proc=nginx)
            targets.append(Target("nginx", "nginx (1 worker)", port, nginx))

        if "haproxy" in wanted:
            port = free_port()
            conf = self.dir / "haproxy.cfg"
            conf.write_text(HAPROXY_CONF.format(port=port, backend_port=backend_port))
            haproxy = self.start("haproxy", ["haproxy", "-db", "-f", str(conf)])
            wait_for_http(port, "backend", proc=haproxy)
            targets.append(Target("haproxy", "haproxy (1 thread)", port, haproxy))

        for key, workers in (("l5d1", 1), ("l5d2", 2)):
            if key in wanted:
                targets.append(self.l5d(key, workers))
        return [t for t in targets if t.key in wanted or t.key == "direct"]

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
            cwd=str(REPO),
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
        if sampler is not None and target.proc is not None:
            target.results["rss_after_load_mb"] = rss_mb(target.proc.pid)
            target.results["rss_peak_mb"] = round(max(sampler.peak_kb, sampler.hwm_kb()) / 1024, 1)
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} died during the run:\n{self.log_tail(target.key)}")


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


def table(targets: list[Target], args: argparse.Namespace, startups: dict[str, Any]) -> str:
    direct = targets[0].results if targets and targets[0].key == "direct" else None
    at = f"@{args.rate:g}/s"
    rows = [
        (
            f"| path | req/s (c={args.connections}) | p50 ms | p99 ms | p50 / p99 ms {at} "
            f"| p50 / p99 ms {at} from send | added p50 / p99 ms {at} | generator lag p99 ms "
            "| RSS after load MB | peak RSS MB | errors |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in targets:
        if t.skipped:
            rows.append(f"| {t.name} | skipped: {t.skipped} |||||||||| ")
            continue
        w, r = t.results["wrk"], t.results["rate"]
        if t is targets[0] or direct is None:
            added = "-"
        else:
            added_p50 = r["service_p50"] - direct["rate"]["service_p50"]
            added_p99 = r["service_p99"] - direct["rate"]["service_p99"]
            added = f"{added_p50:+.2f} / {added_p99:+.2f}"
        errors = []
        if w["non_2xx"]:
            errors.append(f"wrk non-2xx {w['non_2xx']}")
        if w["socket_errors"]:
            errors.append(f"wrk sockets: {w['socket_errors']}")
        if r["failed"] or r["dropped"]:
            errors.append(f"rate failed {r['failed']} dropped {r['dropped']}")
        rows.append(
            f"| {t.name} | {w['rps']:,.0f} | {w['p50']:.2f} | {w['p99']:.2f} "
            f"| {r['p50']:.2f} / {r['p99']:.2f} | {r['service_p50']:.2f} / {r['service_p99']:.2f} "
            f"| {added} | {r['send_lag_p99']:.2f} | {t.results.get('rss_after_load_mb', '-')} "
            f"| {t.results.get('rss_peak_mb', '-')} | {'; '.join(errors) or 'none'} |"
        )
    rows.append("")
    measured = {t.key: t for t in targets if not t.skipped}
    ratios = []
    for key in ("l5d1", "l5d2"):
        if key not in measured:
            continue
        rps = measured[key].results["wrk"]["rps"]
        for ref in ("nginx", "haproxy"):
            if ref in measured:
                ratio = rps / measured[ref].results["wrk"]["rps"]
                ratios.append(f"{measured[key].name} / {ref}: {ratio:.2f}x")
    if ratios:
        rows.append("req/s ratios: " + "; ".join(ratios) + ".")
    achieved = ", ".join(
        f"{t.key} {t.results['rate']['achieved_rps']}" for t in targets if not t.skipped
    )
    rows.append(f"Fixed-rate runs achieved (req/s): {achieved}.")
    for key, s in startups.items():
        name = measured[key].name if key in measured else key
        rows.append(
            f"Start-up of {name}, exec to first routed 200 over {len(s['runs_s'])} runs: "
            f"median {s['median_s']:.2f} s, max {s['max_s']:.2f} s; CPU used by then median "
            f"{s['median_cpu_s']:.2f} s; RSS then {s['rss_at_first_request_mb']} MB."
        )
    return "\n".join(rows)


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return out or "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def versions() -> str:
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    return (
        f"Python {sys.version.split()[0]}, {nginx.replace('nginx version: ', '')}, "
        f"{haproxy.splitlines()[0].split(' - ')[0] if haproxy else 'haproxy ?'}"
    )


def environment(bench: Bench) -> str:
    def show(role: str) -> str:
        return ",".join(map(str, sorted(bench.cpus(role) or ())))

    placement = (
        f"single-process proxies pinned to CPU {show('proxy')}, backend and load generators to "
        f"CPU {show('load')}, workers: 2 to CPU {show('workers')}"
        if bench.cpus("proxy") is not None
        else "no CPU pinning"
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"{versions()}; {placement}"
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
        description=(
            "Benchmark l5d-twisted against no proxy, nginx and haproxy "
            "(wrk + a fixed-rate generator, start-up time, RSS)."
        )
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds per measured run (default %(default)s; the whole run takes ~12x this)",
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
        "--targets",
        type=lambda text: [t for t in text.split(",") if t],
        default=list(TARGETS),
        help=f"rows to measure, of {','.join(TARGETS)} (default: all; direct is always run)",
    )
    parser.add_argument(
        "--startup-runs",
        type=int,
        default=5,
        help="start-up measurements per l5d-twisted row (default %(default)s; 0: none)",
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
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {','.join(TARGETS)}")
    tools = ["nginx", "wrk"] + (["haproxy"] if "haproxy" in args.targets else [])
    for tool in tools:
        if shutil.which(tool) is None:
            print(
                f"proxy_bench: {tool} is not installed (scripts/setup.sh installs it)",
                file=sys.stderr,
            )
            return 2
    bench = Bench(args)
    env_line = environment(bench)
    before = uptime()
    started = time.monotonic()
    try:
        with running(bench) as targets:
            for target in targets:
                if target.skipped:
                    continue
                print(f"measuring {target.name} ...", file=sys.stderr, flush=True)
                bench.measure(target)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"proxy_bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    after = uptime()
    print(f"{env_line}\n")
    print(f"uptime before: {before}  \nuptime after: {after}  ")
    print(f"(the whole run took {time.monotonic() - started:.0f} s)\n")
    print(table(targets, args, bench.startup))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": env_line,
                    "uptime_before": before,
                    "uptime_after": after,
                    "startup": bench.startup,
                    "results": {
                        t.key: {"name": t.name, "skipped": t.skipped, **t.results} for t in targets
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
