"""Thousands of service names through one proxy: memory, latency, scrape and idle cost (issue 17).

    python3 bench/scale/names.py --names 10000                 # the issue's table, one row
    python3 bench/scale/names.py --names 5000 --max-metric-scopes 0   # every name with metrics
    python3 bench/scale/names.py --names 1000 --repo /tmp/old --legacy  # an older tree, no expiry

On free 127.0.0.1 ports: one backend (``--backend``: nginx, one worker, by default when it is
installed; else ``tests/http/backend.py``) and one ``l5d-twisted run``
router (``/svc => /#/io.l5d.fs;``, the project's defaults but ``bindingCache.idleTtlSecs``
and the telemeter's ``metricsExpiryTtlSecs`` both ``--ttl``) whose ``io.l5d.fs`` directory
holds ``--names`` files ``s0 .. s<N-1>``, all naming the backend.  From this process, one
keep-alive connection, one request at a time (``GET /echo``, ``Host: s<i>``):

1. round 1: every name once, in order, at ``--rate`` names per second (500 by default; 0
   sends back to back): each request's latency is a cold bind (namer lookup, route,
   client, balancer, endpoint); reported as the p99 of the first and of the last 10 % of
   names (a cache that thrashes or an eviction that scans makes the end slower).  Why a
   fixed pace: every name opens a pooled connection that closes ``idleTimeMs`` (10 s) after
   its request, so a round holds rate x 10 s connections at its peak (~2.25 KB each, i.e.
   up to 22 MB at 10,000 names).  Back to back, that peak followed the machine's speed:
   round 1 took 8-20 s in runs an hour apart, round 2 (warm code) was faster than round 1,
   and the RSS after round 2 came out 2.6-7.0 % over that before expiry in one hour, with
   the same code, according to how many connections round 1 had left open.  At a pace the
   proxy keeps up with, both rounds peak at the same count;
2. revisits: ``--revisits`` requests to random names already routed (p50/p99);
3. the proxy's RSS (``VmRSS``) before round 1 (after one warm-up name) and after it, per
   name;
4. ``--scrapes`` scrapes of ``/admin/metrics/prometheus`` and of ``/admin/metrics.json``:
   wall time to the whole body, the proxy's CPU time meanwhile, lines and bytes;
5. idle CPU: the proxy's CPU time (utime + stime from ``/proc``) over ``--idle`` seconds
   with nothing sent, every name still routed and watched: right after the load (round 1's
   pooled connections close during it, after ``idleTimeMs``), then "settled", over the
   next ``--idle`` seconds;
6. (not with ``--legacy``) idle expiry: nothing sent until every route, client and metric
   scope has expired (up to 2.5 TTLs, checked on the exposition), then RSS; round 2 (every
   name again, the revisits and scrapes again) and RSS after it, against RSS before expiry
   (after the same work in round 1).

Why nginx: every name has its own client, so round 1 opens one pooled connection per name
and the backend holds up to ``--names`` of them at once.  ``tests/http/backend.py`` starts a
thread per connection: by the end of round 1 it ran ~8,000 threads, starting new ones
while the first ones exited, so the last tenth's latency included the backend's own growth
(a bind of 140 ms with no busy span in the proxy was one).  One nginx worker answers from
one epoll loop whatever the number of connections (``--backend threads`` keeps the old one).

Every process is stopped by PID; nothing leaves 127.0.0.1.  CPU times survive contention
better than wall times: print ``uptime`` next to any figure you record.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hostnoise  # noqa: E402  (bench/hostnoise.py)
from nginx_backend import backend_conf  # noqa: E402  (bench/nginx_backend.py)

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "names_probe.py"
BACKEND = REPO / "tests" / "http" / "backend.py"
HOST = "127.0.0.1"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

TICK = os.sysconf("SC_CLK_TCK")

# ``--gc-probe``: the proxy runs with a SIGUSR2 handler that makes a full collection and
# logs what it found (garbage waiting for a full GC, or memory the allocator keeps?).
GC_PROBE = """
import gc, signal, sys, time
import collections, os
def probe(*_):
    started = time.perf_counter()
    if os.environ.get("GC_PROBE_TYPES"):
        gc.set_debug(gc.DEBUG_SAVEALL)
    found = gc.collect()
    if gc.garbage:
        kinds = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        print("GC-TYPES", kinds.most_common(25), file=sys.stderr, flush=True)
        gc.set_debug(0)
        gc.garbage.clear()
    print(f"GC-PROBE {found} {(time.perf_counter() - started) * 1000:.0f}", file=sys.stderr, flush=True)
signal.signal(signal.SIGUSR2, probe)
from l5d_twisted.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def sockets(pid: int) -> int:
    """The process's open sockets (listeners, the bench's connection, pooled upstreams)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed meanwhile
            pass
    return count


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def phase(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    """One keep-alive HTTP/1.1 connection to the proxy (Content-Length responses only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        return sock

    def get(self, host: str) -> tuple[int, float]:
        """(status, latency in ms) of one request."""
        if self.sock is None:
            self.sock = self._connect()
        request = f"GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        started = time.perf_counter()
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(self.buf) < length:
            self._read()
        self.buf = self.buf[length:]
        elapsed = (time.perf_counter() - started) * 1000.0
        if close:
            self.close()
        return status, elapsed

    def _read(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the proxy closed the connection")
        self.buf += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Proxy:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self._start_all(args, work)
        except BaseException:
            # (a proxy that never listened left the backend running: stop what started)
            self.stop()
            raise

    def _start_all(self, args: argparse.Namespace, work: Path) -> None:
        repo = Path(args.repo).resolve() if args.repo else REPO
        self.env = dict(os.environ, PYTHONPATH=str(repo))
        self.env.pop("http_proxy", None)
        self.repo = repo
        self.backend = free_port()
        if args.backend == "nginx":
            if NGINX is None:
                raise SystemExit("--backend nginx: nginx is not installed (or --backend threads)")
            (work / "tmp").mkdir()
            # one connection per name (and the pool's slack); keep-alive longer than the
            # proxy's idleTimeMs, so that it is the proxy that closes them
            connections = args.names + 2048
            (work / "backend.conf").write_text(
                backend_conf(
                    work,
                    self.backend,
                    connections=connections,
                    open_files=connections + 64,
                    keepalive_timeout="300s",
                )
            )
            self._start("backend", NGINX, "-c", str(work / "backend.conf"), "-p", str(work))
        else:
            self._start("backend", sys.executable, str(BACKEND), str(self.backend))
        wait_for_port(self.backend)
        disco = work / "disco"
        disco.mkdir()
        for i in range(args.names):
            (disco / f"s{i}").write_text(f"{HOST} {self.backend}\n")
        (disco / "warm").write_text(f"{HOST} {self.backend}\n")
        self.port, self.admin = free_port(), free_port()
        router: dict[str, Any] = {
            "protocol": "http",
            "label": "out",
            "dtab": "/svc => /#/io.l5d.fs;",
            "servers": [{"ip": HOST, "port": self.port}],
        }
        telemetry: list[dict[str, Any]] = []
        if not args.legacy:
            router["bindingCache"] = {"idleTtlSecs": args.ttl}
            telemetry = [{"kind": "io.l5d.prometheus", "metricsExpiryTtlSecs": args.ttl}]
        if args.max_metric_scopes is not None:
            router["maxMetricScopes"] = args.max_metric_scopes
        config: dict[str, Any] = {
            "admin": {"ip": HOST, "port": self.admin},
            "namers": [{"kind": "io.l5d.fs", "rootDir": str(disco)}],
            "routers": [router],
        }
        if telemetry:
            config["telemetry"] = telemetry
        (work / "l5d.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if args.probe:
            launcher = [str(PROBE)]
            self.env["PROBE_DIR"] = str(work)
        else:
            launcher = ["-c", GC_PROBE] if args.gc_probe else ["-m", "l5d_twisted"]
        self.proxy = self._start(
            "l5d",
            sys.executable,
            *launcher,
            "run",
            str(work / "l5d.yaml"),
            "--log-level",
            "warn",
        )
        wait_for_port(self.port)
        wait_for_port(self.admin)

    def _start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        with open(self.work / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=self.repo,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def gc_probe(self) -> tuple[int, float]:
        """(unreachable objects a full collection found, its ms), from the proxy's log."""
        log = self.work / "l5d.log"
        seen = log.read_text().count("GC-PROBE")
        os.kill(self.proxy.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = [x for x in log.read_text().splitlines() if x.startswith("GC-PROBE")]
            if len(lines) > seen:
                types = [x for x in log.read_text().splitlines() if x.startswith("GC-TYPES")]
                if types:
                    phase(types[-1][:2000])
                _, found, ms = lines[-1].split()
                return int(found), float(ms)
            time.sleep(0.1)
        raise RuntimeError("no GC-PROBE line")

    def probe(self, *commands: str) -> list[dict[str, Any]]:
        """Answers of ``names_probe.py`` to ``commands`` (``--probe``)."""
        out = self.work / "out.jsonl"
        seen = len(out.read_text().splitlines()) if out.exists() else 0
        (self.work / "cmd").write_text("\n".join(commands) + "\n")
        os.kill(self.proxy.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= seen + len(commands) and not (self.work / "cmd").exists():
                return [json.loads(x) for x in lines[seen:]]
            time.sleep(0.05)
        raise RuntimeError(f"the probe did not answer {commands}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)

    def fetch(self, path: str) -> tuple[bytes, float, float]:
        """(body, wall s, proxy CPU s) of one admin GET."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        cpu0 = cpu_s(self.proxy.pid)
        started = time.perf_counter()
        with opener.open(f"http://{HOST}:{self.admin}{path}", timeout=120) as response:
            body: bytes = response.read()
        return body, time.perf_counter() - started, cpu_s(self.proxy.pid) - cpu0


def pace(rate: float) -> Callable[[int], None]:
    """Waits until request ``i`` is due at ``rate`` per second from the first call (0: no
    wait).  A round at a fixed pace opens the same number of pooled connections per
    idleTimeMs whatever the machine's speed, so two rounds reach the same peak of open
    connections (see ``--rate``)."""
    start = time.monotonic()

    def wait(i: int) -> None:
        if rate > 0:
            left = start + i / rate - time.monotonic()
            if left > 0:
                time.sleep(left)

    return wait


def route_all(client: Client, names: list[str], rate: float = 0.0) -> list[float]:
    """The latency ms of each request (:func:`route_timed` without the start times)."""
    return [ms for _, ms in route_timed(client, names, rate)]


def route_timed(
    client: Client,
    names: list[str],
    rate: float = 0.0,
    at_tenth: Callable[[], None] | None = None,
) -> list[tuple[float, float]]:
    """(wall-clock start, latency ms) of each request: to set against the probe's records.

    ``at_tenth`` is called before each tenth of ``names`` and after the last (the caller
    reads the proxy's CPU there: whether a tenth's binds were slower because the proxy
    did more work for them, or because the VM ran it more slowly then)."""
    out = []
    due = pace(rate)
    tenth = max(1, len(names) // 10)
    for i, name in enumerate(names):
        due(i)
        if at_tenth is not None and i % tenth == 0:
            at_tenth()
        t = time.time()
        status, ms = client.get(name)
        if status != 200:
            raise RuntimeError(f"{name}: {status}")
        out.append((t, ms))
    if at_tenth is not None:
        at_tenth()
    return out


def probe_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """Collections per generation (count, max and total ms) and busy reactor iterations."""
    out: dict[str, Any] = {}
    for gen in (0, 1, 2):
        events = [e for e in stats["gc"] if e["gen"] == gen]
        if events:
            out[f"gc{gen}"] = {
                "n": len(events),
                "max_ms": max(e["ms"] for e in events),
                "max_cpu_ms": max(e["cpu_ms"] for e in events),
                "total_ms": round(sum(e["ms"] for e in events), 1),
                "collected": sum(e["collected"] for e in events),
                "worst": max(events, key=lambda e: e["cpu_ms"]),
            }
    busy = stats["busy"]
    out["iterations"] = stats["iterations"]
    out["busy_ms_total"] = round(stats["busy_total_ms"], 1)
    out["busy_over_1ms"] = len(busy)
    out["busy_over_5ms"] = sum(1 for b in busy if b["ms"] >= 5)
    if busy:
        worst = max(busy, key=lambda b: b["ms"])
        out["busy_max"] = worst
    return out


def slow_requests(
    timed: list[tuple[float, float]], stats: dict[str, Any], over_ms: float
) -> dict[str, Any]:
    """The requests slower than ``over_ms``, each with the busy iterations (and their GC)
    and collections that overlapped it."""
    slow = []
    for t, ms in timed:
        if ms < over_ms:
            continue
        end = t + ms / 1000
        busy = [b for b in stats["busy"] if b["t"] < end and b["t"] + b["ms"] / 1000 > t]
        gcs = [e for e in stats["gc"] if e["t"] < end and e["t"] + e["ms"] / 1000 > t]
        slow.append(
            {
                "ms": round(ms, 2),
                "busy_ms": round(sum(b["ms"] for b in busy), 2),
                "busy_cpu_ms": round(sum(b["cpu_ms"] for b in busy), 2),
                "gc": [(e["gen"], e["ms"]) for e in gcs],
            }
        )
    slow.sort(key=lambda x: -x["ms"])
    return {
        "n": len(slow),
        "with_gc": sum(1 for x in slow if x["gc"]),
        "with_busy": sum(1 for x in slow if x["busy_ms"]),
        "worst": slow[:12],
    }


def bind_summary(latencies: list[float], cpu_marks: list[float] | None = None) -> dict[str, Any]:
    """p50/p99 of the whole round and of its first and last tenth (the drift target), and
    per tenth: p50, p99 and, with ``cpu_marks`` (the proxy's CPU seconds at each tenth,
    see :func:`route_timed`), its CPU ms per bind.  The p99 of ~1,000 binds is their
    10th-slowest, so a few ms of VM stall in one tenth moves it; a drift that the proxy
    causes shows in every tenth after it, and in its CPU per bind."""
    tenth = max(1, len(latencies) // 10)
    tenths = []
    for k in range(10):
        part = latencies[k * tenth : (k + 1) * tenth]
        if not part:
            break
        row = {"p50_ms": round(pct(part, 0.5), 3), "p99_ms": round(pct(part, 0.99), 3)}
        if cpu_marks is not None and k + 1 < len(cpu_marks):
            row["cpu_ms_per_bind"] = round((cpu_marks[k + 1] - cpu_marks[k]) * 1000 / len(part), 3)
        tenths.append(row)
    return {
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "start_p99_ms": pct(latencies[:tenth], 0.99),
        "end_p99_ms": pct(latencies[-tenth:], 0.99),
        "tenths": tenths,
    }


def scrapes(proxy: Proxy, path: str, n: int) -> dict[str, Any]:
    walls, cpus = [], []
    body = b""
    for _ in range(n):
        body, wall, cpu = proxy.fetch(path)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
        "lines": body.count(b"\n"),
        "bytes": len(body),
    }


def live_clients(proxy: Proxy) -> int:
    """How many clients (bound names) the router holds (``/client_state.json``)."""
    body, _, _ = proxy.fetch("/client_state.json")
    state = json.loads(body)
    return sum(len(clients) for clients in state.values()) if isinstance(state, dict) else -1


def service_series(proxy: Proxy) -> int:
    body, _, _ = proxy.fetch("/admin/metrics/prometheus")
    return sum(1 for line in body.split(b"\n") if line.startswith(b"rt:service:requests{"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument(
        "--ttl",
        type=int,
        default=120,
        help="idleTtlSecs and metricsExpiryTtlSecs (longer than round 1 and the idle window,"
        " so that every name is still routed when RSS is taken before expiry)",
    )
    parser.add_argument("--revisits", type=int, default=2_000)
    parser.add_argument("--scrapes", type=int, default=2)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measured")
    parser.add_argument("--max-metric-scopes", type=int, default=None)
    parser.add_argument("--repo", default=None, help="run the proxy from another tree")
    parser.add_argument("--legacy", action="store_true", help="no bindingCache key, no expiry")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="names per second in each round (0: back to back, as before the fifth pass)"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=("nginx", "threads"),
        default="nginx" if NGINX else "threads",
        help="nginx (one worker, one epoll loop) or tests/http/backend.py (a thread per"
        " connection) (default %(default)s)",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of all names, with expiry between"
    )
    parser.add_argument(
        "--gc-probe",
        action="store_true",
        help="full collections on SIGUSR2, counted (see GC_PROBE)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the proxy under names_probe.py: GC pauses, busy reactor iterations, memory",
    )
    parser.add_argument(
        "--py-spy-idle", default=None, help="py-spy record the proxy's idle window into this file"
    )
    parser.add_argument(
        "--trim", action="store_true", help="with --probe: malloc_trim(0) after expiry"
    )
    parser.add_argument(
        "--types",
        action="store_true",
        help="with --probe: the most numerous tracked types before expiry and after round 2,"
        " then a full collection",
    )
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="do not byte-compile the tree's l5d_twisted first (as the image does)",
    )
    args = parser.parse_args()
    if not args.from_source:  # as shipped: see bench/startup/startup.py, compile_as_shipped
        tree = Path(args.repo).resolve() if args.repo else REPO
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "l5d_twisted")],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
    result: dict[str, Any] = {
        "names": args.names,
        "backend": args.backend,
        "rate": args.rate,
        "uptime_start": os.getloadavg(),
        # how fast the VM was (see bench/hostnoise.py): compare runs only at similar values
        "loop_ms_start": hostnoise.loop_ms(),
    }
    steal = hostnoise.StealMeter()
    result["byte_compiled"] = not args.from_source
    with tempfile.TemporaryDirectory(prefix="l5d-names-") as tmp:
        proxy = Proxy(args, Path(tmp))
        pid = proxy.proxy.pid
        client = Client(proxy.port)
        try:
            route_all(client, ["warm"] * 20)
            time.sleep(1.0)
            result["rss_start_mb"] = rss_kb(pid) / 1024
            sockets_start = sockets(pid)
            names = [f"s{i}" for i in range(args.names)]
            cpu0 = cpu_s(pid)
            t0 = time.perf_counter()
            phase(f"round 1: {args.names} names (proxy pid {pid})")
            round1_cpu: list[float] = []  # the proxy's CPU s at each tenth
            round1_timed = route_timed(
                client, names, args.rate, at_tenth=lambda: round1_cpu.append(cpu_s(pid))
            )
            round1 = [ms for _, ms in round1_timed]
            # when each name's request ended (its connection's idle time starts then)
            sent_at = {name: t + ms / 1000 for name, (t, ms) in zip(names, round1_timed)}
            if args.probe:
                stats = proxy.probe("stats")[0]
                result["probe_round1"] = probe_summary(stats)
                tenth = max(1, len(names) // 10)
                result["round1_slow_start"] = slow_requests(round1_timed[:tenth], stats, 5.0)
                result["round1_slow_end"] = slow_requests(round1_timed[-tenth:], stats, 5.0)
                result["round1_busy_over_10ms"] = [b for b in stats["busy"] if b["cpu_ms"] >= 10]
            result["round1"] = bind_summary(round1, round1_cpu) | {
                "wall_s": time.perf_counter() - t0,
                "proxy_cpu_ms_per_name": (cpu_s(pid) - cpu0) * 1000 / args.names,
            }
            result["rss_round1_mb"] = rss_kb(pid) / 1024
            # RSS per name depends on how many of round 1's pooled connections (~2.25 KB
            # each with Twisted's transport) are still open: those of the last idleTimeMs
            result["upstream_sockets_round1"] = sockets(pid) - sockets_start
            result["clients_round1"] = live_clients(proxy)
            result["kb_per_name"] = (
                (result["rss_round1_mb"] - result["rss_start_mb"]) * 1024 / args.names
            )
            rng = random.Random(17)
            chosen = [rng.choice(names) for _ in range(args.revisits)]
            revisit_t0 = time.time()
            timed = route_timed(client, chosen)
            revisits = [ms for _, ms in timed]
            result["revisit"] = {"p50_ms": pct(revisits, 0.5), "p99_ms": pct(revisits, 0.99)}
            # a name sent in the last 9 s still has its pooled connection (idleTimeMs 10 s);
            # the others connect again (the backend starts a thread per connection)
            warm = [ms for name, ms in zip(chosen, revisits) if revisit_t0 - sent_at[name] < 9]
            cold = [ms for name, ms in zip(chosen, revisits) if revisit_t0 - sent_at[name] >= 9]
            for label, values in (("with_connection", warm), ("reconnecting", cold)):
                if values:
                    result["revisit"][label] = {
                        "n": len(values),
                        "p50_ms": pct(values, 0.5),
                        "p99_ms": pct(values, 0.99),
                    }
            if args.probe:
                stats = proxy.probe("stats")[0]
                result["probe_revisit"] = probe_summary(stats)
                result["revisit_slow"] = slow_requests(timed, stats, 2.0)
            result["prometheus"] = scrapes(proxy, "/admin/metrics/prometheus", args.scrapes)
            result["metrics_json"] = scrapes(proxy, "/admin/metrics.json", args.scrapes)
            client.close()
            time.sleep(2.0)
            cpu0, t0 = cpu_s(pid), time.monotonic()
            phase(f"idle for {args.idle} s")
            if args.probe:
                proxy.probe("stats")
            spy = None
            if args.py_spy_idle:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(pid),
                        "-d",
                        str(int(args.idle)),
                        "-r",
                        "200",
                        "--format",
                        "raw",
                        "-o",
                        args.py_spy_idle,
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            series, last_cpu, last_t = [], cpu0, t0
            while time.monotonic() < t0 + args.idle:
                time.sleep(min(5.0, t0 + args.idle - time.monotonic()))
                now_cpu, now_t = cpu_s(pid), time.monotonic()
                series.append(round(100 * (now_cpu - last_cpu) / (now_t - last_t), 2))
                last_cpu, last_t = now_cpu, now_t
            result["idle_cpu_pct"] = 100 * (cpu_s(pid) - cpu0) / (time.monotonic() - t0)
            result["idle_cpu_pct_per_5s"] = series
            if spy is not None:
                spy.wait(30)
            # the same again once round 1's pooled connections have closed (idleTimeMs 10 s,
            # the first window is longer): what every routed and watched name costs while
            # nothing happens, apart from the one-off cost of closing those connections
            cpu0, t0 = cpu_s(pid), time.monotonic()
            phase(f"settled idle for {args.idle} s")
            time.sleep(args.idle)
            result["idle_settled_cpu_pct"] = 100 * (cpu_s(pid) - cpu0) / (time.monotonic() - t0)
            if args.probe:
                result["probe_idle"] = probe_summary(proxy.probe("stats")[0])
                result["mem_before_expiry"] = proxy.probe("mem")[0]
                if args.types:
                    result["types_before_expiry"] = proxy.probe("types")[0]
            result["rss_before_expiry_mb"] = rss_kb(pid) / 1024
            # the growth criterion compares the same live names: all of them, here and after
            # round 2 (with a TTL shorter than round 1 plus the idle window, the first names
            # expire meanwhile and round 2's peak holds more names than this one did)
            result["clients_before_expiry"] = live_clients(proxy)
            if not args.legacy and args.rounds >= 2:
                phase("waiting for expiry")
                deadline = time.monotonic() + 2.5 * args.ttl + 30
                left = service_series(proxy)
                while left > 1 and time.monotonic() < deadline:
                    time.sleep(2.0)
                    left = service_series(proxy)
                time.sleep(args.ttl / 10 + 2)  # the route sweep runs every TTL/10
                result["expired_s"] = round(time.monotonic() - t0, 1)
                result["service_series_left"] = left
                result["rss_after_expiry_mb"] = rss_kb(pid) / 1024
                if args.probe:
                    result["probe_expiry"] = probe_summary(proxy.probe("stats")[0])
                    result["mem_after_expiry"] = proxy.probe("mem")[0]
                    if args.trim:
                        result["trim_after_expiry"] = proxy.probe("trim")[0]
                if args.gc_probe:
                    found, ms = proxy.gc_probe()
                    result["gc_after_expiry"] = {"unreachable": found, "ms": ms}
                    result["rss_after_expiry_gc_mb"] = rss_kb(pid) / 1024
                cpu0 = cpu_s(pid)
                phase("round 2")
                round2 = route_all(client, names, args.rate)
                result["round2"] = bind_summary(round2) | {
                    "proxy_cpu_ms_per_name": (cpu_s(pid) - cpu0) * 1000 / args.names
                }
                route_all(client, [rng.choice(names) for _ in range(args.revisits)])
                scrapes(proxy, "/admin/metrics/prometheus", args.scrapes)
                scrapes(proxy, "/admin/metrics.json", args.scrapes)
                result["rss_round2_now_mb"] = rss_kb(pid) / 1024
                # as before expiry: after the same quiet time (round 2's pooled connections,
                # idle for idleTimeMs, closed; each holds ~8 KB of objects meanwhile)
                client.close()
                time.sleep(2.0 + args.idle)
                result["rss_round2_mb"] = rss_kb(pid) / 1024
                result["clients_round2"] = live_clients(proxy)
                if args.probe:
                    result["probe_round2"] = probe_summary(proxy.probe("stats")[0])
                    result["mem_round2"] = proxy.probe("mem")[0]
                    if args.types:
                        result["types_round2"] = proxy.probe("types")[0]
                        result["collect_round2"] = proxy.probe("collect")[0]
                        result["mem_round2_collected"] = proxy.probe("mem")[0]
                if args.gc_probe:
                    found, ms = proxy.gc_probe()
                    result["gc_after_round2"] = {"unreachable": found, "ms": ms}
                # the same work as before expiry: routing, revisits, scrapes
                result["round2_growth_pct"] = 100 * (
                    result["rss_round2_mb"] / result["rss_before_expiry_mb"] - 1
                )
                # further rounds: does RSS keep growing, or has it reached a plateau?
                result["rss_later_rounds_mb"] = []
                for n in range(3, args.rounds + 1):
                    phase(f"expiry, then round {n}")
                    time.sleep(args.ttl * 1.1 + args.ttl / 10 + 4)
                    route_all(client, names, args.rate)
                    route_all(client, [rng.choice(names) for _ in range(args.revisits)])
                    scrapes(proxy, "/admin/metrics/prometheus", args.scrapes)
                    scrapes(proxy, "/admin/metrics.json", args.scrapes)
                    result["rss_later_rounds_mb"].append(rss_kb(pid) / 1024)
        finally:
            client.close()
            proxy.stop()
    result["uptime_end"] = os.getloadavg()
    result["steal_pct"] = steal.pct
    result["loop_ms_end"] = hostnoise.loop_ms()
    print(json.dumps(result, indent=1, default=lambda x: round(x, 3)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
