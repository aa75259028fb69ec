"""``l5d-twisted demo`` end to end: real mesh, real apps, all on free loopback ports."""

from __future__ import annotations

import http.client
import os
import re
import signal
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
    while len(ports) < 7:
        ports.add(free_port())
    o, i, a, h, w1, w2, c = sorted(ports)
    return {
        "outgoing": o,
        "incoming": i,
        "admin": a,
        "hello": h,
        "world1": w1,
        "world2": w2,
        "control": c,
    }


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
        "--control-port",
        str(p["control"]),
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
    # the banner's first request was answered by this demo's hello, through the mesh
    assert (
        f"first request through the mesh: 200 Hello (127.0.0.1:{p['hello']}) world (127.0.0.1:"
        in log
    ), log

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


def test_demo_refuses_busy_ports_naming_their_flags_and_starts_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    """Another process on 4140 used to answer the demo's first request (issue 16 point 3)."""
    p = demo_ports()
    with socket.socket() as router, socket.socket() as world:
        router.bind(("127.0.0.1", p["outgoing"]))
        router.listen()
        world.bind(("127.0.0.1", p["world2"]))
        world.listen()
        demo = processes.l5d(*demo_args(p, tmp_path / "demo"), name="demo")
        code = demo.wait(60)
    log = processes.log(demo)
    assert code == 2, log
    assert (
        f"port {p['outgoing']} on 127.0.0.1 (the outgoing router) is in use: something already "
        "answers there; move it with --outgoing-port PORT"
    ) in log
    assert f"port {p['world2']} on 127.0.0.1 (world-2) is in use" in log
    assert "move it with --world-ports P1,P2,..." in log
    assert "nothing was started" in log and "running" not in log
    assert not (tmp_path / "demo").exists()  # not even its files
    assert not [name for name, port in p.items() if port_open("127.0.0.1", port)]


def banner_pids(processes: Processes, demo: subprocess.Popen[bytes]) -> dict[str, int]:
    wait_until(
        lambda: "Ctrl-C stops everything" in processes.log(demo) or demo.poll() is not None,
        timeout=60,
        what="the demo banner",
    )
    log = processes.log(demo)
    assert demo.poll() is None, log
    line = log.split("processes:", 1)[1].splitlines()[0]
    return {name: int(pid) for name, pid in re.findall(r"(l5d|world-\d|hello) (\d+)", line)}


def control(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "demo", *args, "--control-port", str(port)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def worlds_answering(p: dict[str, int], n: int) -> set[str]:
    """``n`` requests to hello through the mesh, all 200: the world instances that answered."""
    seen = set()
    for _ in range(n):
        status, body = via_proxy(p["outgoing"], "hello")
        assert status == 200, body
        seen.add(re.search(rb"world \((.*?)\)!", body).group(1).decode())  # type: ignore[union-attr]
    return seen


def test_a_dead_world_instance_leaves_the_demo_up_and_stop_start_are_one_command(
    processes: Processes, tmp_path: Path
) -> None:
    """Issue 16 point 4: killing one world used to tear the whole demo down."""
    p = demo_ports()
    ctl = p["control"]
    demo = processes.l5d(*demo_args(p, tmp_path / "demo"), "--traffic", "20", name="demo")
    pids = banner_pids(processes, demo)
    world1, world2 = f"127.0.0.1:{p['world1']}", f"127.0.0.1:{p['world2']}"
    assert f"demo stop world-1 --control-port {ctl}" in processes.log(demo)
    wait_until(lambda: worlds_answering(p, 4) == {world1, world2}, 30, what="both worlds")

    # killed from outside: reported, and the mesh routes around it
    os.kill(pids["world-1"], signal.SIGKILL)
    wait_until(
        lambda: (
            f"world-1 (pid {pids['world-1']}) was killed by SIGKILL; the demo keeps running"
            in processes.log(demo)
        ),
        15,
        what="the death report",
    )
    assert f"demo start world-1 --control-port {ctl}` starts it again" in processes.log(demo)
    wait_until(lambda: worlds_answering(p, 20) == {world2}, 30, what="only world-2 answering")
    assert demo.poll() is None

    # one command each, to the running demo
    started = control(ctl, "start", "world-1")
    assert started.returncode == 0, started.stderr
    assert re.fullmatch(rf"world-1 started \(pid \d+\), listening on {world1}\n", started.stdout), (
        started.stdout
    )
    wait_until(lambda: worlds_answering(p, 4) == {world1, world2}, 30, what="world-1 back")

    stopped = control(ctl, "stop", "world-2")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == (
        f"world-2 (pid {pids['world-2']}) stopped; the mesh routes around it\n"
    )
    assert not pid_alive(pids["world-2"])
    wait_until(lambda: worlds_answering(p, 20) == {world1}, 30, what="only world-1 answering")
    status = control(ctl, "status")
    assert status.returncode == 0 and "world-2 pid" in status.stdout, status
    assert re.search(r"^world-2 pid \d+ stopped \(demo stop\)$", status.stdout, re.M), status
    assert "was killed" not in processes.log(demo).split("world-1 started", 1)[1]

    # the mesh itself cannot be stopped this way; an unknown name lists the known ones
    refused = control(ctl, "stop", "l5d")
    assert refused.returncode == 1 and "mesh itself" in refused.stderr, refused
    unknown = control(ctl, "stop", "world-9")
    assert unknown.returncode == 1 and "world-1, world-2, hello" in unknown.stderr, unknown
    assert demo.poll() is None

    assert processes.stop(demo, timeout=30) == 0, processes.log(demo)
    assert not [name for name, port in p.items() if port_open("127.0.0.1", port)]


def test_the_mesh_dying_ends_the_demo_with_a_clear_message(
    processes: Processes, tmp_path: Path
) -> None:
    p = demo_ports()
    demo = processes.l5d(*demo_args(p, tmp_path / "demo"), name="demo")
    pids = banner_pids(processes, demo)
    os.kill(pids["l5d"], signal.SIGKILL)
    assert demo.wait(60) == 1
    log = processes.log(demo)
    assert f"l5d (pid {pids['l5d']}) was killed by SIGKILL: the mesh itself is gone" in log
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert not [name for name, port in p.items() if port_open("127.0.0.1", port)]


def test_demo_control_without_a_demo_says_so() -> None:
    result = control(free_port(), "stop", "world-1")
    assert result.returncode == 1
    assert "no demo answers on 127.0.0.1:" in result.stderr
    assert "is `l5d-twisted demo` running" in result.stderr


def test_demo_rejects_clashing_ports(processes: Processes) -> None:
    demo = processes.l5d("demo", "--outgoing-port", "4140", "--incoming-port", "4140", name="demo")
    assert demo.wait(30) == 2
    assert "used twice: 4140" in processes.log(demo)
