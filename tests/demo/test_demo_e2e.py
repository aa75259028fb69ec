"""``l5d-twisted demo`` end to end: real mesh, real apps, all on free loopback ports."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from l5d_testing import Processes, free_port, port_open, wait_until

pytestmark = pytest.mark.slow


def demo_ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 6:
        ports.add(free_port())
    o, i, a, h, w1, w2 = sorted(ports)
    return {"outgoing": o, "incoming": i, "admin": a, "hello": h, "world1": w1, "world2": w2}


def demo_args(p: dict[str, int], directory: Path) -> list[str]:
    return [
        "demo",
        "--outgoing-port",
        str(p["outgoing"]),
        "--incoming-port",
        str(p["incoming"]),
        "--admin-port",
        str(p["admin"]),
        "--hello-port",
        str(p["hello"]),
        "--world-ports",
        f"{p['world1']},{p['world2']}",
        "--dir",
        str(directory),
    ]


def via_proxy(proxy_port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    try:
        conn.request("GET", f"http://{host}{path}", headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_demo_routes_hello_to_both_worlds_and_stops_cleanly(
    processes: Processes, tmp_path: Path
) -> None:
    p = demo_ports()
    demo = processes.l5d(*demo_args(p, tmp_path / "demo"), "--traffic", "50", name="demo")
    banner = wait_until(
        lambda: "Ctrl-C stops everything" in processes.log(demo) or demo.poll() is not None,
        timeout=60,
        what="the demo banner",
    )
    assert banner and demo.poll() is None, processes.log(demo)
    log = processes.log(demo)
    pids = {
        name: int(pid)
        for name, pid in re.findall(
            r"(l5d|world-\d|hello) (\d+)", log.split("processes:", 1)[1].splitlines()[0]
        )
    }
    assert set(pids) == {"l5d", "world-1", "world-2", "hello"}

    # the generated config passes `l5d-twisted check`
    check = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", str(tmp_path / "demo" / "linkerd.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # curl through the outgoing router, as the banner says
    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "", "-x", f"127.0.0.1:{p['outgoing']}", "http://hello"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert re.fullmatch(r"Hello \(127\.0\.0\.1:\d+\) world \(127\.0\.0\.1:\d+\)!", out.stdout), out

    seen: set[str] = set()
    for _ in range(40):
        status, body = via_proxy(p["outgoing"], "hello")
        assert status == 200, body
        seen.add(re.search(rb"world \((.*?)\)!", body).group(1).decode())  # type: ignore[union-attr]
        if len(seen) == 2:
            break
    assert seen == {f"127.0.0.1:{p['world1']}", f"127.0.0.1:{p['world2']}"}

    # --traffic: background requests to hello show in the outgoing router's metrics
    def hello_requests() -> float:
        conn = http.client.HTTPConnection("127.0.0.1", p["admin"], timeout=10)
        try:
            conn.request("GET", "/admin/metrics/prometheus")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        m = re.search(
            r'^rt:service:requests\{rt="outgoing",service="svc/hello"\} (\S+)$', text, re.M
        )
        return float(m.group(1)) if m else 0.0

    wait_until(
        lambda: hello_requests() > len(seen) + 1 + 60,
        timeout=30,
        what="background traffic in the metrics",
    )

    # SIGTERM: exits 0 within a deadline, every child gone, every port free
    started = time.monotonic()
    assert processes.stop(demo, timeout=30) == 0, processes.log(demo)
    assert time.monotonic() - started < 30
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert not [name for name, port in p.items() if port_open("127.0.0.1", port)]


def test_demo_exits_nonzero_with_the_log_tail_when_a_child_dies(
    processes: Processes, tmp_path: Path
) -> None:
    p = demo_ports()
    with socket.socket() as taken:  # world-2's port is already in use: it cannot start
        taken.bind(("127.0.0.1", p["world2"]))
        taken.listen()
        demo = processes.l5d(*demo_args(p, tmp_path / "demo"), name="demo")
        code = demo.wait(60)
    log = processes.log(demo)
    assert code == 1, log
    assert "world-2" in log and "exited with code 1" in log
    assert f"cannot listen on 127.0.0.1:{p['world2']}" in log  # the child's own log tail
    assert not [
        name for name, port in p.items() if name != "world2" and port_open("127.0.0.1", port)
    ]


def test_demo_rejects_clashing_ports(processes: Processes) -> None:
    demo = processes.l5d("demo", "--outgoing-port", "4140", "--incoming-port", "4140", name="demo")
    assert demo.wait(30) == 2
    assert "used twice: 4140" in processes.log(demo)
