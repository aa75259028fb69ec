"""The traffic-shifting walkthrough's world (issue 14 item 6), shared by
tests/walkthrough/test_traffic_shifting.py and bench/namerd/propagation.py.

Real processes on free loopback ports, each stopped by PID: world-v1 and world-v2
(``l5d-twisted example world``, told apart by POD_IP), a real ``l5d-twisted namerd`` with
io.l5d.inMemory storage and an io.l5d.fs namer naming them, and a real mesh
(``l5d-twisted run``) whose one router has ``dstPrefix: /host`` and binds through namerd
(``interpreter: io.l5d.namerd.http``), so a request with ``Host: world`` is ``/host/world``.
Dtabs are written with the ``l5d-twisted dtab`` CLI, as an operator would.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l5d_testing import Processes, free_port, wait_for_port, wait_until

REPO = Path(__file__).resolve().parents[2]

# the base rules every dtab of the walk starts with: /srv/<name> is the io.l5d.fs file <name>
BASE = "/srv => /#/io.l5d.fs;\n"

NAMERD = """\
storage:
{storage}namers:
- kind: io.l5d.fs
  rootDir: {disco}
interfaces:
- kind: io.l5d.httpController
  ip: 127.0.0.1
  port: {port}
admin:
  ip: 127.0.0.1
  port: {admin}
"""

MESH = """\
admin: {{ip: 127.0.0.1, port: {admin}}}
routers:
- protocol: http
  label: outgoing
  dstPrefix: /host
  interpreter:
    kind: io.l5d.namerd.http
    experimental: true
    dst: /$/inet/127.0.0.1/{namerd}
    namespace: default
    retry: {{baseSeconds: 0.2, maxSeconds: 1}}
  servers:
  - {{ip: 127.0.0.1, port: {port}}}
"""


def version_of(body: str) -> str:
    """'v1' or 'v2' from a world's answer ('world (v2)!'), else the body itself."""
    for v in ("v1", "v2"):
        if f"({v})" in body:
            return v
    return body


@dataclass
class Outcome:
    at: float  # time.monotonic() when the answer (or error) came back
    status: int  # 0: no HTTP answer at all (connection error)
    version: str
    sent: float = 0.0  # time.monotonic() just before the request was sent


@dataclass
class LoadGenerator:
    """``threads`` clients sending requests through the mesh back to back on keep-alive
    connections until stopped; every outcome is recorded."""

    port: int
    threads: int = 3
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            current = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            conn = current
            sent = time.monotonic()
            try:
                current.request("GET", "/", headers={"Host": "world"})
                rsp = current.getresponse()
                body = rsp.read().decode(errors="replace")
                outcome = Outcome(time.monotonic(), rsp.status, version_of(body), sent)
                if rsp.getheader("connection", "").lower() == "close":
                    current.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                outcome = Outcome(time.monotonic(), 0, repr(e), sent)
                current.close()
                conn = None
            with self._lock:
                self.outcomes.append(outcome)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Outcome]:
        return [
            o
            for o in self.snapshot()
            if since <= o.at <= until and (o.status != 200 or o.version not in ("v1", "v2"))
        ]


class ShiftingWorld:
    def __init__(self, tmp: Path, storage: str = "inMemory", api_port: int = 0) -> None:
        """``storage``: ``inMemory``, or ``k8s`` with DTab objects in the Kubernetes API
        emulated on ``api_port`` (tests/namerd/k8s_dtab_fake_api.py)."""
        self.tmp = tmp
        self.storage = storage
        self.api_port = api_port
        self.processes = Processes(tmp)
        self.ports = {n: free_port() for n in ("v1", "v2", "namerd", "nadmin", "mesh", "admin")}
        self.disco = tmp / "disco"
        self.namerd: Any = None
        self.mesh: Any = None
        self._conn: http.client.HTTPConnection | None = None
        self.update_started = 0.0  # when get_edit_update started its `dtab update` process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['namerd']}"

    def start(self) -> None:
        for v in ("v1", "v2"):
            self.processes.l5d(
                "example", "world", "--port", str(self.ports[v]), env={"POD_IP": v}, name=f"w-{v}"
            )
        self.disco.mkdir()
        for v in ("v1", "v2"):
            (self.disco / f"world-{v}").write_text(f"127.0.0.1 {self.ports[v]}\n")
        self.start_namerd()
        config = self.tmp / "mesh.yaml"
        config.write_text(
            MESH.format(
                admin=self.ports["admin"], namerd=self.ports["namerd"], port=self.ports["mesh"]
            )
        )
        self.mesh = self.processes.l5d("run", str(config), "--log-format", "text", name="mesh")
        for v in ("v1", "v2", "mesh", "admin"):
            wait_for_port("127.0.0.1", self.ports[v], timeout=30)

    def start_namerd(self, seed: str | None = None, ready: bool = True) -> None:
        """namerd on its port; ``seed``: the dtab of ``default`` in its config (inMemory
        storage keeps dtabs nowhere else; the k8s storage creates it only when absent);
        ``ready``: also wait for its /ready (the k8s storage's first list)."""
        if self.storage == "k8s":
            storage = (
                f"  kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {self.api_port}\n"
                "  namespace: mesh\n  watchTimeoutSecs: 30\n"
            )
        else:
            storage = "  kind: io.l5d.inMemory\n"
        if seed is not None:
            lines = "".join(f"      {line}\n" for line in seed.strip().splitlines())
            storage += f"  namespaces:\n    default: |\n{lines}"
        config = self.tmp / "namerd.yaml"
        config.write_text(
            NAMERD.format(
                storage=storage,
                disco=self.disco,
                port=self.ports["namerd"],
                admin=self.ports["nadmin"],
            )
        )
        self.namerd = self.processes.l5d(
            "namerd", str(config), "--log-format", "text", name="namerd"
        )
        try:
            wait_for_port("127.0.0.1", self.ports["namerd"], timeout=30)
            if ready:
                wait_until(self.namerd_ready, timeout=30, what="namerd's /ready")
        except AssertionError:
            raise AssertionError(f"namerd did not start:\n{self.namerd_log()}") from None

    def namerd_ready(self) -> bool:
        """namerd's admin /ready: 200 once its storage has read the dtabs (503 before)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["nadmin"], timeout=5)
        try:
            conn.request("GET", "/ready")
            rsp = conn.getresponse()
            rsp.read()
            return rsp.status == 200
        finally:
            conn.close()

    def kill_namerd(self) -> None:
        """SIGKILL by PID: no goodbye to the mesh's streams."""
        os.kill(self.namerd.pid, signal.SIGKILL)
        self.namerd.wait(10)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.processes.stop_all()

    # --- the operator's CLI --------------------------------------------------------------

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cli_command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.cli_env(),
            timeout=60,
            cwd=REPO,
        )

    def cli_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "l5d_twisted", "dtab", *args, "--base-url", self.base_url]

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "NAMERCTL_BASE_URL"}
        env["PYTHONPATH"] = str(REPO)
        return env

    def get_edit_update(self, rule: str) -> subprocess.CompletedProcess[str]:
        """The operator's loop: ``dtab get default > default.dtab``, replace the
        ``/host/world`` rule in the file, ``dtab update default default.dtab`` (which writes
        only if the dtab is still at the version the file names)."""
        got = self.cli("get", "default")
        assert got.returncode == 0, got.stderr
        assert got.stdout.startswith("# version "), got.stdout
        lines = [line for line in got.stdout.splitlines() if not line.startswith("/host/world ")]
        saved = self.tmp / "default.dtab"
        saved.write_text("\n".join([*lines, rule]) + "\n")
        self.update_started = time.monotonic()
        updated = self.cli("update", "default", str(saved))
        assert updated.returncode == 0, (updated.returncode, updated.stderr)
        return updated

    # --- traffic -------------------------------------------------------------------------

    def world(self) -> tuple[int, str]:
        """One request through the mesh on a kept-alive connection."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.ports["mesh"], timeout=15)
            try:
                self._conn.request("GET", "/", headers={"Host": "world"})
                rsp = self._conn.getresponse()
                return rsp.status, rsp.read().decode(errors="replace")
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def until_answer(self, wanted: str, timeout: float = 10.0) -> float:
        """Seconds until the mesh answers from ``wanted`` (every answer must be a 200 from
        a world); fails after ``timeout`` (a hang, not a slow propagation)."""
        started = time.monotonic()
        deadline = started + timeout
        last = ""
        while time.monotonic() < deadline:
            status, body = self.world()
            assert status == 200, (status, body)
            if version_of(body) == wanted:
                return time.monotonic() - started
            last = body
        raise AssertionError(f"still {last!r} after {timeout}s; mesh log:\n{self.mesh_log()}")

    def metrics(self) -> dict[str, Any]:
        """The mesh's interpreter metrics (rt/outgoing/interpreter/io.l5d.namerd.http/*)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["admin"], timeout=15)
        try:
            conn.request("GET", "/admin/metrics.json")
            rsp = conn.getresponse()
            assert rsp.status == 200
            decoded: dict[str, Any] = json.loads(rsp.read())
        finally:
            conn.close()
        scope = "rt/outgoing/interpreter/io.l5d.namerd.http/"
        return {k[len(scope) :]: v for k, v in decoded.items() if k.startswith(scope)}

    def namerd_metrics(self) -> dict[str, Any]:
        """namerd's /admin/metrics.json (namerd/dtab/conflicts counts its 412s)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["nadmin"], timeout=15)
        try:
            conn.request("GET", "/admin/metrics.json")
            rsp = conn.getresponse()
            assert rsp.status == 200
            decoded: dict[str, Any] = json.loads(rsp.read())
        finally:
            conn.close()
        return decoded

    def mesh_log(self) -> str:
        log: str = self.processes.log(self.mesh)
        return log[-4000:]

    def namerd_log(self) -> str:
        log: str = self.processes.log(self.namerd)
        return log[-4000:]
