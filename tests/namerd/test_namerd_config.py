"""namerd's config: its shape, defaults, and every problem reported (refused kinds by name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.namerd.config import load_namerd_config
from l5d_twisted.naming.dtab import Dtab

REPO = Path(__file__).resolve().parents[2]


def test_namerds_own_example_shape(tmp_path: Path) -> None:
    (tmp_path / "disco").mkdir()
    config = load_namerd_config(
        f"""
storage:
  kind: io.l5d.inMemory
  namespaces:
    galaxyquest: |
      /host       => /#/io.l5d.fs;
      /svc => /host;
namers:
- kind: io.l5d.fs
  rootDir: {tmp_path / "disco"}
interfaces:
- kind: io.l5d.httpController
  port: 4321
"""
    )
    assert config.storage.kind == "io.l5d.inMemory"
    assert config.storage.config.namespaces == {
        "galaxyquest": Dtab.read("/host => /#/io.l5d.fs; /svc => /host")
    }
    assert [n.prefix.show() for n in config.namers] == ["/io.l5d.fs"]
    (iface,) = config.interfaces
    assert (iface.kind, iface.config.ip, iface.config.port) == (
        "io.l5d.httpController",
        "127.0.0.1",
        4321,
    )
    assert (config.admin.ip, config.admin.port) == ("127.0.0.1", 9991)  # namerd's admin


def test_defaults_are_namerds() -> None:
    config = load_namerd_config(
        "storage: {kind: io.l5d.inMemory}\ninterfaces: [{kind: io.l5d.httpController}]\n"
    )
    assert config.interfaces[0].config.port == 4180
    assert config.storage.config.namespaces == {}


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as e:
        load_namerd_config(text)
    return [str(err) for err in e.value.errors]


def test_every_problem_is_reported_with_its_line() -> None:
    found = problems(
        """storage:
  kind: io.l5d.zk
interfaces:
- kind: io.l5d.thriftNameInterpreter
- kind: io.l5d.mesh
- {kind: io.l5d.httpController, port: 70000, tls: {}}
telemetry: []
routers: []
"""
    )
    assert found == [
        "<config>:2: storage.kind: storage kind io.l5d.zk is linkerd 1 configuration that "
        "l5d-twisted does not support yet (namerd's ZooKeeper dtab storage)",
        "<config>:4: interfaces[0].kind: interface kind io.l5d.thriftNameInterpreter is linkerd 1 "
        "configuration that l5d-twisted does not support yet (namerd's thrift name interpreter "
        "interface)",
        "<config>:5: interfaces[1].kind: interface kind io.l5d.mesh is linkerd 1 configuration "
        "that l5d-twisted does not support yet (namerd's gRPC mesh interface)",
        "<config>:6: interfaces[2].port: expected an integer 0-65535, got 70000",
        "<config>:6: interfaces[2].tls: tls is linkerd 1 configuration that l5d-twisted does not "
        "support yet (TLS on namerd's interfaces)",
        "<config>:7: telemetry: telemetry is linkerd 1 configuration that l5d-twisted does not "
        "support yet (namerd telemeters)",
        "<config>:8: routers: unknown key 'routers'; namerd's keys: storage, namers, interfaces, admin",
    ]


@pytest.mark.parametrize("kind", ["io.l5d.zk", "io.l5d.etcd", "io.l5d.consul"])
def test_other_storage_kinds_are_refused_by_name(kind: str) -> None:
    (found,) = problems(
        f"storage: {{kind: {kind}}}\ninterfaces: [{{kind: io.l5d.httpController}}]\n"
    )
    assert f"storage kind {kind} is linkerd 1 configuration" in found


def test_missing_keys_bad_dtabs_and_namespaces() -> None:
    found = problems("admin: {}\n")
    assert any("missing required key 'storage'" in f for f in found)
    assert any("missing required key 'interfaces'" in f for f in found)
    found = problems(
        """storage:
  kind: io.l5d.inMemory
  namespaces:
    good: /a => /b
    broken: /a =>
    "bad/name": /a => /b
interfaces: [{kind: io.l5d.httpController}]
"""
    )
    assert any(f.startswith("<config>:5: storage.namespaces.broken: invalid dtab") for f in found)
    assert any("storage.namespaces.bad/name: a namespace has only letters" in f for f in found)


def test_overlapping_namer_prefixes_are_refused(tmp_path: Path) -> None:
    found = problems(
        f"""storage: {{kind: io.l5d.inMemory}}
namers:
- {{kind: io.l5d.fs, rootDir: {tmp_path}, prefix: /disco}}
- {{kind: io.l5d.fs, rootDir: {tmp_path}, prefix: /disco/more}}
interfaces: [{{kind: io.l5d.httpController}}]
"""
    )
    assert any("overlapping prefixes: /disco & /disco/more" in f for f in found)


def test_check_exits_2_listing_problems_and_0_when_fine(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage: {kind: io.l5d.consul}\ninterfaces: []\n")
    run = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "namerd", "--check", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 2
    assert "storage kind io.l5d.consul is linkerd 1 configuration" in run.stderr
    assert "interfaces: expected a list of interfaces" in run.stderr
    assert "2 problems found" in run.stderr
    good = tmp_path / "good.yaml"
    good.write_text(
        "storage: {kind: io.l5d.inMemory}\ninterfaces: [{kind: io.l5d.httpController}]\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "namerd", "--check", str(good)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert (run.returncode, run.stdout) == (0, "ok\n")
