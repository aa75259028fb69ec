"""io.l5d.influxdb: linkerd 1's line protocol on the admin server, read by a real parser."""

from __future__ import annotations

import http.client
import textwrap
from pathlib import Path
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port, wait_until
from line_protocol_parser import parse_line
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.loader import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.influxdb import InfluxDbConfig, InfluxExposition, InfluxResource
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.render import stepping_cooperator


def parsed(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], dict[str, float]]:
    """measurement + tags -> fields, every line through line-protocol-parser."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, float]] = {}
    for line in text.decode().splitlines():
        point: dict[str, Any] = parse_line(line)
        key = (point["measurement"], frozenset(point["tags"].items()))
        assert key not in out, f"two lines for {key}"
        out[key] = point["fields"]
    return out


def key(measurement: str, **tags: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (measurement, frozenset(tags.items()))


def test_linkerd1_measurements_tags_and_fields() -> None:
    tree = MetricsTree(Clock(), start=False)
    svc = tree.stats.scope("rt", "incoming", "service", "/svc/foo")
    svc.counter("requests").incr(3)
    svc.counter("success").incr(2)
    svc.counter("retries", "total").incr()
    tree.stats.scope("rt", "incoming", "client", "/#/bar").counter("requests").incr()
    tree.stats.scope("rt", "incoming", "client", "/#/bar", "service", "/svc/foo").counter(
        "requests"
    ).incr()
    tree.stats.scope("rt", "incoming", "client", "/#/bar", "status").counter("200").incr(4)
    tree.stats.scope("rt", "incoming", "server", "127.0.0.1", "4141").counter("requests").incr()
    tree.stats.scope("rt", "incoming", "bindcache", "path").counter("evicts").incr()
    tree.stats.counter("bas").incr(5)
    tree.stats.scope("foo", "bar").gauge("g", fn=lambda: 1.5)
    lines = parsed(InfluxExposition(tree).render())
    assert lines == {
        key("rt:service", host="none", rt="incoming", service="svc/foo"): {
            "requests": 3.0,
            "success": 2.0,
        },
        key("rt:service:retries", host="none", rt="incoming", service="svc/foo"): {"total": 1.0},
        key("rt:client", host="none", rt="incoming", client="#/bar"): {"requests": 1.0},
        key("rt:client:service", host="none", rt="incoming", client="#/bar", service="svc/foo"): {
            "requests": 1.0
        },
        key("rt:client:status", host="none", rt="incoming", client="#/bar"): {"200": 4.0},
        key("rt:server", host="none", rt="incoming", server="127.0.0.1/4141"): {"requests": 1.0},
        key("rt:bindcache:path", host="none", rt="incoming"): {"evicts": 1.0},
        key("root", host="none"): {"bas": 5.0},
        key("foo:bar", host="none"): {"g": 1.5},
    }
    # linkerd 1's text for one of them, tags and fields sorted by key
    assert b"rt:service,host=none,rt=incoming,service=svc/foo requests=3,success=2\n" in (
        InfluxExposition(tree).render()
    )


def test_histograms_have_linkerd1s_fields() -> None:
    tree = MetricsTree(Clock(), start=False)
    stat = tree.stats.scope("foo", "bar").stat("bas")
    assert InfluxExposition(tree).render() == b""  # nothing recorded yet: no line
    stat.add(1.0)
    stat.add(2.0)
    (fields,) = parsed(InfluxExposition(tree).render()).values()
    assert set(fields) == {
        f"bas_{suffix}"
        for suffix in (
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "p50",
            "p90",
            "p95",
            "p99",
            "p999",
            "p9999",
        )
    }
    assert fields["bas_avg"] == 1.5
    # percentiles: the histogram bucket's value (within ~3 % of its bounds), within what was seen
    assert fields["bas_p50"] == pytest.approx(1.0, rel=0.04)
    assert fields["bas_p99"] == pytest.approx(2.0, rel=0.04)
    assert fields["bas_count"] == 2.0 and fields["bas_sum"] == 3.0
    assert fields["bas_min"] == 1.0 and fields["bas_max"] == 2.0


def test_names_a_client_can_choose_stay_valid_line_protocol() -> None:
    tree = MetricsTree(Clock(), start=False)
    odd = "svc/a b,c=d\\e\nf"
    tree.stats.scope("rt", "r", "service", odd).counter("requests").incr()
    tree.stats.scope("rt", "r", "service", odd).counter("odd key,=").incr(2)
    tree.stats.gauge("nan", fn=lambda: float("nan"))
    text = InfluxExposition(tree).render(host="l5d:9990")
    lines = parsed(text)
    assert lines == {
        key("rt:service", host="l5d:9990", rt="r", service="svc/a b,c=d_e_f"): {
            "requests": 1.0,
            "odd key,=": 2.0,
        }
    }


def test_the_resource_renders_in_steps_with_the_scrapers_host() -> None:
    clock = Clock()
    tree = MetricsTree(clock, start=False)
    for i in range(450):
        tree.stats.scope("rt", "r", "service", f"svc/{i}").counter("requests").incr(i)
    resource = InfluxResource(InfluxExposition(tree), stepping_cooperator(clock))
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"host", [b"mesh.example:9990"])
    request.path = b"/admin/metrics/influxdb"
    resource.render(request)
    assert not request.written  # nothing at once: the rendering is in steps
    steps = 0
    while not request.finished and steps < 100:
        clock.advance(1)
        steps += 1
    assert request.finished and steps > 2
    lines = parsed(b"".join(request.written))
    assert len(lines) == 450
    assert lines[key("rt:service", host="mesh.example:9990", rt="r", service="svc/7")] == {
        "requests": 7.0
    }


def test_plugin_serves_linkerd1s_path_and_has_no_keys() -> None:
    plugin = TELEMETERS.get("io.l5d.influxdb")
    tree = MetricsTree(Clock(), start=False)
    telemeter = plugin.factory(InfluxDbConfig(), PluginContext(reactor=None, stats=tree.stats))
    assert list(telemeter.admin_resources()) == [b"/admin/metrics/influxdb"]
    config = textwrap.dedent(
        """\
        routers:
        - protocol: http
        telemetry:
        - kind: io.l5d.influxdb
        """
    )
    assert load_config(config).telemetry[0].kind == "io.l5d.influxdb"
    with pytest.raises(ConfigErrors) as e:
        load_config(config + "  path: /x\n")
    assert "path" in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_scrape_a_real_mesh(processes: Processes, tmp_path: Path, workers: int) -> None:
    """With workers: 2 the supervisor's admin server serves the workers' merged metrics."""
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            workers: {workers}
            admin: {{ip: 127.0.0.1, port: {admin_port}}}
            telemetry:
            - kind: io.l5d.influxdb
            routers:
            - protocol: http
              label: outgoing
              dtab: /svc/world => /$/inet/127.0.0.1/{world_port}
              servers:
              - {{ip: 127.0.0.1, port: {proxy_port}}}
            """
        )
    )
    processes.l5d("run", str(config), name="mesh")
    for port in (world_port, proxy_port, admin_port):
        wait_for_port("127.0.0.1", port)
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        conn.request("GET", "/", headers={"Host": "world"})
        assert conn.getresponse().status == 200
        conn.close()

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], dict[str, float]]:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        conn.request("GET", "/admin/metrics/influxdb")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/plain")
        body = response.read()
        conn.close()
        return parsed(body)

    def served() -> Any:
        lines = scrape()
        fields = lines.get(
            key("rt:service", host=f"127.0.0.1:{admin_port}", rt="outgoing", service="svc/world")
        )
        return lines if fields and fields.get("requests") == 3.0 else None

    lines = wait_until(served, what="the service's requests in the influx lines")
    assert isinstance(lines, dict)
    server = lines[
        key(
            "rt:server",
            host=f"127.0.0.1:{admin_port}",
            rt="outgoing",
            server=f"127.0.0.1/{proxy_port}",
        )
    ]
    assert server["requests"] == 3.0
    service = lines[
        key("rt:service", host=f"127.0.0.1:{admin_port}", rt="outgoing", service="svc/world")
    ]
    assert service["request_latency_ms_count"] == 3.0 and "request_latency_ms_p99" in service
