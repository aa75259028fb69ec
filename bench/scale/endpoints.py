"""One service with many endpoints through io.l5d.k8s: discovery churn and balancing (issue 17).

    python3 bench/scale/endpoints.py                     # the whole table (~8 min)
    python3 bench/scale/endpoints.py --only changes      # discovery churn only
    python3 bench/scale/endpoints.py --only balancers --kinds p2c,aperture
    python3 bench/scale/endpoints.py --repo /tmp/old --no-cap   # an older tree
    python3 bench/scale/endpoints.py --only inprocess --repo /tmp/old   # A/B, one change's CPU

On free 127.0.0.1 ports: kmock's Kubernetes emulator (``tests/k8s/k8s_kmock_server.py``)
preloaded with one service ``svc`` in namespace ``bench`` whose E endpoints are split into
EndpointSlices of ``--per-slice`` (100, Kubernetes' default), one ``l5d-twisted run`` router
(``/svc => /#/io.l5d.k8s/bench/http;``) and, for traffic, one backend process answering
``200 ok`` on every endpoint address (127.1.x.y, all loopback, one port).

1. **changes** (E = 100 and 1,000): the mesh's CPU points (utime + stime from
   ``/proc/PID/stat`` over wall time) idle for ``--idle`` s, then while ``--rate`` changes a
   second are PATCHed into the API for ``--changes-for`` s, each replacing one endpoint of a
   slice by a new address (a pod restarted elsewhere).  Every change must arrive: the
   client's ``loadbalancer/adds`` and ``removes`` counters must each grow by exactly the
   number of changes (one endpoint made and one retired per change).  CPU per change =
   (CPU under changes - idle CPU) / changes.
2. **balancers** (E = 10 and 1,000, each ``--kinds``): ``bench/rategen.py`` at ``--rps``
   for ``--duration`` s (after a warm-up): the mesh's CPU per request, p50/p99 from the
   generator, and the mesh's open sockets after the run (``/proc/PID/fd``); for p2c and
   ewma at E = 1,000 also with ``hostConnectionPool.maxIdlePerClient: --cap``.

3. **inprocess** (only with ``--only inprocess``): CPU µs per change from the watch line to
   the balancer in one process (a stub API, real namer, BoundClient, EndpointClients, a
   task.Clock), for this tree and ``--repo`` interleaved ``--rounds`` times: no HTTP, no
   kmock, so it is the mesh's own work, and A/B interleaving survives contention.  The
   rows: E = 100 in one slice, 1,000 in slices of 100, one slice of 1,000, and
   ``per_slice`` 0: one v1 Endpoints object of 1,000, its addresses sorted as the
   endpoints controller keeps them (a new IP lands elsewhere than the old one left).

``--v1``: the changes part with one v1 Endpoints object instead of slices (the namer with
``preferEndpointSlices: false``).  ``--py-spy FILE``: py-spy's collapsed stacks of the mesh
while it takes the changes (its sampling costs the mesh CPU: for where, not how much).

Every process is stopped by PID; nothing leaves 127.0.0.0/8.  CPU figures survive
contention better than latencies: the load (``uptime``) is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KMOCK = REPO / "tests" / "k8s" / "k8s_kmock_server.py"
RATEGEN = REPO / "bench" / "rategen.py"
HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")
NAMESPACE = "bench"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
ENDPOINTS = f"/api/v1/namespaces/{NAMESPACE}/endpoints"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def endpoint_ip(i: int, block: int = 1) -> str:
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def slice_object(k: int, ips: list[str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{k}",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": "svc"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True},
                "nodeName": f"node-{n % 7}",
                "targetRef": {"kind": "Pod", "name": f"svc-{ip.replace('.', '-')}"},
            }
            for n, ip in enumerate(ips)
        ],
    }


def endpoints_object(ips: list[str], port: int) -> dict[str, Any]:
    """One v1 Endpoints object: its addresses sorted, as the endpoints controller keeps
    them (a replaced pod's new IP lands at another position than the old one left)."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "svc", "namespace": NAMESPACE},
        "subsets": [
            {
                "addresses": [
                    {
                        "ip": ip,
                        "nodeName": f"node-{sum(map(ord, ip)) % 7}",
                        "targetRef": {"kind": "Pod", "name": f"svc-{ip.replace('.', '-')}"},
                    }
                    for ip in sorted(ips)
                ],
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            }
        ],
    }


# --- the backend: "200 ok" on every endpoint address -------------------------------------------


class _Answer(asyncio.Protocol):
    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:  # GETs without bodies
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.transport.write(self.RESPONSE)


async def serve_backend(ips: list[str], port: int) -> None:
    loop = asyncio.get_running_loop()
    for ip in ips:
        await loop.create_server(_Answer, ip, port, backlog=64)
    print(f"backend on {len(ips)} addresses", flush=True)
    await asyncio.Event().wait()


# --- the processes -------------------------------------------------------------------------------


class Setup:
    """kmock with one service of ``endpoints`` endpoints, a backend, one mesh."""

    def __init__(
        self,
        args: argparse.Namespace,
        work: Path,
        endpoints: int,
        kind: str = "p2c",
        cap: int | None = None,
        backend: bool = False,
    ) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        repo = Path(args.repo).resolve() if args.repo else REPO
        self.env = dict(os.environ, PYTHONPATH=str(repo))
        for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            self.env.pop(key, None)
        self.repo = repo
        self.backend_port = free_port()
        per = args.per_slice
        ips = [endpoint_ip(i) for i in range(endpoints)]
        self.v1 = bool(args.v1)
        if self.v1:  # one v1 Endpoints object
            self.slices = [ips]
            objects = [endpoints_object(ips, self.backend_port)]
        else:
            self.slices = [ips[k : k + per] for k in range(0, endpoints, per)]
            objects = [slice_object(k, s, self.backend_port) for k, s in enumerate(self.slices)]
        (work / "objects.json").write_text(json.dumps(objects))
        self.kmock_port = free_port()
        self._start(
            "kmock",
            sys.executable,
            str(KMOCK),
            "--port",
            str(self.kmock_port),
            "--objects",
            str(work / "objects.json"),
        )
        if backend:
            (work / "ips.json").write_text(json.dumps(ips))
            self._start(
                "backend",
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-backend",
                str(self.backend_port),
                str(work / "ips.json"),
            )
        self.port, self.admin = free_port(), free_port()
        client: dict[str, Any] = {"loadBalancer": {"kind": kind}}
        if cap is not None:
            client["hostConnectionPool"] = {"maxIdlePerClient": cap}
        config = {
            "admin": {"ip": HOST, "port": self.admin},
            "namers": [
                {"kind": "io.l5d.k8s", "host": HOST, "port": self.kmock_port}
                | ({"preferEndpointSlices": False} if self.v1 else {})
            ],
            "routers": [
                {
                    "protocol": "http",
                    "label": "out",
                    "dtab": f"/svc => /#/io.l5d.k8s/{NAMESPACE}/http;",
                    "client": client,
                    "servers": [{"ip": HOST, "port": self.port}],
                }
            ],
        }
        (work / "l5d.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        wait_for_port(self.kmock_port)
        if backend:
            self._wait_backend(ips[0])
        self.mesh = self._start(
            "l5d",
            sys.executable,
            "-m",
            "l5d_twisted",
            "run",
            str(work / "l5d.yaml"),
            "--log-level",
            "warn",
        )
        wait_for_port(self.port)
        wait_for_port(self.admin)
        self.rv = 0

    def _wait_backend(self, ip: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        log = self.work / "backend.log"
        while time.monotonic() < deadline:
            if log.exists() and "backend on" in log.read_text():
                return
            time.sleep(0.1)
        raise RuntimeError("the backend did not start")

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

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)

    # -- talking to the pieces --

    def get(self, host: str = "svc") -> int:
        with socket.create_connection((HOST, self.port), timeout=10) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1])

    def counters(self) -> dict[str, float]:
        with OPENER.open(f"http://{HOST}:{self.admin}/admin/metrics.json", timeout=30) as r:
            metrics: dict[str, float] = json.loads(r.read())
        found = {}
        for key, value in metrics.items():
            if "svc" in key and key.endswith(("loadbalancer/adds", "loadbalancer/removes")):
                found[key.rsplit("/", 1)[1]] = value
            elif "svc" in key and key.endswith("loadbalancer/size"):
                found["size"] = value
        return found

    def patch(self, k: int, ips: list[str]) -> None:
        if self.v1:
            body = {"subsets": endpoints_object(ips, self.backend_port)["subsets"]}
            url = f"http://{HOST}:{self.kmock_port}{ENDPOINTS}/svc"
        else:
            body = {"endpoints": slice_object(k, ips, self.backend_port)["endpoints"]}
            url = f"http://{HOST}:{self.kmock_port}{SLICES}/svc-{k}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        with OPENER.open(request, timeout=10) as r:
            r.read()


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# --- 1. discovery churn ---------------------------------------------------------------------------


def changes(args: argparse.Namespace, endpoints: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="l5d-endpoints-") as tmp:
        setup = Setup(args, Path(tmp), endpoints)
        try:
            setup.get()  # the client exists (its endpoints are not served: no traffic later)
            wait_until(lambda: setup.counters().get("size") == endpoints, 60, "the bound set")
            time.sleep(2.0)
            before = setup.counters()
            pid = setup.mesh.pid
            rss_before = rss_kb(pid)
            c0, t0 = cpu_s(pid), time.monotonic()
            time.sleep(args.idle)
            c1, t1 = cpu_s(pid), time.monotonic()
            idle_points = (c1 - c0) / (t1 - t0) * 100.0
            n = int(args.rate * args.changes_for)
            spy = None
            if args.py_spy:  # (its sampling costs the mesh some CPU: for where, not how much)
                spy = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(pid), "--rate", "500", "--format", "raw"]
                    + ["--output", args.py_spy, "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            start = time.monotonic()
            for i in range(n):
                due = start + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                k = i % len(setup.slices)
                j = (i // len(setup.slices)) % len(setup.slices[k])
                setup.slices[k][j] = endpoint_ip(i, block=2)  # a new address each time
                setup.patch(k, setup.slices[k])
            late = time.monotonic() - (start + (n - 1) / args.rate)
            c2, t2 = cpu_s(pid), time.monotonic()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            rss_after = rss_kb(pid)
            busy_points = (c2 - c1) / (t2 - t1) * 100.0
            want_adds = before.get("adds", 0) + n
            want_removes = before.get("removes", 0) + n

            def arrived() -> bool:
                now = setup.counters()
                return now.get("adds") == want_adds and now.get("removes") == want_removes

            try:
                wait_until(arrived, 30, "every change")
                ok = True
            except RuntimeError:
                ok = False
            after = setup.counters()
            return {
                "endpoints": endpoints,
                "changes": n,
                "arrived_adds": after.get("adds", 0) - before.get("adds", 0),
                "arrived_removes": after.get("removes", 0) - before.get("removes", 0),
                "all_arrived": ok,
                "idle_cpu_points": round(idle_points, 2),
                "changes_cpu_points": round(busy_points, 2),
                "rise_points": round(busy_points - idle_points, 2),
                "cpu_us_per_change": round(
                    ((c2 - c1) - (c1 - c0) / (t1 - t0) * (t2 - t1)) / n * 1e6
                ),
                "patcher_late_s": round(late, 2),
                # (when the patcher fell behind, the window held fewer than --rate a second)
                "effective_rate": round(n / (t2 - t1), 2),
                "rss_mb_before": round(rss_before / 1024, 1),
                "rss_mb_after": round(rss_after / 1024, 1),
            }
        finally:
            setup.stop()


# --- 2. balancers under load ----------------------------------------------------------------------


def load(args: argparse.Namespace, endpoints: int, kind: str, cap: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="l5d-endpoints-") as tmp:
        setup = Setup(args, Path(tmp), endpoints, kind=kind, cap=cap, backend=True)
        try:
            assert setup.get() == 200
            wait_until(lambda: setup.counters().get("size") == endpoints, 60, "the bound set")
            pid = setup.mesh.pid
            gen = [
                sys.executable,
                str(RATEGEN),
                "--port",
                str(setup.port),
                "--host",
                "svc",
                "--rps",
                str(args.rps),
                "--duration",
                str(args.warmup),
                "--warmup",
                "0",
            ]
            subprocess.run(gen, env=setup.env, capture_output=True, check=True)
            gen[gen.index("--duration") + 1] = str(args.duration)
            c0 = cpu_s(pid)
            out = subprocess.run(gen, env=setup.env, capture_output=True, check=True, text=True)
            c1 = cpu_s(pid)
            result = json.loads(out.stdout)
            return {
                "kind": kind,
                "endpoints": endpoints,
                "maxIdlePerClient": cap,
                "rps": args.rps,
                "ok": result["ok"],
                "failed": result["failed"],
                "cpu_us_per_request": round((c1 - c0) / max(result["ok"], 1) * 1e6),
                "p50_ms": result["p50"],
                "p99_ms": result["p99"],
                "send_lag_p99_ms": result["send_lag_p99"],
                "sockets": sockets(pid),
            }
        finally:
            setup.stop()


# --- 3. in-process: the cost of one change, without HTTP or kmock -----------------------------


def inprocess_child(endpoints: int, per_slice: int, kind: str, changes: int) -> float:
    """CPU µs per change from the watch line to the balancer (run with PYTHONPATH = a tree):
    a stub API hands MODIFIED lines to the namer, whose name a BoundClient with real
    EndpointClients observes, on a task.Clock."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import Clock

    from l5d_twisted.balancers.base import BalancerContext
    from l5d_twisted.http.client import EndpointClient, PoolSettings
    from l5d_twisted.k8s.api import WatchHandle
    from l5d_twisted.k8s.namer import K8sNamer
    from l5d_twisted.k8s.watcher import WatchSettings
    from l5d_twisted.naming.path import Path as NamePath
    from l5d_twisted.registry import BALANCERS
    from l5d_twisted.router.client import BoundClient
    from l5d_twisted.telemetry.stats import NULL_STATS

    class Api:
        on_line: Any = None

        def __init__(self, items: list[dict[str, Any]]) -> None:
            self.items = items

        async def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
            return {"metadata": {"resourceVersion": "1"}, "items": self.items}

        def watch(self, path: str, params: Any, on_line: Any, idle: float) -> WatchHandle:
            self.on_line = on_line
            return WatchHandle(Deferred())

    clock = Clock()
    ips = [endpoint_ip(i) for i in range(endpoints)]
    v1 = per_slice == 0  # one v1 Endpoints object, its addresses sorted

    def make(k: int, ips: list[str]) -> dict[str, Any]:
        return endpoints_object(ips, 8080) if v1 else slice_object(k, ips, 8080)

    slices = [ips] if v1 else [ips[k : k + per_slice] for k in range(0, endpoints, per_slice)]
    api = Api([make(k, s) for k, s in enumerate(slices)])
    namer = K8sNamer(
        api,  # type: ignore[arg-type]
        NamePath.read("/io.l5d.k8s"),
        clock,
        settings=WatchSettings(resync_s=0),
        prefer_slices=not v1,
    )
    states: list[Any] = []
    namer.lookup(NamePath.read(f"/{NAMESPACE}/http/svc")).observe(states.append)
    plugin = BALANCERS.get(kind)
    client = BoundClient(
        states[-1].value.value,
        make_endpoint=lambda a: EndpointClient(clock, a, PoolSettings(), NULL_STATS),
        balancer=plugin.factory(plugin.config_type(), BalancerContext(clock)),
        reactor=clock,
        binding_timeout_s=10,
    )
    assert len(client.addresses()) == endpoints
    lines = []
    for i in range(changes):
        k = i % len(slices)
        slices[k][(i // len(slices)) % len(slices[k])] = endpoint_ip(i, block=2)
        event: dict[str, Any] = {"type": "MODIFIED", "object": make(k, slices[k])}
        event["object"]["metadata"]["resourceVersion"] = str(2 + i)
        lines.append(json.dumps(event).encode())
    started = time.process_time()
    for line in lines:
        api.on_line(line)
    spent = time.process_time() - started
    assert len(client.addresses()) == endpoints
    return spent / changes * 1e6


def inprocess(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each tree (this one, and ``--repo`` if given) in turn, interleaved, ``--rounds`` times."""
    trees = {"this": REPO}
    if args.repo:
        trees["repo"] = Path(args.repo).resolve()
    rows = []
    for kind in args.kinds.split(","):
        for endpoints, per_slice in ((100, 100), (1000, 100), (1000, 1000), (1000, 0)):
            row: dict[str, Any] = {"kind": kind, "endpoints": endpoints, "per_slice": per_slice}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    env = dict(os.environ, PYTHONPATH=str(tree))
                    child = [sys.executable, str(Path(__file__).resolve()), "--inprocess-child"]
                    child += [str(endpoints), str(per_slice), kind, "200"]
                    out = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
                    row.setdefault(f"{name}_us_per_change", []).append(round(float(out.stdout)))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def uptime() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-backend":
        ips = json.loads(Path(sys.argv[3]).read_text())
        asyncio.run(serve_backend(ips, int(sys.argv[2])))
        return
    if len(sys.argv) == 6 and sys.argv[1] == "--inprocess-child":
        size, per, kind, n = sys.argv[2:]
        print(inprocess_child(int(size), int(per), kind, int(n)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["changes", "balancers", "inprocess"])
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds of --only inprocess")
    parser.add_argument("--repo", help="the tree to run the mesh from (default: this one)")
    parser.add_argument("--per-slice", type=int, default=100)
    parser.add_argument(
        "--v1", action="store_true", help="changes: one v1 Endpoints object, not slices"
    )
    parser.add_argument("--sizes", default="100,1000", help="E for the changes part")
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--changes-for", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--kinds", default="p2c,ewma,aperture,heap,roundRobin")
    parser.add_argument("--lb-sizes", default="10,1000", help="E for the balancers part")
    parser.add_argument("--rps", type=float, default=300.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--cap", type=int, default=100, help="maxIdlePerClient for p2c/ewma")
    parser.add_argument("--no-cap", action="store_true", help="skip the capped runs")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--py-spy", help="changes: py-spy's collapsed stacks of the mesh while changing, here"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"load_before": uptime()}
    if args.only == "inprocess":
        results["inprocess"] = inprocess(args)
    if args.only in (None, "changes"):
        results["changes"] = []
        for e in (int(x) for x in args.sizes.split(",")):
            row = changes(args, e)
            results["changes"].append(row)
            print(json.dumps(row), flush=True)
    if args.only in (None, "balancers"):
        results["balancers"] = []
        for kind in args.kinds.split(","):
            for e in (int(x) for x in args.lb_sizes.split(",")):
                caps: list[int | None] = [None]
                if not args.no_cap and kind in ("p2c", "ewma") and e >= 1000:
                    caps.append(args.cap)
                for cap in caps:
                    row = load(args, e, kind, cap)
                    results["balancers"].append(row)
                    print(json.dumps(row), flush=True)
    results["load_after"] = uptime()
    print(f"load average before: {results['load_before']}, after: {results['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
