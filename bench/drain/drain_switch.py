"""A hand-over between two ``l5d-twisted run`` processes on one port, under keep-alive load.

    python3 bench/drain/drain_switch.py                      # 200 req/s for 10 s, drainPeriodMs 5000
    python3 bench/drain/drain_switch.py --drain-period-ms 0  # the same without a drain period
    python3 bench/drain/drain_switch.py --json out.json      # also the whole result
    python3 bench/drain/drain_switch.py --single --drain-period-ms 0   # one proxy stopping, no hand-over

On 127.0.0.1 and free ports: two ``world`` apps (on 127.0.0.2 and 127.0.0.3, so a body
tells which proxy served it), an *old* proxy routing to the first, then the load
(``bench/drain/loadgen.py``: fixed rate over keep-alive connections, all of them opened
to the old proxy), then a *new* proxy routing to the second, both listening on the same port with
``socketOptions.reusePort``.  Once the new one is ready and the old one has served a
second of traffic, the old one gets SIGTERM; its ``/ready`` is polled until it exits; the
load goes on until ``--seconds`` have passed (and the new one alone has answered half a
second of it).

Reported: requests sent and failed (any non-2xx or error; resends after the keep-alive
race are counted apart as ``stale_retries``), how many requests the old process still
served after the signal and until when, when its readiness turned 503, when it exited
and with what code.  ``tests/mesh/test_mesh_drain.py`` runs the same switch with a
shorter load and asserts the behaviour; the figures here depend on timing and load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))

from l5d_testing import Processes, free_port, wait_for_port, wait_until  # noqa: E402

OLD_IP, NEW_IP = "127.0.0.2", "127.0.0.3"


def proxy_config(
    workdir: Path,
    name: str,
    world_ip: str,
    world_port: int,
    proxy_port: int,
    admin_port: int,
    drain_period_ms: int,
    grace_ms: int,
    reuse_port: bool = True,
) -> Path:
    """A proxy routing ``world`` to ``world_ip:world_port`` (keys at their defaults are left
    out, so older versions read it too)."""
    disco = workdir / f"disco-{name}"
    disco.mkdir(exist_ok=True)
    (disco / "world").write_text(f"{world_ip} {world_port}\n")
    config = workdir / f"{name}.yaml"
    config.write_text(
        f"""
admin:
  ip: 127.0.0.1
  port: {admin_port}
  shutdownGraceMs: {grace_ms}
{f"  drainPeriodMs: {drain_period_ms}" if drain_period_ms else ""}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: {proxy_port}
{"    socketOptions: {reusePort: true}" if reuse_port else ""}
"""
    )
    return config


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def served(admin_port: int) -> float:
    """Requests the proxy's servers have answered (its Prometheus ``rt:server:requests``)."""
    total = 0.0
    for line in get(admin_port, "/admin/metrics/prometheus")[1].decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name.endswith("rt:server:requests"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_proxy(
    processes: Processes,
    workdir: Path,
    name: str,
    world_ip: str,
    world_port: int,
    proxy_port: int,
    drain_period_ms: int,
    grace_ms: int,
    reuse_port: bool = True,
) -> tuple[Any, int]:
    admin_port = free_port()
    config = proxy_config(
        workdir,
        name,
        world_ip,
        world_port,
        proxy_port,
        admin_port,
        drain_period_ms,
        grace_ms,
        reuse_port,
    )
    proc = processes.l5d("run", str(config), name=f"proxy-{name}")
    # /admin/ping, not /ready: --single also measures versions without /ready
    wait_until(
        lambda: get(admin_port, "/admin/ping") == (200, b"pong"),
        30,
        what=f"the {name} proxy to be up",
    )
    return proc, admin_port


def run_switch(
    processes: Processes,
    workdir: Path,
    rps: float = 200.0,
    connections: int = 8,
    drain_period_ms: int = 5000,
    grace_ms: int = 5000,
    seconds: float = 10.0,
    warm_requests: int | None = None,
    single: bool = False,
) -> dict[str, Any]:
    """Run the switch; every process is started through ``processes`` (the caller stops them).

    ``single``: no new process and no ``reusePort`` (finding 7's set-up: what a client sees
    of one proxy stopping); the load goes on two seconds after the old process exits.
    """
    world_ports = {ip: free_port(ip) for ip in (OLD_IP, NEW_IP)}
    for ip, port in world_ports.items():
        processes.l5d("example", "world", "--ip", ip, "--port", str(port), name=f"world-{ip}")
    for ip, port in world_ports.items():
        wait_for_port(ip, port)
    proxy_port = free_port()
    old, old_admin = start_proxy(
        processes,
        workdir,
        "old",
        OLD_IP,
        world_ports[OLD_IP],
        proxy_port,
        drain_period_ms,
        grace_ms,
        not single,
    )

    out = workdir / "load.json"
    count = int(rps * (seconds + 60))  # a bound; SIGUSR1 ends the run
    loadgen = processes.start(
        sys.executable, str(HERE / "loadgen.py"), "--port", str(proxy_port), "--rps", str(rps),
        "--connections", str(connections), "--count", str(count), "--out", str(out), name="loadgen",
    )  # fmt: skip
    load_started = time.time()
    # every load connection is open to the old process before the new one listens
    wait_until(
        lambda: served(old_admin) >= 2 * connections, 30, what="the load to reach the old proxy"
    )
    new: Any = None
    new_admin = None
    if not single:
        new, new_admin = start_proxy(
            processes,
            workdir,
            "new",
            NEW_IP,
            world_ports[NEW_IP],
            proxy_port,
            drain_period_ms,
            grace_ms,
        )
    warm = rps if warm_requests is None else warm_requests
    wait_until(
        lambda: served(old_admin) >= warm, 30, what=f"the old proxy to serve {warm:g} requests"
    )
    served_before = served(old_admin)

    signalled = time.time()
    os.kill(old.pid, signal.SIGTERM)
    readiness: list[tuple[float, int]] = []  # (seconds after the signal, status); 0: refused
    while (
        old.poll() is None
        and time.time() - signalled < drain_period_ms / 1000 + grace_ms / 1000 + 20
    ):
        try:
            status = get(old_admin, "/ready")[0]
        except OSError:
            status = 0
        if not readiness or readiness[-1][1] != status:
            readiness.append((round(time.time() - signalled, 3), status))
        time.sleep(0.05)  # polling interval, not synchronisation
    old_exit = old.wait(10)
    exited_after = time.time() - signalled

    if new_admin is not None:
        # the load goes on until the new process alone has answered half a second of it
        new_at_exit = served(new_admin)
        wait_until(
            lambda: served(new_admin) >= new_at_exit + rps / 2,
            30,
            what="the new proxy to take the load",
        )
    else:
        wait_until(
            lambda: time.time() >= signalled + exited_after + 2.0,
            30,
            what="two seconds of load after the exit",
        )
    wait_until(
        lambda: time.time() >= load_started + seconds, seconds + 30, what="the rest of the load"
    )
    os.kill(loadgen.pid, signal.SIGUSR1)
    loadgen.wait(30)
    load = json.loads(out.read_text())
    records = load.pop("records")
    after = [r for r in records if r[0] >= signalled]
    old_after = [r for r in after if r[1] and OLD_IP in r[1]]
    new_after = [r for r in after if r[1] and NEW_IP in r[1]]
    return {
        "load": load,
        "drain_period_ms": drain_period_ms,
        "old_served_before_signal": served_before,
        "sent_after_signal": len(after),
        "failed_after_signal": sum(1 for r in after if not r[2]),
        # the first failures, other than refused connections: [seconds after the signal, what]
        "odd_failures": [
            [round(r[0] - signalled, 3), r[-1] if len(r) > 4 else r[1]]
            for r in records
            if not r[2] and "refused" not in str(r[-1])
        ][:20],
        "old_served_after_signal": len(old_after),
        "old_last_request_after_signal_s": round(max(r[0] for r in old_after) - signalled, 3)
        if old_after
        else None,
        "new_served_after_signal": len(new_after),
        "after_signal_p99_ms": _p99([r[3] for r in after if r[3] is not None]),
        "before_signal_p99_ms": _p99(
            [r[3] for r in records if r[0] < signalled and r[3] is not None]
        ),
        "old_exit_code": old_exit,
        "old_exited_after_s": round(exited_after, 3),
        "readiness_after_signal": readiness,
        "new_pid_alive": new is not None and new.poll() is None,
        "new_admin": new_admin,
        "proxy_port": proxy_port,
    }


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of the load, from its start"
    )
    parser.add_argument("--drain-period-ms", type=int, default=5000)
    parser.add_argument("--grace-ms", type=int, default=5000)
    parser.add_argument(
        "--single",
        action="store_true",
        help="one process, no reusePort, no new process (what finding 7 measured)",
    )
    parser.add_argument("--json", help="also write the whole result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="l5d-drain-") as tmp:
        processes = Processes(Path(tmp))
        before = load_average()
        try:
            result = run_switch(
                processes,
                Path(tmp),
                args.rps,
                args.connections,
                args.drain_period_ms,
                args.grace_ms,
                args.seconds,
                single=args.single,
            )
        except Exception:
            for proc in processes.procs:
                print(f"--- {proc.args}\n{processes.log(proc)[-3000:]}", file=sys.stderr)
            raise
        finally:
            processes.stop_all()
    result["load_average_before"] = before
    result["load_average_after"] = load_average()
    result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    load = result["load"]
    print(
        f"{load['sent']} requests at {args.rps:g} req/s over {args.connections} keep-alive connections, "
        f"drainPeriodMs {args.drain_period_ms}: {load['failed']} failed ({load['errors'] or 'no errors'}), "
        f"{load['stale_retries']} resent after the keep-alive race; "
        f"{result['failed_after_signal']} of the requests sent after SIGTERM failed; "
        f"old process: served {result['old_served_after_signal']} of the "
        f"{result['sent_after_signal']} requests sent after SIGTERM "
        f"(last {result['old_last_request_after_signal_s']} s after), /ready {result['readiness_after_signal']}, "
        f"exited {result['old_exit_code']} after {result['old_exited_after_s']} s; "
        f"p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms "
        f"(before the signal {result['before_signal_p99_ms']}, after {result['after_signal_p99_ms']}), "
        f"max {load['max_ms']} ms; "
        f"load average {result['load_average_before']} -> {result['load_average_after']}"
    )
    if args.single:
        return (
            0 if result["old_exit_code"] == 0 else 1
        )  # requests after the exit fail: nobody listens
    return 0 if load["failed"] == 0 and result["old_exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
