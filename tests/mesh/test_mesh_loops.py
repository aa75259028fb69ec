"""Issue 10, finding 2, against a real ``l5d-twisted run``: request dtabs and routing loops.

Before: ``l5d-dtab: /svc/hello => /$/inet/127.0.0.1/9990`` returned the admin server's
``/config.json``, and a dtab pointing the proxy at itself ran ~450 hops (one connection and
one pending request each: 10 such requests took the proxy from 9 to ~900 open files and
+53 MB) before a 431.  Now the request dtab is refused with 403 and the loop is cut at its
second visit to a router.

One mesh serves every test of the module: router ``outgoing`` has three servers (default,
``requestDtab.allowAddresses: true``, ``requestDtab.enabled: false``); router ``incoming``
routes everything back to ``outgoing`` (a loop through two routers).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port


class Mesh:
    def __init__(self, proc: Any, ports: dict[str, int]) -> None:
        self.proc = proc
        self.ports = ports

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("loops")
    processes = Processes(tmp)
    try:
        ports = {
            name: free_port()
            for name in ("world", "world_v2", "default", "allow", "off", "incoming", "admin")
        }
        processes.l5d(
            "example", "world", "--ip", "127.0.0.1", "--port", str(ports["world"]), name="world"
        )
        processes.l5d(
            "example",
            "world",
            "--ip",
            "127.0.0.2",
            "--port",
            str(ports["world_v2"]),
            name="world-v2",
        )
        disco = tmp / "disco"
        disco.mkdir()
        (disco / "world").write_text(f"127.0.0.1 {ports['world']}\n")
        (disco / "world-v2").write_text(f"127.0.0.2 {ports['world_v2']}\n")
        config = tmp / "linkerd.yaml"
        config.write_text(
            f"""
admin: {{ip: 127.0.0.1, port: {ports["admin"]}}}
namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]
routers:
- protocol: http
  label: outgoing
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/loop => /$/inet/127.0.0.1/{ports["default"]};
    /svc/pingpong => /$/inet/127.0.0.1/{ports["incoming"]};
  servers:
  - {{ip: 127.0.0.1, port: {ports["default"]}}}
  - {{ip: 127.0.0.1, port: {ports["allow"]}, requestDtab: {{allowAddresses: true}}}}
  - {{ip: 127.0.0.1, port: {ports["off"]}, requestDtab: {{enabled: false}}}}
- protocol: http
  label: incoming
  dtab: /svc => /$/inet/127.0.0.1/{ports["default"]};
  servers:
  - {{ip: 127.0.0.1, port: {ports["incoming"]}}}
"""
        )
        proc = processes.l5d("run", str(config), name="mesh")
        for port in ports.values():
            wait_for_port("127.0.0.1" if port != ports["world_v2"] else "127.0.0.2", port)
        yield Mesh(proc, ports)
    finally:
        processes.stop_all()


def get(port: int, host: str, dtab: str | None = None) -> tuple[int, dict[str, list[str]], bytes]:
    """One request on its own connection; the raw response (a looping one carried hundreds
    of Via fields, more than http.client accepts)."""
    extra = f"l5d-dtab: {dtab}\r\n" if dtab else ""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), fields, body


def world_answer(mesh: Mesh, name: str) -> bytes:
    """What the world instance ``name`` answers (it reports the ip:port it listens on)."""
    ip = "127.0.0.2" if name == "world_v2" else "127.0.0.1"
    return f"world ({ip}:{mesh.ports[name]})!".encode()


def test_a_staging_request_dtab_is_honoured(mesh: Mesh) -> None:
    assert get(mesh.ports["default"], "world")[2] == world_answer(mesh, "world")
    status, _, body = get(mesh.ports["default"], "world", "/svc/world => /#/io.l5d.fs/world-v2")
    assert (status, body) == (200, world_answer(mesh, "world_v2"))


def test_a_server_with_request_dtabs_off_ignores_them(mesh: Mesh) -> None:
    status, _, body = get(mesh.ports["off"], "world", "/svc/world => /#/io.l5d.fs/world-v2")
    assert (status, body) == (200, world_answer(mesh, "world"))
    status, _, body = get(
        mesh.ports["off"], "world", f"/svc/world => /$/inet/127.0.0.1/{mesh.ports['admin']}"
    )
    assert (status, body) == (200, world_answer(mesh, "world"))


def test_a_request_dtab_cannot_reach_the_admin_server(mesh: Mesh) -> None:
    to_admin = f"/svc/world => /$/inet/127.0.0.1/{mesh.ports['admin']}"
    for server in ("default", "allow"):
        status, fields, body = get(mesh.ports[server], "world", to_admin)
        assert status == 403, (server, status, body[:200])
        assert fields["l5d-err"] and b"doctype" not in body.lower()
    # the allowing server does route a request dtab to an ordinary address
    status, _, body = get(
        mesh.ports["allow"], "world", f"/svc/world => /$/inet/127.0.0.2/{mesh.ports['world_v2']}"
    )
    assert (status, body) == (200, world_answer(mesh, "world_v2"))
    status, fields, _ = get(
        mesh.ports["default"], "world", f"/svc/world => /$/inet/127.0.0.2/{mesh.ports['world_v2']}"
    )
    assert status == 403 and "addresses" in fields["l5d-err"][0]


def test_a_routing_loop_through_the_proxy_itself_costs_nothing_per_hop(mesh: Mesh) -> None:
    fds, rss = mesh.fds(), mesh.rss_kb()
    for host in ["loop"] * 10 + ["pingpong"] * 10:
        status, fields, _ = get(mesh.ports["default"], host)
        assert status == 400, status
        assert "loop" in fields["l5d-err"][0].lower()
        # loop: outgoing twice; pingpong: outgoing, incoming, outgoing
        assert len(fields.get("via", [])) <= 3, len(fields.get("via", []))
    # before: ~900 open files and +53 MB after 10 loops (each held ~450 connections)
    assert mesh.fds() <= fds + 12, (fds, mesh.fds())
    assert mesh.rss_kb() - rss < 15_000, (rss, mesh.rss_kb())


def test_the_proxy_still_answers_after_the_attacks(mesh: Mesh) -> None:
    status, _, body = get(mesh.ports["default"], "world")
    assert (status, body) == (200, world_answer(mesh, "world"))
    assert mesh.proc.poll() is None
