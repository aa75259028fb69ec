"""io.l5d.tracelog: each request's server and client span annotations as log events."""

from __future__ import annotations

import base64
import http.client
import json
import random
import struct
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port, wait_until
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.loader import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path as NamePath
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.request_context import DST, ROUTER
from l5d_twisted.resilience.classifiers import non_retryable_5xx
from l5d_twisted.router.stacks import DEFAULT_STACKS, StackParams
from l5d_twisted.service import FunctionService, Params
from l5d_twisted.telemetry.stats import NULL_STATS
from l5d_twisted.telemetry.tracelog import (
    TracelogConfig,
    TracelogTelemeter,
    decode_ctx_trace,
    sampled_by_rate,
)


def ctx_trace(span: int, parent: int, trace: int, flags: int) -> bytes:
    return base64.b64encode(struct.pack(">QQQQ", span, parent, trace, flags))


def telemeter(clock: Clock, **keys: Any) -> TracelogTelemeter:
    plugin = TELEMETERS.get("io.l5d.tracelog")
    t = plugin.factory(TracelogConfig(**keys), PluginContext(reactor=clock, rng=random.Random(1)))
    assert isinstance(t, TracelogTelemeter)
    return t


def run_request(
    t: TracelogTelemeter,
    clock: Clock,
    request: Request,
    answer: Deferred[Response],
) -> Deferred[Response]:
    """The request through the server and endpoint stacks with the telemeter's modules."""
    stacks = DEFAULT_STACKS.edited(t.stack_edits)
    assert stacks.server.roles == ["stats", "tracelog"]
    assert stacks.endpoint.roles[0] == "tracelog"
    params = (
        Params()
        .plus(StackParams.REACTOR, clock)
        .plus(StackParams.STATS, NULL_STATS)
        .plus(StackParams.CLASSIFIER, non_retryable_5xx())
        .plus(StackParams.RNG, random.Random(2))
    )
    client_module = stacks.endpoint.modules[0]
    endpoint = client_module.make(
        params.plus(StackParams.ADDRESS, Address("10.0.0.7", 7778)),
        FunctionService(lambda req: answer),
    )

    def router(req: Request) -> Deferred[Response]:
        req.ctx[ROUTER] = "outgoing"
        req.ctx[DST] = NamePath.read("/svc/world")
        req.headers.add(b"l5d-dst-client", b"/#/io.l5d.fs/world")
        clock.advance(0.001)
        return endpoint(req)

    server = stacks.server.make(params, FunctionService(router))
    return server(request)


def trace_events(events: Sequence[Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in events if e.get("log_namespace") == "io.l5d.tracelog"]


def test_server_and_client_spans_with_finagle_annotations() -> None:
    clock = Clock()
    clock.advance(100)
    t = telemeter(clock)
    answer: Deferred[Response] = Deferred()
    request = Request(b"GET", b"/hello")
    with capturedLogs() as captured:
        run_request(t, clock, request, answer)
        clock.advance(0.004)
        answer.callback(Response(201))
    events = trace_events(captured)
    assert [e["annotation"] for e in events] == ["sr", "cs", "cr", "ss"]
    sr, cs, cr, ss = events
    assert all(e["log_level"] == LogLevel.info for e in events)  # level INFO by default
    # one trace; the client span is a child of the server span
    assert len({e["trace_id"] for e in events}) == 1
    assert sr["span_id"] == ss["span_id"] and cs["span_id"] == cr["span_id"]
    assert cs["parent_id"] == sr["span_id"] != cs["span_id"]
    # the trace id is what the mesh forwards as l5d-reqid
    assert request.headers.get(b"l5d-reqid") == sr["trace_id"].encode()
    assert (sr["http.method"], sr["http.uri"]) == ("GET", "/hello")
    assert (cs["server.addr"], cr["http.status"], cr["duration_ms"]) == ("10.0.0.7:7778", 201, 4.0)
    assert (ss["http.status"], ss["namer.path"], ss["dst.id"], ss["router"]) == (
        201,
        "/svc/world",
        "/#/io.l5d.fs/world",
        "outgoing",
    )
    assert ss["duration_ms"] == 5.0 and sr["timestamp"] == 100.0


def test_failures_are_annotated_with_the_error() -> None:
    clock = Clock()
    t = telemeter(clock)
    answer: Deferred[Response] = Deferred()
    with capturedLogs() as captured:
        d = run_request(t, clock, Request(b"GET", b"/"), answer)
        answer.errback(ConnectionFailed("connection refused"))
        d.addErrback(lambda f: None)
    events = trace_events(captured)
    cr, ss = events[2], events[3]
    assert cr["error"] == ss["error"] == "ConnectionFailed: connection refused"


def test_the_span_of_an_l5d_ctx_trace_header_is_used_and_its_sampling_flag_obeyed() -> None:
    clock = Clock()
    t = telemeter(clock, sample_rate=0.0)  # the header's flag overrides the rate
    request = Request(b"GET", b"/")
    request.headers.add(b"l5d-ctx-trace", ctx_trace(0xA, 0xB, 0xC, 0b110))  # sampled
    with capturedLogs() as captured:
        run_request(t, clock, request, succeed(Response(200)))
    events = trace_events(captured)
    assert len(events) == 4
    sr = events[0]
    assert (sr["trace_id"], sr["span_id"], sr["parent_id"]) == (
        f"{0xC:016x}",
        f"{0xA:016x}",
        f"{0xB:016x}",
    )
    assert events[1]["parent_id"] == f"{0xA:016x}"
    t1 = telemeter(clock, sample_rate=1.0)
    request = Request(b"GET", b"/")
    request.headers.add(b"l5d-ctx-trace", ctx_trace(0xA, 0xB, 0xC, 0b010))  # known: not sampled
    with capturedLogs() as captured:
        run_request(t1, clock, request, succeed(Response(200)))
    assert trace_events(captured) == []


def test_ctx_trace_decoding() -> None:
    span = decode_ctx_trace(ctx_trace(1, 2, 3, 0))
    assert span is not None and (span.span_id, span.parent_id, span.trace_id) == (1, 2, 3)
    assert span.sampled is None  # not decided upstream
    wide = base64.b64encode(struct.pack(">QQQQQ", 1, 2, 3, 6, 0xFF))
    decoded = decode_ctx_trace(wide)
    assert decoded is not None and decoded.ids()["trace_id"] == f"{0xFF:016x}{3:016x}"
    assert decoded.sampled is True
    for bad in (b"", b"not base64!", base64.b64encode(b"short")):
        assert decode_ctx_trace(bad) is None


def test_an_upstream_l5d_reqid_is_the_trace_id() -> None:
    clock = Clock()
    t = telemeter(clock)
    request = Request(b"GET", b"/")
    request.headers.add(b"l5d-reqid", b"00000000000000ff")
    with capturedLogs() as captured:
        run_request(t, clock, request, succeed(Response(200)))
    assert {e["trace_id"] for e in trace_events(captured)} == {f"{0xFF:016x}"}


def test_sample_rate_decides_per_trace() -> None:
    ids = random.Random(5)
    traces = [ids.getrandbits(64) for _ in range(4000)]
    kept = [i for i in traces if sampled_by_rate(i, 0.2)]
    assert 650 <= len(kept) <= 950
    assert all(sampled_by_rate(i, 1.0) for i in traces[:50])
    assert not any(sampled_by_rate(i, 0.0) for i in traces[:50])
    # every annotation of a trace, or none of them
    clock = Clock()
    t = telemeter(clock, sample_rate=0.2)
    logged: set[str] = set()
    with capturedLogs() as captured:
        for trace in traces[:200]:
            request = Request(b"GET", b"/")
            request.headers.add(b"l5d-reqid", b"%016x" % trace)
            run_request(t, clock, request, succeed(Response(200)))
    events = trace_events(captured)
    for e in events:
        logged.add(e["trace_id"])
    assert len(events) == 4 * len(logged)
    assert logged == {f"{i:016x}" for i in traces[:200] if sampled_by_rate(i, 0.2)}


@pytest.mark.parametrize(
    "level, expected",
    [
        ("TRACE", LogLevel.debug),
        ("DEBUG", LogLevel.debug),
        ("ALL", LogLevel.debug),
        ("INFO", LogLevel.info),
        ("WARNING", LogLevel.warn),
        ("ERROR", LogLevel.error),
        ("FATAL", LogLevel.critical),
        ("CRITICAL", LogLevel.critical),
    ],
)
def test_level(level: str, expected: LogLevel) -> None:
    clock = Clock()
    t = telemeter(clock, level=level)
    with capturedLogs() as captured:
        run_request(t, clock, Request(b"GET", b"/"), succeed(Response(200)))
    events = trace_events(captured)
    assert len(events) == 4 and {e["log_level"] for e in events} == {expected}


def test_level_off_logs_nothing() -> None:
    clock = Clock()
    t = telemeter(clock, level="OFF")
    with capturedLogs() as captured:
        run_request(t, clock, Request(b"GET", b"/"), succeed(Response(200)))
    assert trace_events(captured) == []


def config(block: str) -> str:
    return "routers:\n- protocol: http\ntelemetry:\n" + textwrap.dedent(block)


def test_config_keys_and_defaults() -> None:
    spec = load_config(
        config("- {kind: io.l5d.tracelog, sampleRate: 0.2, level: TRACE}\n")
    ).telemetry[0]
    assert spec.config == TracelogConfig(sample_rate=0.2, level="TRACE")
    default = load_config(config("- kind: io.l5d.tracelog\n")).telemetry[0].config
    assert (default.sample_rate, default.level) == (1.0, "INFO")
    for bad, word in (("sampleRate: 2", "sampleRate"), ("level: LOUD", "level")):
        with pytest.raises(ConfigErrors) as e:
            load_config(config(f"- {{kind: io.l5d.tracelog, {bad}}}\n"))
        assert word in str(e.value)


@pytest.mark.slow
def test_a_real_mesh_logs_the_spans_as_json(processes: Processes, tmp_path: Path) -> None:
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    path = tmp_path / "linkerd.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            admin: {{ip: 127.0.0.1, port: {admin_port}}}
            telemetry:
            - kind: io.l5d.tracelog
              sampleRate: 1.0
              level: INFO
            routers:
            - protocol: http
              label: outgoing
              dtab: /svc/world => /$/inet/127.0.0.1/{world_port}
              servers:
              - {{ip: 127.0.0.1, port: {proxy_port}}}
            """
        )
    )
    mesh = processes.l5d("run", str(path), name="mesh")
    for port in (world_port, proxy_port, admin_port):
        wait_for_port("127.0.0.1", port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    conn.request("GET", "/there", headers={"Host": "world"})
    assert conn.getresponse().status == 200
    conn.close()

    def spans() -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in processes.log(mesh).splitlines() if x.startswith("{")]
        found = [x for x in lines if x.get("ns") == "io.l5d.tracelog"]
        return found if len(found) == 4 else []

    events = wait_until(spans, what="the four trace events in the mesh's log")
    assert isinstance(events, list)
    by = {e["annotation"]: e for e in events}
    assert set(by) == {"sr", "ss", "cs", "cr"}
    assert by["cs"]["server.addr"] == f"127.0.0.1:{world_port}"
    assert by["ss"]["namer.path"] == "/svc/world" and by["ss"]["http.status"] == 200
    assert by["cs"]["parent_id"] == by["sr"]["span_id"]
    assert by["sr"]["client.addr"].startswith("127.0.0.1:")
