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
import statistics
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
sys.path.insert(0, str(REPO / "bench" / "percore"))
sys.path.insert(0, str(REPO / "bench"))

import breakdown  # noqa: E402  (bench/percore/breakdown.py)
import hostnoise  # noqa: E402  (bench/hostnoise.py)
import startup  # noqa: E402  (bench/startup/startup.py)
from nginx_backend import backend_conf  # noqa: E402  (bench/nginx_backend.py)

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
    inside: breakdown.Instrumented | None = None  # run under bench/percore/hook.py
    wrk: bool = True  # measured at fixed concurrency too
    sampler: RssSampler | None = None


TARGETS = ("direct", "nginx", "haproxy", "fwd", "l5d1", "l5d1in", "l5d2")


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

    def l5d(self, key: str, workers: int, hooked: bool = False) -> Target:
        port = free_port()
        role = "proxy" if workers == 1 else "workers"
        cpus = self.cpus(role)
        shared = cpus is None or cpus & (self.cpus("load") or set())
        name = f"l5d-twisted workers: {workers}" + (" (unpinned)" if workers > 1 and shared else "")
        if hooked:
            name += ", under the hook"
        config = self.l5d_config(workers, port)
        target = Target(key, name, port, role=role, wrk=not hooked)
        target.skipped = self.workers_unsupported(config)
        if hooked and not self.args.inside:
            target.skipped = "--no-inside"
        if target.skipped:
            return target
        if self.args.startup_runs > 0 and not hooked:
            print(f"start-up of {name} ...", file=sys.stderr, flush=True)
            self.startup[key] = startup.measure(
                config, port, "backend", self.args.startup_runs, self.pinned(role)
            )
        program = ["-m", "l5d_twisted", "run", str(config), "--log-level", "warn"]
        if hooked:
            # SIGUSR1/2 windows measured from inside (nothing installed between them); a
            # second process, as the hook's own start-up costs ~1 MB of RSS (not found why)
            prefix = self.dir / f"{key}-window"
            argv = breakdown.hook_argv(prefix, program)
            target.proc = self.start(key, argv, env=self.l5d_env(), role=role)
            target.inside = breakdown.Instrumented(target.proc, prefix)
        else:
            argv = [sys.executable, *program]
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
        self.nginx("backend", backend_conf(self.dir, backend_port), role="load")
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

        if "fwd" in wanted:
            port = free_port()
            program = [str(REPO / "bench" / "minimal_forwarder.py"), "--port", str(port)]
            program += ["--backend", f"127.0.0.1:{backend_port}"]
            target = Target("fwd", "minimal forwarder (Twisted + httptools)", port)
            if self.args.inside:
                prefix = self.dir / "fwd-window"
                argv = breakdown.hook_argv(prefix, program)
            else:
                argv = [sys.executable, *program]
            target.proc = self.start("fwd", argv, env=self.l5d_env())
            if self.args.inside:
                target.inside = breakdown.Instrumented(target.proc, prefix)
            wait_for_http(port, "backend", proc=target.proc)
            targets.append(target)

        for key, workers, hooked in (("l5d1", 1, False), ("l5d1in", 1, True), ("l5d2", 2, False)):
            if key in wanted:
                targets.append(self.l5d(key, workers, hooked))
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

    def rate(self, target: Target, seconds: float, warmup: float) -> dict[str, Any]:
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
            str(seconds),
            "--warmup",
            str(warmup),
        ]
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds + warmup + 60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=str(REPO),
            preexec_fn=self.pinned("load"),
        )
        if out.returncode != 0:
            raise RuntimeError(f"rategen failed: {out.stderr}")
        return dict(json.loads(out.stdout))

    def alive(self, target: Target) -> None:
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} died during the run:\n{self.log_tail(target.key)}")

    def throughput(self, target: Target) -> None:
        """Phase 1: ``wrk`` at fixed concurrency (after a warm-up)."""
        a = self.args
        if not target.wrk:
            return
        self.wrk(target, min(3.0, a.duration))  # warm-up: pools, caches
        target.results["wrk"] = self.wrk(target, a.duration)
        self.alive(target)

    def rate_rounds(self, targets: list[Target]) -> None:
        """Phase 2: the fixed rate, every target in turn, ``--rate-rounds`` times (each
        round starting one target later), each run ``--rate-seconds`` after a 1 s warm-up;
        a process run under the hook is measured from inside over the same run."""
        a = self.args
        for r in range(a.rate_rounds):
            shift = r % len(targets)
            for target in targets[shift:] + targets[:shift]:
                print(
                    f"fixed rate, round {r + 1}/{a.rate_rounds}: {target.name} ...",
                    file=sys.stderr,
                    flush=True,
                )
                steal = hostnoise.StealMeter()
                if target.inside is not None:
                    inside, result = target.inside.window(
                        "tail", lambda t=target: self.rate(t, a.rate_seconds, a.rate_warmup)
                    )
                    result["inside"] = inside
                else:
                    result = self.rate(target, a.rate_seconds, a.rate_warmup)
                result["round"] = r
                result["steal_pct"] = steal.pct
                target.results.setdefault("rate_rounds", []).append(result)
                self.alive(target)
        direct = targets[0].results["rate_rounds"] if targets[0].key == "direct" else None
        for target in targets:
            target.results["rate"] = summarise_rounds(target.results["rate_rounds"], direct)

    def breakdowns(self, targets: list[Target]) -> None:
        """Phase 3: ``bench/percore/breakdown.py``'s two windows (plain, profiled) under
        ``wrk`` on each process run under the hook: CPU per request per component."""
        a = self.args
        load = self.cpus("load")
        cpus = ",".join(map(str, sorted(load))) if load is not None else None
        for target in targets:
            if target.inside is None:
                continue
            print(f"CPU breakdown of {target.name} ...", file=sys.stderr, flush=True)
            target.results["breakdown"] = breakdown.measure(
                target.inside, target.port, a.breakdown_seconds, a.connections, cpus, warmup=2.0
            )
            self.alive(target)

    def measure_all(self, targets: list[Target]) -> None:
        proxies = [t for t in targets if t.proc is not None]
        for t in proxies:
            assert t.proc is not None
            t.sampler = RssSampler(t.proc.pid)
            t.sampler.__enter__()
        try:
            for target in targets:
                print(f"wrk: {target.name} ...", file=sys.stderr, flush=True)
                self.throughput(target)
            self.rate_rounds(targets)
        finally:
            for t in proxies:
                if t.sampler is not None:
                    t.sampler.__exit__(None, None, None)
        for t in proxies:
            assert t.proc is not None and t.sampler is not None
            t.results["rss_after_load_mb"] = rss_mb(t.proc.pid)
            t.results["rss_peak_mb"] = round(max(t.sampler.peak_kb, t.sampler.hwm_kb()) / 1024, 1)
        if self.args.breakdown_seconds > 0:
            self.breakdowns(targets)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarise_rounds(
    rounds: list[dict[str, Any]], direct: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The fixed-rate rounds of one target: medians over rounds, and "added" as the median
    of the per-round differences from direct's run in the same round."""
    out: dict[str, Any] = {
        key: median([r[key] for r in rounds])
        for key in ("p50", "p99", "service_p50", "service_p99")
    }
    out["service_p99_rounds"] = [r["service_p99"] for r in rounds]
    out["send_lag_p99"] = max(r["send_lag_p99"] for r in rounds)
    out["send_lag_p99_median"] = median([r["send_lag_p99"] for r in rounds])
    out["achieved_rps"] = min(r["achieved_rps"] for r in rounds)
    out["failed"] = sum(r["failed"] for r in rounds)
    out["dropped"] = sum(r["dropped"] for r in rounds)
    out["sent"] = sum(r["sent"] for r in rounds)
    if direct is not None and len(direct) == len(rounds):
        for q in ("p50", "p99"):
            diffs = [r[f"service_{q}"] - d[f"service_{q}"] for r, d in zip(rounds, direct)]
            out[f"added_{q}_rounds"] = diffs
            out[f"added_{q}"] = median(diffs)
    insides = [r["inside"] for r in rounds if "inside" in r]
    if insides:
        out["inside"] = summarise_inside(insides)
    return out


def summarise_inside(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the proxy saw of itself over the fixed-rate rounds (``hook.py`` tail windows)."""
    out: dict[str, Any] = {"rounds": len(windows)}
    for g in ("0", "1", "2"):
        out[f"gc{g}_per_round"] = median([w["gc_pauses"][g]["count"] for w in windows])
        out[f"gc{g}_max_ms"] = max(w["gc_pauses"][g]["max_ms"] for w in windows)
        out[f"gc{g}_total_ms"] = sum(w["gc_pauses"][g]["total_ms"] for w in windows)
        out[f"gc{g}_count"] = sum(w["gc_pauses"][g]["count"] for w in windows)
    out["iterations"] = sum(w["iterations"] for w in windows)
    out["busy_p50_ms"] = median([w.get("busy_p50_ms", float("nan")) for w in windows])
    out["busy_p99_ms"] = median([w.get("busy_p99_ms", float("nan")) for w in windows])
    out["busy_max_ms"] = max(w.get("busy_max_ms", 0.0) for w in windows)
    out["busy_max_cpu_ms"] = max(w.get("busy_max_cpu_ms", 0.0) for w in windows)
    out["busy_cpu_p99_ms"] = median([w.get("busy_cpu_p99_ms", float("nan")) for w in windows])
    out["busy_cpu_over_ms"] = {
        ms: sum(w["busy_cpu_over_ms"][ms] for w in windows) for ms in windows[0]["busy_cpu_over_ms"]
    }
    out["busy_share"] = sum(w["busy_wall_s"] for w in windows) / sum(w["wall_s"] for w in windows)
    out["cpu_s"] = sum(w["user_s"] + w["system_s"] for w in windows)
    out["wall_s"] = sum(w["wall_s"] for w in windows)
    out["busy_over_ms"] = {
        ms: sum(w["busy_over_ms"][ms] for w in windows) for ms in windows[0]["busy_over_ms"]
    }
    spans = sorted(
        (s for w in windows for s in w["longest_spans"]), key=lambda s: -float(s["wall_ms"])
    )
    out["longest_spans"] = spans[:5]
    runs = sorted(
        (t for w in windows for t in w["longest_timer_runs"]), key=lambda t: -float(t["ms"])
    )
    out["longest_timer_runs"] = runs[:5]
    return out


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


def fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def report(targets: list[Target], args: argparse.Namespace, startups: dict[str, Any]) -> str:
    """The run's tables, in Markdown."""
    measured = {t.key: t for t in targets if not t.skipped}
    rows: list[str] = []
    # 1. throughput and memory
    rows += [
        f"| path | req/s (c={args.connections}) | x nginx | p50 ms | p99 ms "
        "| RSS after load MB | peak RSS MB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    nginx_rps = measured["nginx"].results["wrk"]["rps"] if "nginx" in measured else None
    for t in targets:
        if t.skipped:
            rows.append(f"| {t.name} | skipped: {t.skipped} |||||||")
            continue
        if "wrk" not in t.results:
            rows.append(
                f"| {t.name} | (fixed rate and CPU split only) |||| "
                f"{t.results.get('rss_after_load_mb', '-')} | {t.results.get('rss_peak_mb', '-')} | |"
            )
            continue
        w = t.results["wrk"]
        errors = []
        if w["non_2xx"]:
            errors.append(f"non-2xx {w['non_2xx']}")
        if w["socket_errors"]:
            errors.append(f"sockets: {w['socket_errors']}")
        ratio = f"{w['rps'] / nginx_rps:.2f}x" if nginx_rps else "-"
        rows.append(
            f"| {t.name} | {w['rps']:,.0f} | {ratio} | {w['p50']:.2f} | {w['p99']:.2f} "
            f"| {t.results.get('rss_after_load_mb', '-')} | {t.results.get('rss_peak_mb', '-')} "
            f"| {'; '.join(errors) or 'none'} |"
        )
    rows.append("")
    # 2. fixed rate
    at = f"{args.rate:g}/s"
    n = args.rate_rounds
    rows += [
        f"Fixed rate, {at}: {n} interleaved rounds of {args.rate_seconds:g} s per path (after "
        f'{args.rate_warmup:g} s of warm-up each); medians over the rounds; "added" is the '
        "median of the per-round differences from direct in the same round.",
        "",
        "| path | p50 / p99 ms from send | added p50 / p99 ms | p99 ms from send per round "
        "| p50 / p99 ms from due | generator lag p99 ms (median / max) | min achieved req/s "
        "| errors |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for t in targets:
        if t.skipped:
            continue
        r = t.results["rate"]
        added = (
            f"{r['added_p50']:+.2f} / {r['added_p99']:+.2f}"
            if "added_p99" in r and t.key != "direct"
            else "-"
        )
        failures = (
            f"failed {r['failed']} dropped {r['dropped']}"
            if r["failed"] or r["dropped"]
            else "none"
        )
        rows.append(
            f"| {t.name} | {r['service_p50']:.2f} / {r['service_p99']:.2f} | {added} "
            f"| {', '.join(fmt_ms(v) for v in r['service_p99_rounds'])} "
            f"| {r['p50']:.2f} / {r['p99']:.2f} "
            f"| {r['send_lag_p99_median']:.2f} / {r['send_lag_p99']:.2f} | {r['achieved_rps']:,.0f} "
            f"| {failures} |"
        )
    rows.append("")
    # 3. inside the proxy during the fixed-rate rounds
    insides = [t for t in targets if not t.skipped and "inside" in t.results.get("rate", {})]
    if insides:
        rows += [
            f"Inside the proxy during the same fixed-rate runs (`bench/percore/hook.py`, each "
            f"window the whole rategen run, warm-up included; {n} rounds): a busy span is one "
            "reactor iteration, from the return of `epoll_wait` to the next call (ready sockets "
            "dispatched, then due timers), wall time.",
            "",
            "| process | GC per round gen 0 / 1 / 2 | longest GC pause ms gen 0 / 1 / 2 "
            "| GC pause total ms | busy span p50 / p99 / max ms | busy span CPU p99 / max ms "
            "| spans > 0.5 / > 1 / > 2 ms (wall; CPU) | CPU used | longest spans ms (CPU, GC) "
            "| longest timer run ms (what) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for t in insides:
            i = t.results["rate"]["inside"]
            over = i["busy_over_ms"]
            cover = i["busy_cpu_over_ms"]
            spans = ", ".join(
                f"{sp['wall_ms']:.2f} ({sp['cpu_ms']:.2f}, {sp['gc_ms']:.2f})"
                for sp in i["longest_spans"][:3]
            )
            timers = i["longest_timer_runs"][:1]
            timer = (
                f"{timers[0]['ms']:.2f} ({', '.join(sorted(set(timers[0]['timers']))[:4]) or '-'})"
                if timers
                else "-"
            )
            rows.append(
                f"| {t.name} | {i['gc0_per_round']:g} / {i['gc1_per_round']:g} / {i['gc2_per_round']:g} "
                f"| {i['gc0_max_ms']:.2f} / {i['gc1_max_ms']:.2f} / {i['gc2_max_ms']:.2f} "
                f"| {i['gc0_total_ms'] + i['gc1_total_ms'] + i['gc2_total_ms']:.1f} "
                f"| {i['busy_p50_ms']:.3f} / {i['busy_p99_ms']:.3f} / {i['busy_max_ms']:.2f} "
                f"| {i['busy_cpu_p99_ms']:.3f} / {i['busy_max_cpu_ms']:.2f} "
                f"| {over.get('0.5', 0)} / {over.get('1', 0)} / {over.get('2', 0)}; "
                f"{cover.get('0.5', 0)} / {cover.get('1', 0)} / {cover.get('2', 0)} "
                f"of {i['iterations']:,} "
                f"| {i['cpu_s'] / i['wall_s']:.0%} | {spans} | {timer} |"
            )
        rows.append("")
    # 4. CPU per request per component
    columns = {t.name: t.results["breakdown"] for t in targets if "breakdown" in t.results}
    if columns:
        floor = (
            measured["fwd"].name
            if "fwd" in measured and "breakdown" in measured["fwd"].results
            else None
        )
        rows += [
            f"CPU per request by component (`bench/percore/breakdown.py`'s method on the same "
            f"processes after the runs above: `wrk -c {args.connections}`, a "
            f"{args.breakdown_seconds:g} s plain window for user/system/GC CPU, a second one "
            "under cProfile to split the user CPU; +-20 %):",
            "",
        ]
        rows += [breakdown.describe(name, m) + "  " for name, m in columns.items()]
        rows += ["", breakdown.table(columns, floor), ""]
    # 5. start-up
    for key, st in startups.items():
        name = measured[key].name if key in measured else key
        rows.append(
            f"Start-up of {name}, exec to first routed 200 over {len(st['runs_s'])} runs: "
            f"median {st['median_s']:.2f} s, max {st['max_s']:.2f} s; CPU used by then median "
            f"{st['median_cpu_s']:.2f} s; RSS then {st['rss_at_first_request_mb']} MB.  "
        )
    rows.append("")
    rows += targets_table(measured, startups)
    return "\n".join(rows)


def targets_table(measured: dict[str, Target], startups: dict[str, Any]) -> list[str]:
    """Issue 15's done-when, checked against this run."""
    if "l5d1" not in measured:
        return []
    l5d = measured["l5d1"].results
    rows = ["| target (issue 15) | this run |", "|---|---|"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    if "nginx" in measured:
        ratio = l5d["wrk"]["rps"] / measured["nginx"].results["wrk"]["rps"]
        floor = ""
        if "fwd" in measured:
            fr = measured["fwd"].results["wrk"]["rps"] / measured["nginx"].results["wrk"]["rps"]
            floor = f"; the minimal Twisted + httptools forwarder {fr:.2f}x"
        extra = ""
        split = next(
            (
                measured[k].results["breakdown"]
                for k in ("l5d1", "l5d1in")
                if k in measured and "breakdown" in measured[k].results
            ),
            None,
        )
        if split is not None:
            extra = f"; CPU per request {split['total_us']:.0f} us"
            if "fwd" in measured and "breakdown" in measured["fwd"].results:
                extra += f" against the forwarder's {measured['fwd'].results['breakdown']['total_us']:.0f}"
        rows.append(
            f"| l5d-twisted >= 0.5x nginx req/s per core | {verdict(ratio >= 0.5)}: {ratio:.2f}x "
            f"{floor}{extra} |"
        )
    rate = l5d.get("rate", {})
    if "added_p99" in rate:
        refs = ", ".join(
            f"{measured[k].name} {measured[k].results['rate']['added_p99']:+.2f}"
            for k in ("nginx", "haproxy", "fwd")
            if k in measured and "added_p99" in measured[k].results["rate"]
        )
        rows.append(
            f"| p99 added <= 0.5 ms at 1,000 req/s | {verdict(rate['added_p99'] <= 0.5)}: "
            f"{rate['added_p99']:+.2f} ms (median of {len(rate['added_p99_rounds'])} rounds: "
            f"{', '.join(f'{v:+.2f}' for v in rate['added_p99_rounds'])}); same rounds: {refs} |"
        )
    if "rss_after_load_mb" in l5d:
        rows.append(
            f"| RSS <= 40 MB after load | {verdict(l5d['rss_after_load_mb'] <= 40)}: "
            f"{l5d['rss_after_load_mb']} MB (peak {l5d['rss_peak_mb']}) |"
        )
    if "l5d1" in startups:
        st = startups["l5d1"]
        rows.append(
            f"| start-up < 1 s | {verdict(st['median_s'] < 1)}: median {st['median_s']:.2f} s, "
            f"max {st['max_s']:.2f} s ({st['median_cpu_s']:.2f} s of CPU) |"
        )
    return rows


def commit() -> str:
    def git(*argv: str) -> str:
        out = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return f"a tree that is not a git checkout ({REPO})"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "l5d_twisted", "bench")
    return head + (" with uncommitted changes under l5d_twisted/ or bench/" if dirty else "")


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
        default=10.0,
        help="seconds of each wrk run (after a warm-up of min(3, this)) (default %(default)s)",
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
    # 9, not 5: on this VM a round now and then catches a burst of 2-6 ms stalls lasting
    # 0.2-0.3 s, which doubles or triples that round's p99 (l5d-twisted's rows and, more
    # rarely, nginx's; bench/README.md, 2026-12-04); a median of 9 holds with 4 such rounds
    parser.add_argument(
        "--rate-rounds",
        type=int,
        default=9,
        help="fixed-rate rounds, every path once per round, interleaved (default %(default)s)",
    )
    parser.add_argument(
        "--rate-seconds",
        type=float,
        default=4.0,
        help="seconds of each fixed-rate run (default %(default)s)",
    )
    parser.add_argument(
        "--rate-warmup",
        type=float,
        default=1.0,
        help="seconds of warm-up before each fixed-rate run (default %(default)s)",
    )
    parser.add_argument(
        "--breakdown-seconds",
        type=float,
        default=5.0,
        help="each window of the CPU breakdown (default %(default)s; 0: no breakdown)",
    )
    parser.add_argument(
        "--no-inside",
        dest="inside",
        action="store_false",
        help="run l5d-twisted and the forwarder plainly: no inside view, no breakdown",
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
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="do not byte-compile l5d_twisted first (with PYTHONDONTWRITEBYTECODE=1 each start "
        "compiles it: slower start-up, ~1.8 MB more RSS than the shipped image)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {','.join(TARGETS)}")
    if not args.inside:
        args.breakdown_seconds = 0
    tools = ["nginx", "wrk"] + (["haproxy"] if "haproxy" in args.targets else [])
    for tool in tools:
        if shutil.which(tool) is None:
            print(
                f"proxy_bench: {tool} is not installed (scripts/setup.sh installs it)",
                file=sys.stderr,
            )
            return 2
    # as shipped: the image byte-compiles l5d_twisted (see bench/startup/startup.py)
    compiled = "from source" if args.from_source else startup.compile_as_shipped()
    bench = Bench(args)
    env_line = f"{environment(bench)}; {compiled}"
    before = uptime()
    loop_before = hostnoise.loop_ms()
    steal = hostnoise.StealMeter()
    started = time.monotonic()
    try:
        with running(bench) as all_targets:
            targets = [t for t in all_targets if not t.skipped]
            bench.measure_all(targets)
            targets = all_targets
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"proxy_bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    after = uptime()
    took = time.monotonic() - started
    noise = {"steal_pct": steal.pct, "loop_ms_before": loop_before}
    noise["loop_ms_after"] = hostnoise.loop_ms()
    rounds = [
        r["steal_pct"]
        for t in targets
        for r in t.results.get("rate_rounds", [])
        if "steal_pct" in r
    ]
    noise["steal_pct_rate_rounds_max"] = max(rounds) if rounds else 0.0
    command = "python3 bench/proxy_bench.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    print(f"`{command}` at {commit()}; {env_line}\n")
    print(f"uptime before: {before}  \nuptime after: {after}  ")
    print(
        f"host (bench/hostnoise.py): steal {noise['steal_pct']:.1f} % of all CPU time over the "
        f"run, at most {noise['steal_pct_rate_rounds_max']:.1f} % in a fixed-rate run; "
        f"the fixed Python loop {noise['loop_ms_before']:.0f} ms before, "
        f"{noise['loop_ms_after']:.0f} ms after  "
    )
    print(f"(the whole run took {took:.0f} s)\n")
    print(report(targets, args, bench.startup))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "commit": commit(),
                    "took_s": took,
                    "environment": env_line,
                    "uptime_before": before,
                    "uptime_after": after,
                    "host": noise,
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
