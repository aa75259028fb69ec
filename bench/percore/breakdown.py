"""Where the proxy's CPU goes per request, in microseconds per component.

    python3 bench/percore/breakdown.py                      # ~40 s: 8 s windows
    python3 bench/percore/breakdown.py --seconds 5 --reactor uvloop
    python3 bench/percore/breakdown.py --json out.json

What it does, on free 127.0.0.1 ports (needs nginx and wrk, as bench/proxy_bench.py):

* an nginx backend (one worker, a fixed 23-byte 200) and ``l5d-twisted run`` on the
  proxy benchmark's config (one router, ``io.l5d.fs`` naming the backend, default
  client/service stacks, the Prometheus telemeter), started through this file
  (``--child``) so it can be measured from inside; the proxy pinned to the last CPU,
  nginx and wrk to the others;
* ``wrk -c 50 -t 2`` (``--connections``) for a warm-up, then two measured windows: each
  bracketed by SIGUSR1/SIGUSR2 to the proxy, the requests counted from the proxy's own
  ``requests`` counter (``/admin/metrics.json`` read before and after, outside the window);
* window 1, unprofiled: the proxy's user and system CPU (``os.times``) and the CPU spent
  in garbage collections (``gc.callbacks``), per request;
* window 2, under cProfile: each function's own time, sorted into components by where
  its code lives; a C builtin (``len``, ``dict.get``...) counts for the component of its
  callers, in proportion to their calls' time.

Per request, the table says:

* **syscalls**: the proxy's system CPU (kernel time: ``send``/``recv``/``epoll`` and the
  loopback TCP stack under them), window 1;
* **GC**: CPU inside garbage collections, window 1;
* every other row: window 1's user CPU minus GC, split in the proportions of window 2's
  profile. cProfile inflates the cost of a Python call more than that of C code, so the
  split favours the components that make many small calls; treat it as +-20 %.

Components: ``reactor`` (Twisted outside ``defer.py``: the reactor loop, transports,
``callWithLogger`` / ``callWithContext`` wrapping, zope), ``Deferreds``
(``twisted/internet/defer.py``), ``codec`` (``l5d_twisted/http/`` but the pool:
httptools' callbacks, framing, messages, server and client protocols), ``router``
(``router/``, ``naming/``, ``service.py``), ``resilience filters`` (retries, deadline,
requeues, classifiers), ``stats`` (``telemetry/``), ``balancer`` (``balancers/``,
``http/pool.py``, failure accrual, fail fast), ``other``.
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
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

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

COMPONENTS = (
    "reactor",
    "syscalls",
    "Deferreds",
    "codec",
    "router",
    "resilience filters",
    "stats",
    "balancer",
    "GC",
    "other",
)

# C functions whose time is the kernel's (counted as system CPU in window 1)
_SYSCALLS = (
    "'send'",
    "'recv'",
    "'recv_into'",
    "'sendmsg'",
    "'sendall'",
    "'accept'",
    "'poll' of 'select.epoll'",
    "'register' of 'select.epoll'",
    "'modify' of 'select.epoll'",
    "'unregister' of 'select.epoll'",
    "'select' of",
    "'run_once'",
    "'setsockopt'",
    "'shutdown'",
    "'close' of '_socket",
    "'connect_ex'",
)


def component(filename: str, name: str) -> str | None:
    """The component a Python function's own time belongs to (None: a C builtin)."""
    if filename == "~":
        return None
    f = filename.replace(os.sep, "/")
    if "/twisted/internet/defer.py" in f:
        return "Deferreds"
    if "/twisted/" in f or "/zope/" in f or "/asyncio/" in f or "/uvloop/" in f:
        return "reactor"
    if "/l5d_twisted/" in f:
        rel = f.rsplit("/l5d_twisted/", 1)[1]
        if rel.startswith("telemetry/"):
            return "stats"
        if (
            rel.startswith("balancers/")
            or rel == "http/pool.py"
            or rel in ("resilience/accrual.py", "resilience/fail_fast.py")
        ):
            return "balancer"
        if rel.startswith("http/"):
            return "codec"
        if rel.startswith("resilience/"):
            return "resilience filters"
        if rel.startswith(("router/", "naming/", "namers/")) or rel in (
            "service.py",
            "request_context.py",
        ):
            return "router"
        return "other"
    if "/httptools/" in f:
        return "codec"
    return "other"


def split_profile(stats: dict[Any, Any]) -> tuple[dict[str, float], float, int]:
    """Own time per component (syscall builtins apart), their total, and the call count."""
    own: dict[str, float] = {c: 0.0 for c in COMPONENTS}
    syscall_s = 0.0
    calls = 0
    for (filename, _line, name), (_cc, nc, tt, _ct, callers) in stats.items():
        calls += nc
        comp = component(filename, name)
        if comp is not None:
            own[comp] += tt
            continue
        if any(s in name for s in _SYSCALLS):
            syscall_s += tt
            continue
        # a builtin: its callers' components, weighted by each call site's time in it
        weights: dict[str, float] = {}
        for (cfile, _cline, cname), edge in callers.items():
            ccomp = component(cfile, cname) or "other"
            weights[ccomp] = weights.get(ccomp, 0.0) + edge[2]
        total = sum(weights.values())
        if total <= 0:
            own["other"] += tt
            continue
        for ccomp, w in weights.items():
            own[ccomp] += tt * w / total
    own.pop("syscalls")
    own.pop("GC")
    return own, syscall_s, calls


# -- the proxy process (--child) ---------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    import cProfile
    import gc
    import pstats

    if args.reactor == "lean":
        from l5d_twisted.eventloop import install

        assert install(), "cannot install the lean epoll reactor here"
    elif args.reactor == "twisted":
        from twisted.internet import epollreactor

        epollreactor.install()
    if args.reactor in ("asyncio", "uvloop"):
        import asyncio

        if args.reactor == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        from twisted.internet import asyncioreactor

        install: Any = asyncioreactor.install  # (untyped)
        install(loop)

    gc_cpu = [0.0, 0.0, 0]  # total, start of the current collection, collections
    gc_found = [0, 0, 0]  # collections per generation
    gc_garbage = [0]  # objects collected (found unreachable)

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_cpu[1] = time.process_time()
        else:
            gc_cpu[0] += time.process_time() - gc_cpu[1]
            gc_cpu[2] += 1
            gc_found[info["generation"]] += 1
            gc_garbage[0] += info["collected"]

    gc.callbacks.append(on_gc)
    window: dict[str, Any] = {"n": 0}
    profiler = cProfile.Profile()

    def start(signum: int, frame: Any) -> None:
        window["times"] = os.times()
        window["gc"] = (gc_cpu[0], gc_cpu[2], list(gc_found), gc_garbage[0])
        if window["n"] == 1:
            # (the GC probe's clock reads would take the collections' time in the profile)
            gc.callbacks.remove(on_gc)
            profiler.enable()

    def stop(signum: int, frame: Any) -> None:
        profiler.disable()
        if on_gc not in gc.callbacks:
            gc.callbacks.append(on_gc)
        end = os.times()
        begin = window["times"]
        result: dict[str, Any] = {
            "user_s": end.user - begin.user,
            "system_s": end.system - begin.system,
            "gc_s": gc_cpu[0] - window["gc"][0],
            "gc_collections": gc_cpu[2] - window["gc"][1],
            "gc_by_generation": [a - b for a, b in zip(gc_found, window["gc"][2])],
            "gc_collected_objects": gc_garbage[0] - window["gc"][3],
            "gc_thresholds": gc.get_threshold(),
        }
        if window["n"] == 1:
            own, syscall_s, calls = split_profile(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]
            result.update(profile_own_s=own, profile_syscall_s=syscall_s, profile_calls=calls)
            ranked = sorted(
                pstats.Stats(profiler).stats.items(),  # type: ignore[attr-defined]
                key=lambda item: -item[1][2],
            )
            result["profile_top"] = [
                [
                    f"{os.path.basename(f)}:{line}({name})",
                    component(f, name) or "builtin",
                    v[1],
                    v[2],
                ]
                for (f, line, name), v in ranked[: args.top]
            ]
        Path(f"{args.out}.{window['n']}").write_text(json.dumps(result))
        window["n"] += 1

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    if args.gc_thresholds:
        import importlib

        run: Any = importlib.import_module("l5d_twisted.cli.run")  # (cli.run is a function)
        run.GC_THRESHOLDS = tuple(int(t) for t in args.gc_thresholds.split(","))
    from l5d_twisted.cli import main

    return main(["run", args.config, "--log-level", "warn"])


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
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port} did not answer 200 within {timeout:g}s")


def server_requests(admin_port: int) -> int:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{admin_port}/admin/metrics.json", timeout=10
    ) as r:
        metrics = json.load(r)
    return int(
        sum(
            v
            for k, v in metrics.items()
            if k.startswith("rt/bench/server/") and k.endswith("/requests")
        )
    )


def wrk(port: int, seconds: float, connections: int, cpus: str | None) -> float:
    argv = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "-H",
        "Host: backend",
    ]
    argv.append(f"http://127.0.0.1:{port}/")
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk said:\n{out}")


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if text:
                return json.loads(text)
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"no {path} within {timeout:g}s")


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
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--top", type=int, default=0, help="also list the profile's N costliest functions"
    )
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
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
    try:
        (workdir / "tmp").mkdir()
        (workdir / "disco").mkdir()
        backend_port, port, admin_port = free_port(), free_port(), free_port()
        (workdir / "backend.conf").write_text(BACKEND_CONF.format(dir=workdir, port=backend_port))
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
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--config", str(config)]
        argv += [
            "--out",
            str(workdir / "window"),
            "--reactor",
            args.reactor,
            "--top",
            str(args.top),
        ]
        if args.gc_thresholds:
            argv += ["--gc-thresholds", args.gc_thresholds]
        if proxy_cpu is not None:
            argv = ["taskset", "-c", proxy_cpu, *argv]
        log_fd = os.open(workdir / "proxy.log", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            proxy = subprocess.Popen(argv, env=env, stdout=log_fd, stderr=subprocess.STDOUT)
        finally:
            os.close(log_fd)
        procs.append(proxy)
        wait_for_200(port, proxy)
        wrk(port, 2.0, args.connections, load_cpus)  # warm-up
        windows = []
        for i in range(2):
            before = server_requests(admin_port)
            os.kill(proxy.pid, signal.SIGUSR1)
            rps = wrk(port, args.seconds, args.connections, load_cpus)
            os.kill(proxy.pid, signal.SIGUSR2)
            result = wait_for_file(workdir / f"window.{i}", proxy)
            result["requests"] = server_requests(admin_port) - before
            result["wrk_rps"] = rps
            windows.append(result)
    except Exception:
        log_path = workdir / "proxy.log"
        if log_path.exists():
            print(f"--- proxy log ---\n{log_path.read_text()[-4000:]}", file=sys.stderr)
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
    plain, prof = windows
    n = plain["requests"]
    rows = breakdown(plain, prof, n)
    total = (plain["user_s"] + plain["system_s"]) * 1e6 / n
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, reactor {args.reactor}, "
        f"proxy {'on CPU ' + proxy_cpu if proxy_cpu else 'not pinned'}, wrk -c {args.connections}"
        + (f", gc thresholds {args.gc_thresholds}" if args.gc_thresholds else "")
    )
    print(
        f"window 1: {n:,} requests, {plain['wrk_rps']:,.0f} req/s, GC collections by "
        f"generation {plain['gc_by_generation']} finding {plain['gc_collected_objects']:,} "
        f"unreachable objects (thresholds {tuple(plain['gc_thresholds'])}); "
        f"window 2 (profiled): {prof['wrk_rps']:,.0f} req/s, "
        f"{prof['profile_calls'] / max(prof['requests'], 1):.0f} Python calls per request"
    )
    print()
    print("| component | us per request | share |")
    print("|---|---:|---:|")
    for comp in COMPONENTS:
        print(f"| {comp} | {rows[comp]:.1f} | {rows[comp] / total:.0%} |")
    print(f"| **total CPU** | **{total:.1f}** | 100% |")
    if args.top:
        print()
        print("profiled window, own time per request (inflated by the profiler):")
        for where, comp, calls, seconds in prof["profile_top"]:
            per = prof["requests"] or 1
            print(f"  {seconds * 1e6 / per:6.2f} us  {calls / per:5.1f} calls  {comp:18} {where}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "windows": windows,
                    "us_per_request": rows,
                    "total_us": total,
                    "load": load_before,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
