"""The demo's generated files and option checks (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from l5d_twisted.cli.demo.runner import (
    DemoOptions,
    namer_files,
    parse_ports,
    plan_children,
    render_config,
    write_demo_files,
)

REPO = Path(__file__).resolve().parents[2]


def test_config_has_linkerds_two_router_shape(tmp_path: Path) -> None:
    options = DemoOptions(outgoing_port=5140, incoming_port=5141, admin_port=5990)
    config_path = write_demo_files(options, tmp_path)
    config = yaml.safe_load(config_path.read_text())
    assert config["admin"] == {"ip": "127.0.0.1", "port": 5990, "shutdownGraceMs": 2000}
    assert config["namers"] == [
        {"kind": "io.l5d.fs", "rootDir": str((tmp_path / "disco").resolve())}
    ]
    outgoing, incoming = config["routers"]
    assert outgoing["label"] == "outgoing" and outgoing["servers"] == [
        {"ip": "127.0.0.1", "port": 5140}
    ]
    assert outgoing["dtab"].strip() == "/svc => /#/io.l5d.fs;"
    assert outgoing["interpreter"]["transformers"] == [{"kind": "io.l5d.port", "port": 5141}]
    assert incoming["label"] == "incoming" and incoming["servers"] == [
        {"ip": "127.0.0.1", "port": 5141}
    ]
    assert "interpreter" not in incoming
    assert [t["kind"] for t in config["telemetry"]] == [
        "io.l5d.prometheus",
        "io.l5d.recentRequests",
    ]
    assert (tmp_path / "disco" / "world").read_text() == "127.0.0.1 7778\n127.0.0.1 7779\n"
    assert (tmp_path / "disco" / "hello").read_text() == "127.0.0.1 7777\n"


def test_children_plan() -> None:
    options = DemoOptions(ip="127.0.0.2", outgoing_port=5140, world_ports=(1, 2, 3))
    children = plan_children(options, Path("/c.yaml"), Path("/logs"))
    assert [c.name for c in children] == ["l5d", "world-1", "world-2", "world-3", "hello"]
    assert children[0].argv[-2:] == ["run", "/c.yaml"]
    hello = children[-1]
    assert hello.env["http_proxy"] == "127.0.0.2:5140"
    assert all("http_proxy" not in c.env for c in children[:-1])
    # no POD_IP: each app reports the ip:port it listens on, so the instances differ
    assert all("POD_IP" not in c.env for c in children)
    assert [c.app for c in children] == [False, True, True, True, True]


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="used twice: 4140"):
        DemoOptions(incoming_port=4140).validate()
    with pytest.raises(ValueError, match="at least one world"):
        DemoOptions(world_ports=()).validate()
    with pytest.raises(ValueError, match="positive"):
        DemoOptions(traffic_rps=0).validate()
    # Rejected before any child starts (it used to start them all, then fail at once).
    for bad in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="--start-timeout"):
            DemoOptions(start_timeout_s=bad).validate()
    assert parse_ports("1, 2") == (1, 2)
    with pytest.raises(ValueError):
        parse_ports("a,b")


def test_committed_example_config_matches_the_demo() -> None:
    """examples/hello-world/ is the demo's output with default ports: keep them in step."""
    example = REPO / "examples" / "hello-world"
    assert (example / "linkerd.yaml").read_text() == render_config(DemoOptions(), "disco")
    for name, text in namer_files(DemoOptions()).items():
        assert (example / "disco" / name).read_text() == text
