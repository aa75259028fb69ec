"""io.l5d.statsd: linkerd 1's StatsD names, counters, timings and gauges over real UDP."""

from __future__ import annotations

import http.client
import random
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import Processes, free_port, wait_for_port, wait_until
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.loader import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.statsd import (
    MAX_DATAGRAM,
    STEP_METRICS,
    StatsdConfig,
    StatsdTelemeter,
    pack,
    statsd_name,
)


class UdpClock(Clock):
    """A Clock for time, the real reactor for the UDP socket."""

    def listenUDP(self, port: int, protocol: object, interface: str = "") -> object:  # noqa: N802
        from twisted.internet import reactor

        return reactor.listenUDP(port, protocol, interface="127.0.0.1")


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def received(sock: socket.socket, reactor_turns: int = 50) -> list[str]:
    """Every line that arrived (the datagrams were written synchronously by the sender)."""
    lines: list[str] = []
    sock.settimeout(0.2)
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return lines
        lines.extend(data.decode().split("\n"))


def telemeter(
    tree: MetricsTree, clock: Clock, port: int, seed: int = 1, **keys: object
) -> StatsdTelemeter:
    config = StatsdConfig(experimental=True, port=port, **keys)  # type: ignore[arg-type]
    plugin = TELEMETERS.get("io.l5d.statsd")
    t = plugin.factory(
        config, PluginContext(reactor=clock, stats=tree.stats, rng=random.Random(seed))
    )
    assert isinstance(t, StatsdTelemeter)
    return t


def test_names_are_linkerd1s() -> None:
    assert (
        statsd_name(("rt", "outgoing", "service", "svc/hello", "requests"), "linkerd")
        == "linkerd.rt.outgoing.service.svc.hello.requests"
    )
    # linkerd 1's mkName: [^/A-Za-z0-9] -> _, // -> /, / -> .
    assert (
        statsd_name(("rt", "out", "client", "%/io.l5d.k8s/default/http/world-v1", "requests"), "")
        == "rt.out.client._.io_l5d_k8s.default.http.world_v1.requests"
    )
    assert statsd_name(("rt", "in", "server", "0.0.0.0", "4141", "requests"), "l5d") == (
        "l5d.rt.in.server.0_0_0_0.4141.requests"
    )


def test_counters_timings_and_gauges_reach_a_real_udp_socket(receiver: socket.socket) -> None:
    clock = UdpClock()
    tree = MetricsTree(clock, start=False)
    scope = tree.stats.scope("rt", "outgoing", "service", "/svc/hello")
    requests = scope.counter("requests")
    latency = scope.stat("request_latency_ms")
    pending = [3.0]
    scope.gauge("pending", fn=lambda: pending[0])
    t = telemeter(tree, clock, receiver.getsockname()[1], sample_rate=1.0)
    t.start()
    try:
        requests.incr(5)
        latency.add(7)
        clock.advance(1.0)  # a send period: counters and timings, no gauges yet
        clock.advance(0)  # the read's steps
        lines = received(receiver)
        assert "linkerd.rt.outgoing.service.svc.hello.requests:5|c" in lines
        assert "linkerd.rt.outgoing.service.svc.hello.request_latency_ms:7|ms" in lines
        assert not [line for line in lines if line.endswith("|g")]
        # Only the increase since the last read goes.
        requests.incr(2)
        clock.advance(1.0)
        clock.advance(0)
        assert received(receiver) == ["linkerd.rt.outgoing.service.svc.hello.requests:2|c"]
        clock.advance(1.0)
        clock.advance(0)
        assert received(receiver) == []  # nothing changed, nothing sent
    finally:
        t.close()


def test_gauges_go_every_gauge_interval(receiver: socket.socket) -> None:
    clock = UdpClock()
    tree = MetricsTree(clock, start=False)
    value = [2.5]
    tree.stats.scope("rt", "r").gauge("size", fn=lambda: value[0])
    t = telemeter(tree, clock, receiver.getsockname()[1], gauge_interval_ms=3000)
    t.start()
    try:
        for _ in range(2):
            clock.advance(1.0)
            clock.advance(0)
        assert received(receiver) == []
        clock.advance(1.0)
        clock.advance(0)
        assert received(receiver) == ["linkerd.rt.r.size:2.5|g"]
        value[0] = -4
        for _ in range(3):
            clock.advance(1.0)
            clock.advance(0)
        # A negative gauge is set to 0 first: "-4|g" alone would mean "minus 4".
        assert received(receiver) == ["linkerd.rt.r.size:0|g", "linkerd.rt.r.size:-4|g"]
    finally:
        t.close()


def test_prefix_hostname_and_port_keys(receiver: socket.socket) -> None:
    clock = UdpClock()
    tree = MetricsTree(clock, start=False)
    tree.stats.counter("x").incr()
    t = telemeter(
        tree,
        clock,
        receiver.getsockname()[1],
        prefix="mesh",
        hostname="127.0.0.1",
    )
    t.start()
    try:
        clock.advance(1.0)
        clock.advance(0)
        assert received(receiver) == ["mesh.x:1|c"]
    finally:
        t.close()
    # no prefix: no leading dot, as linkerd 1's StatsD client
    t2 = telemeter(MetricsTree(clock, start=False), clock, 1, prefix="")
    t2.tree.stats.counter("y").incr(3)
    assert t2.read_now() == ["y:3|c"]


def test_sample_rate_keeps_that_share_of_timings_with_a_seeded_rng() -> None:
    clock = Clock()
    tree = MetricsTree(clock, start=False)
    stat = tree.stats.stat("latency")
    counter = tree.stats.counter("requests")
    for _ in range(4000):
        stat.add(10)
        counter.incr()
    t = telemeter(tree, clock, 1, seed=42, sample_rate=0.25)
    lines = t.read_now()
    timings = [line for line in lines if "|ms" in line]
    assert 850 <= len(timings) <= 1150
    assert set(timings) == {"linkerd.latency:10|ms|@0.25"}
    # counters are exact, not sampled
    assert "linkerd.requests:4000|c" in lines
    # the same seed, the same choice
    t2 = telemeter(tree, clock, 1, seed=42, sample_rate=0.25)
    assert t2.read_now() == lines
    # the default, linkerd 1's 0.01
    assert StatsdConfig(experimental=True).sample_rate == 0.01
    t3 = telemeter(tree, clock, 1, seed=3)
    few = [line for line in t3.read_now() if "|ms" in line]
    assert 10 <= len(few) <= 80 and few[0].endswith("|ms|@0.01")
    t0 = telemeter(tree, clock, 1, sample_rate=0.0)
    assert [line for line in t0.read_now() if "|ms" in line] == []


def test_timings_follow_histogram_window_rotation() -> None:
    clock = Clock()
    tree = MetricsTree(clock, start=False)
    stat = tree.stats.stat("h")
    t = telemeter(tree, clock, 1, sample_rate=1.0)
    stat.add(1)
    assert t.read_now() == ["linkerd.h:1|ms"]
    stat.add(2)
    tree.tick()  # no rotation yet
    stat.add(3)
    for metric in [m for _, m in tree.metrics()]:
        metric.rotate()  # type: ignore[union-attr]
    stat.add(4)
    assert sorted(t.read_now()) == ["linkerd.h:2|ms", "linkerd.h:3|ms", "linkerd.h:4|ms"]
    assert t.read_now() == []


def test_datagrams_stay_under_the_limit() -> None:
    lines = [f"linkerd.metric.{i}:{i}|c" for i in range(500)]
    datagrams = list(pack(lines))
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    assert b"\n".join(datagrams).decode().split("\n") == lines


def config_text(telemetry: str) -> str:
    return textwrap.dedent(
        """\
        routers:
        - protocol: http
          dtab: /svc => /$/inet/127.0.0.1/1
        telemetry:
        """
    ) + textwrap.indent(textwrap.dedent(telemetry), "")


def test_config_keys_and_defaults() -> None:
    config = load_config(
        config_text(
            """\
            - kind: io.l5d.statsd
              experimental: true
              prefix: l5d
              hostname: statsd.local
              port: 9125
              gaugeIntervalMs: 500
              sampleRate: 1.0
            """
        )
    )
    (spec,) = config.telemetry
    assert spec.config == StatsdConfig(
        experimental=True,
        prefix="l5d",
        hostname="statsd.local",
        port=9125,
        gauge_interval_ms=500,
        sample_rate=1.0,
    )
    defaults = load_config(config_text("- {kind: io.l5d.statsd, experimental: true}\n"))
    d = defaults.telemetry[0].config
    assert (d.prefix, d.hostname, d.port, d.gauge_interval_ms, d.sample_rate) == (
        "linkerd",
        "127.0.0.1",
        8125,
        10_000,
        0.01,
    )


@pytest.mark.parametrize(
    "block, message",
    [
        ("- kind: io.l5d.statsd\n", "experimental: true"),
        ("- {kind: io.l5d.statsd, experimental: false}\n", "experimental: true"),
        ("- {kind: io.l5d.statsd, experimental: true, sampleRate: 2}\n", "sampleRate"),
        ("- {kind: io.l5d.statsd, experimental: true, port: 0}\n", "port"),
    ],
)
def test_bad_configs_are_refused(block: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        load_config(config_text(block))
    assert message in str(e.value)


def test_unresolvable_hostname_sends_nothing_and_does_not_crash() -> None:
    from twisted.internet.defer import fail

    class NoDns(UdpClock):
        def resolve(self, name: str) -> object:
            return fail(OSError("no such host"))

    clock = NoDns()
    tree = MetricsTree(clock, start=False)
    tree.stats.counter("x").incr()
    t = telemeter(tree, clock, 9, hostname="statsd.invalid")
    with capturedLogs() as events:
        t.start()
        try:
            for _ in range(3):
                clock.advance(1.0)
                clock.advance(0)
            assert t.sent_datagrams == 0
        finally:
            t.close()
    warnings = [e for e in events if "does not resolve" in e.get("log_format", "")]
    assert len(warnings) == 1  # retried every period, logged once


def test_a_hostname_is_resolved_before_sending(receiver: socket.socket) -> None:
    from twisted.internet.defer import succeed

    asked: list[str] = []

    class Dns(UdpClock):
        def resolve(self, name: str) -> object:
            asked.append(name)
            return succeed("127.0.0.1")

    clock = Dns()
    tree = MetricsTree(clock, start=False)
    tree.stats.counter("x").incr()
    t = telemeter(tree, clock, receiver.getsockname()[1], hostname="statsd.local")
    t.start()
    try:
        clock.advance(1.0)
        clock.advance(0)
        assert asked == ["statsd.local"]
        assert received(receiver) == ["linkerd.x:1|c"]
    finally:
        t.close()


@pytest.mark.slow
def test_a_real_mesh_sends_its_metrics(
    processes: Processes, tmp_path: Path, receiver: socket.socket
) -> None:
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            admin: {{ip: 127.0.0.1, port: {admin_port}}}
            telemetry:
            - kind: io.l5d.statsd
              experimental: true
              port: {receiver.getsockname()[1]}
              gaugeIntervalMs: 500
              sampleRate: 1.0
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
    lines: list[str] = []

    def counted() -> bool:
        lines.extend(received(receiver))
        requests = [
            int(line.split(":")[1].split("|")[0])
            for line in lines
            if line.startswith("linkerd.rt.outgoing.service.svc.world.requests:")
        ]
        gauges = [line for line in lines if line.endswith("|g")]
        return sum(requests) == 3 and bool(gauges)

    wait_until(counted, what="the service's 3 requests and some gauges over UDP")
    assert any(
        line.startswith("linkerd.rt.outgoing.service.svc.world.request_latency_ms:")
        and line.endswith("|ms")
        for line in lines
    )
    assert any(line.startswith("linkerd.rt.outgoing.server.127_0_0_1.") for line in lines)


def test_a_large_tree_is_read_in_steps(receiver: socket.socket) -> None:
    """A read goes in small steps on the reactor (one per turn here), sending at the end."""
    from l5d_twisted.telemetry.render import stepping_cooperator

    clock = UdpClock()
    tree = MetricsTree(clock, start=False)
    for i in range(1000):
        tree.stats.scope("rt", "r", "service", f"svc/{i}").counter("requests").incr()
    config = StatsdConfig(experimental=True, port=receiver.getsockname()[1])
    t = StatsdTelemeter(config, tree, clock, cooperator=stepping_cooperator(clock, turn_s=0.01))
    t.start()
    try:
        clock.advance(1.0)  # the send period: the read starts
        turns = 0
        while t.sent_datagrams == 0 and turns < 100:
            clock.advance(0.01)
            turns += 1
        assert turns >= 1000 // STEP_METRICS  # not in one go
        lines = received(receiver)
        assert len(lines) == 1000
        assert "linkerd.rt.r.service.svc.999.requests:1|c" in lines
    finally:
        t.close()
