"""TLS between meshes: outgoing originates TLS to incoming, which terminates it.

The outgoing router's client validates incoming's certificate against a test CA by the
configured commonName; a wrong name is a 502, never plaintext.
"""

from __future__ import annotations

import http.client
from pathlib import Path

from l5d_pki import make_pki
from l5d_testing import Processes, free_port, wait_for_port


def two_routers(
    tmp: Path,
    pki: dict[str, str],
    world_port: int,
    out_port: int,
    in_port: int,
    admin_port: int,
    common_name: str,
) -> Path:
    disco = tmp / "disco"
    disco.mkdir(exist_ok=True)
    (disco / "world").write_text(f"127.0.0.1 {world_port}\n")
    (disco / "incoming").write_text(f"127.0.0.1 {in_port}\n")
    config = tmp / f"tls-{common_name}.yaml"
    config.write_text(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs/incoming;
  servers: [{{ip: 127.0.0.1, port: {out_port}}}]
  client:
    tls:
      commonName: {common_name}
      trustCertsBundle: {pki["ca"]}
- protocol: http
  label: incoming
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: {in_port}
    tls:
      certPath: {pki["server_crt"]}
      keyPath: {pki["server_key"]}
"""
    )
    return config


def get(proxy_port: int) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    conn.request("GET", "http://world/")
    response = conn.getresponse()
    return response.status, response.read(), response.getheader("l5d-err") or ""


def test_outgoing_to_incoming_over_tls(processes: Processes, tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server_name="incoming.mesh")
    world_port = free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    good = [free_port() for _ in range(3)]
    bad = [free_port() for _ in range(3)]
    processes.l5d(
        "run",
        str(two_routers(tmp_path, pki, world_port, *good, common_name="incoming.mesh")),
        name="mesh-good",
    )
    processes.l5d(
        "run",
        str(two_routers(tmp_path, pki, world_port, *bad, common_name="someone-else.mesh")),
        name="mesh-bad",
    )
    for port in (world_port, *good, *bad):
        wait_for_port("127.0.0.1", port)

    status, body, _ = get(good[0])
    assert (status, body) == (200, f"world (127.0.0.1:{world_port})!".encode())

    # plaintext to the TLS server is refused, not answered
    conn = http.client.HTTPConnection("127.0.0.1", good[1], timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "world"})
        answered = conn.getresponse().status
    except (ConnectionError, http.client.HTTPException, OSError):
        answered = None
    assert answered in (None, 400)

    status, _, err = get(bad[0])
    assert status == 502 and err, "a certificate for another name must not be accepted"
