"""Where the proxy's CPU goes per request, in microseconds per component.

    python3 bench/percore/breakdown.py                      # ~25 s: 8 s windows
    python3 bench/percore/breakdown.py --forwarder          # and the Twisted + httptools floor
    python3 bench/percore/breakdown.py --seconds 5 --reactor uvloop
    python3 bench/percore/breakdown.py --tree /tmp/other-checkout   # another tree's code
    python3 bench/percore/breakdown.py --json out.json

What it does, on free 127.0.0.1 ports (needs nginx and wrk, as bench/proxy_bench.py):

* an nginx backend (one worker, a fixed 23-byte 200) and ``l5d-twisted run`` on the
  proxy benchmark's config (one router, ``io.l5d.fs`` naming the backend, default
  client/service stacks, the Prometheus telemeter), run under ``hook.py`` so it can be
  measured from inside (and with ``--forwarder``, ``bench/minimal_forwarder.py`` the same
  way, after it); the proxy pinned to the last CPU, nginx and wrk to the others;
* ``wrk -c 50 -t 2`` (``--connections``) for a warm-up, then two measured windows: each
  bracketed by SIGUSR1/SIGUSR2 to the proxy (``hook.py``), the requests counted by wrk
  (responses it received in the window);
* window 1, unprofiled: the proxy's user and system CPU (``os.times``) and the CPU spent
  in garbage collections (``gc.callbacks``), per request;
* window 2, under cProfile: each function's own time, sorted into components by where
  its code lives; a C builtin (``len``, ``dict.get``...) counts for the component of its
  callers, in proportion to their calls' time.

``bench/proxy_bench.py`` runs the same two windows on its own l5d-twisted and minimal
forwarder processes (the functions below), so its report carries this table too.

Per request, the table says:

* **syscalls**: the proxy's system CPU (kernel time: ``send``/``recv``/``epoll`` and the
  loopback TCP stack under them), window 1;
* **GC**: CPU inside garbage collections, window 1;
* every other row: window 1's user CPU minus GC, split in the proportions of window 2's
  profile. cProfile inflates the cost of a Python call more than that of C code, so the
  split favours the components that make many small calls; treat it as +-20 %.

Components: ``reactor`` (Twisted outside ``defer.py``: the reactor loop, transports,
``callWithLogger`` / ``callWithContext`` wrapping, zope, ``l5d_twisted/eventloop.py``),
``Deferreds``
(``twisted/internet/defer.py``), ``codec`` (``l5d_twisted/http/`` but the pool:
httptools' callbacks, framing, messages, server and client protocols), ``router``
(``router/``, ``naming/``, ``service.py``), ``resilience filters`` (retries, deadline,
requeues, classifiers), ``stats`` (``telemetry/``), ``balancer`` (``balancers/``,
``http/pool.py``, failure accrual, fail fast), ``other``.  The minimal forwarder's own
functions count as ``codec`` (parsing, re-encoding and writing is all it does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from nginx_backend import backend_conf  # noqa: E402  (bench/nginx_backend.py)

# bench/proxy_bench.py's l5d-twisted config
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

sys.path.insert(0, str(HERE))

from hook import COMPONENTS, component, split_profile  # noqa: E402,F401  (bench/percore/hook.py)

# -- the driver ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_200(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    request = b"GET / HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(4096).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling a real process, with a deadline
    raise RuntimeError(f"127.0.0.1:{port} did not answer 200 within {timeout:g}s")


def wrk(port: int, seconds: float, connections: int, cpus: str | None) -> tuple[float, int]:
    """``wrk -t 2 -c N``: (requests/s, responses) over the run."""
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
    argv += ["-H", "Host: backend", f"http://127.0.0.1:{port}/"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = requests = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        elif " requests in " in line:
            requests = int(line.split()[0])
    if rps is None or requests is None:
        raise RuntimeError(f"wrk said:\n{out}")
    return rps, requests


def hook_argv(
    prefix: Path,
    program: list[str],
    reactor: str = "default",
    gc_thresholds: str | None = None,
    top: int = 10,
) -> list[str]:
    """The command that runs ``program`` (``-m module ...`` or ``script ...``) under the hook."""
    argv = [sys.executable, str(HERE / "hook.py"), "--out", str(prefix), "--top", str(top)]
    argv += ["--reactor", reactor]
    if gc_thresholds:
        argv += ["--gc-thresholds", gc_thresholds]
    if program[0] == "-m":
        return [*argv, "-m", program[1], "--", *program[2:]]
    return [*argv, "--", *program]


class Instrumented:
    """A process started under ``hook.py``: open a window, run something, read the figures."""

    def __init__(self, proc: subprocess.Popen[bytes], prefix: Path) -> None:
        self.proc = proc
        self.prefix = prefix
        self.n = 0
        for stale in prefix.parent.glob(prefix.name + ".*"):
            stale.unlink()  # another run's windows would be read as this one's

    def window(self, mode: str, during: Any, timeout: float = 60.0) -> tuple[dict[str, Any], Any]:
        """Open a ``mode`` window, call ``during()``, close it: (the window's figures, its value)."""
        Path(f"{self.prefix}.mode").write_text(mode)
        os.kill(self.proc.pid, signal.SIGUSR1)
        try:
            value = during()
        finally:
            os.kill(self.proc.pid, signal.SIGUSR2)
        path = Path(f"{self.prefix}.{self.n}")
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {path} within {timeout:g}s")
            time.sleep(0.02)  # polling a file the process writes, with a deadline
        self.n += 1
        return json.loads(path.read_text()), value


def breakdown(plain: dict[str, Any], prof: dict[str, Any], n: int) -> dict[str, float]:
    us = 1e6 / n
    rows = {c: 0.0 for c in COMPONENTS}
    rows["syscalls"] = plain["system_s"] * us
    rows["GC"] = plain["gc_s"] * us
    python_us = max(plain["user_s"] - plain["gc_s"], 0.0) * us
    own = prof["profile_own_s"]
    total_own = sum(own.values()) or 1.0
    for comp, seconds in own.items():
        rows[comp] = python_us * seconds / total_own
    return rows


def measure(
    proxy: Instrumented,
    port: int,
    seconds: float,
    connections: int,
    load_cpus: str | None,
    warmup: float = 2.0,
) -> dict[str, Any]:
    """Warm-up, a plain window and a profiled one under ``wrk``: the per-request split."""
    if warmup > 0:
        wrk(port, warmup, connections, load_cpus)
    windows = []
    for mode in ("plain", "profile"):
        result, (rps, requests) = proxy.window(
            mode, lambda: wrk(port, seconds, connections, load_cpus)
        )
        result["requests"] = requests
        result["wrk_rps"] = rps
        windows.append(result)
    plain, prof = windows
    n = max(plain["requests"], 1)
    return {
        "windows": windows,
        "us_per_request": breakdown(plain, prof, n),
        "total_us": (plain["user_s"] + plain["system_s"]) * 1e6 / n,
        "rps": plain["wrk_rps"],
        "calls_per_request": prof["profile_calls"] / max(prof["requests"], 1),
    }


def describe(name: str, m: dict[str, Any]) -> str:
    plain, prof = m["windows"]
    return (
        f"{name}: {plain['requests']:,} requests at {plain['wrk_rps']:,.0f} req/s, GC collections "
        f"by generation {plain['gc_by_generation']} finding {plain['gc_collected_objects']:,} "
        f"unreachable objects (thresholds {tuple(plain['gc_thresholds'])}); profiled window "
        f"{prof['wrk_rps']:,.0f} req/s, {m['calls_per_request']:.0f} Python calls per request"
        + (f"; compiled: {', '.join(plain['compiled'])}" if plain.get("compiled") else "")
        + (f"; code from {plain['code']}" if plain.get("code") else "")
    )


def table(columns: dict[str, dict[str, Any]], floor: str | None = None) -> str:
    """Markdown: one column of us per request per measured process (and, with ``floor``,
    each other column minus that one)."""
    names = list(columns)
    head = "| component | " + " | ".join(f"{n} us per request" for n in names)
    others = [n for n in names if n != floor] if floor is not None and floor in columns else []
    head += "".join(f" | {n} minus {floor}" for n in others) + " |"
    rows = [head, "|---|" + "---:|" * (len(names) + len(others))]
    base = columns[floor] if others and floor is not None else {}
    for comp in COMPONENTS:
        cells = [f"{columns[n]['us_per_request'][comp]:.1f}" for n in names]
        cells += [
            f"{columns[n]['us_per_request'][comp] - base['us_per_request'][comp]:+.1f}"
            for n in others
        ]
        rows.append(f"| {comp} | " + " | ".join(cells) + " |")
    cells = [f"**{columns[n]['total_us']:.1f}**" for n in names]
    cells += [f"**{columns[n]['total_us'] - base['total_us']:+.1f}**" for n in others]
    rows.append("| **total CPU** | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each measured window")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--reactor", choices=["default", "twisted", "lean", "asyncio", "uvloop"], default="default"
    )
    parser.add_argument(
        "--gc-thresholds",
        metavar="G0,G1,G2",
        help="run the proxy with these gc thresholds instead of cli/run.py's GC_THRESHOLDS",
    )
    parser.add_argument(
        "--tree",
        metavar="DIR",
        help="run the l5d_twisted of this tree (e.g. a `git archive` copy, a mypyc build)",
    )
    parser.add_argument(
        "--forwarder",
        action="store_true",
        help="also measure bench/minimal_forwarder.py, the Twisted + httptools floor",
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--top", type=int, default=0, help="also list the profile's N costliest functions"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    proxy_cpu = str(cpus[-1]) if pin else None
    load_cpus = ",".join(str(c) for c in cpus[:-1]) if pin else None
    workdir = Path(tempfile.mkdtemp(prefix="l5d-percore-"))
    procs: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()
    tree = Path(args.tree).resolve() if args.tree else REPO
    results: dict[str, dict[str, Any]] = {}
    try:
        (workdir / "tmp").mkdir()
        (workdir / "disco").mkdir()
        backend_port, port, admin_port = free_port(), free_port(), free_port()
        (workdir / "backend.conf").write_text(backend_conf(workdir, backend_port))
        nginx = ["nginx", "-p", str(workdir), "-c", str(workdir / "backend.conf")]
        nginx += ["-e", str(workdir / "backend-startup.log")]
        if load_cpus is not None:
            nginx = ["taskset", "-c", load_cpus, *nginx]
        procs.append(subprocess.Popen(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        (workdir / "disco" / "backend").write_text(f"127.0.0.1 {backend_port}\n")
        config = workdir / "l5d.yaml"
        config.write_text(L5D_CONF.format(dir=workdir, port=port, admin_port=admin_port))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
        }
        proxies = {
            "l5d-twisted": (
                port,
                ["-m", "l5d_twisted", "run", str(config), "--log-level", "warn"],
                args.reactor,
            )
        }
        if args.forwarder:
            fwd_port = free_port()
            proxies["minimal forwarder"] = (
                fwd_port,
                [
                    str(REPO / "bench" / "minimal_forwarder.py"),
                    "--port",
                    str(fwd_port),
                    "--backend",
                    f"127.0.0.1:{backend_port}",
                ],
                "default",
            )
        for i, (name, (p, program, reactor)) in enumerate(proxies.items()):
            argv = hook_argv(
                workdir / f"window-{i}", program, reactor, args.gc_thresholds, max(args.top, 10)
            )
            if proxy_cpu is not None:
                argv = ["taskset", "-c", proxy_cpu, *argv]
            with open(workdir / f"proxy-{i}.log", "wb") as log:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=str(tree),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            procs.append(proc)
            wait_for_200(p, proc)
            results[name] = measure(
                Instrumented(proc, workdir / f"window-{i}"),
                p,
                args.seconds,
                args.connections,
                load_cpus,
            )
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    except Exception:
        for log_path in workdir.glob("proxy-*.log"):
            print(f"--- {log_path.name} ---\n{log_path.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, reactor {args.reactor}, "
        f"proxy {'on CPU ' + proxy_cpu if proxy_cpu else 'not pinned'}, wrk -c {args.connections}"
        + (f", gc thresholds {args.gc_thresholds}" if args.gc_thresholds else "")
        + (f", tree {tree}" if args.tree else "")
    )
    for name, m in results.items():
        print(describe(name, m))
    print()
    print(table(results, "minimal forwarder" if args.forwarder else None))
    if args.top:
        for name, m in results.items():
            prof = m["windows"][1]
            print()
            print(f"{name}, profiled window, own time per request (inflated by the profiler):")
            per = prof["requests"] or 1
            for where, comp, calls, seconds in prof["profile_top"][: args.top]:
                print(
                    f"  {seconds * 1e6 / per:6.2f} us  {calls / per:5.1f} calls  {comp:18} {where}"
                )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "load": load_before, "tree": str(tree)}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
