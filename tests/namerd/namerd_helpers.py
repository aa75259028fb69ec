"""A real ``l5d-twisted namerd`` process on free loopback ports, and a small HTTP client
(the ``namerd`` fixture is in conftest.py)."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l5d_testing import Processes, free_port, wait_for_port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class NamerdProcess:
    port: int
    admin_port: int
    disco: Path
    proc: Any
    processes: Processes
    config: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=headers or {})
            rsp = conn.getresponse()
            return Answer(rsp.status, {k.lower(): v for k, v in rsp.getheaders()}, rsp.read())
        finally:
            conn.close()

    def log(self) -> str:
        return self.processes.log(self.proc)


CONFIG = """\
storage:
  kind: io.l5d.inMemory
  namespaces:
    default: |
      /svc => /#/io.l5d.fs;
namers:
- kind: io.l5d.fs
  rootDir: {disco}
- kind: io.l5d.fs
  prefix: /other
  rootDir: {disco}
interfaces:
- kind: io.l5d.httpController
  port: {port}
admin:
  port: {admin_port}
"""


def start_namerd(processes: Processes, tmp_path: Path) -> NamerdProcess:
    disco = tmp_path / "disco"
    disco.mkdir(exist_ok=True)
    (disco / "hello").write_text("127.0.0.1 8081\n")
    port, admin_port = free_port(), free_port()
    config = tmp_path / "namerd.yaml"
    config.write_text(CONFIG.format(disco=disco, port=port, admin_port=admin_port))
    proc = processes.l5d("namerd", str(config), "--log-format", "text", name="namerd")
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
    except Exception:
        raise AssertionError(f"namerd did not start:\n{processes.log(proc)}") from None
    return NamerdProcess(port, admin_port, disco, proc, processes, config)
