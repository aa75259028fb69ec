"""io.l5d.recentRequests: a bounded, sampled ring of the latest requests."""

from __future__ import annotations

import random

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from l5d_twisted.admin.requests_page import render_requests_page
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.request_context import DST
from l5d_twisted.resilience.accrual import FailureAccrualService
from l5d_twisted.resilience.accrual_policies import NoAccrualPolicy
from l5d_twisted.resilience.classifiers import non_retryable_5xx
from l5d_twisted.router.stacks import DEFAULT_STACKS, StackParams
from l5d_twisted.service import FunctionService, Params
from l5d_twisted.telemetry.recent import RecentRequests
from l5d_twisted.telemetry.stats import NULL_STATS


def request(uri: bytes = b"/a") -> Request:
    req = Request(b"GET", uri)
    req.ctx[DST] = Path.read("/svc/hello")
    req.headers.add(b"l5d-dst-client", b"/$/inet/127.0.0.1/7777")
    return req


def test_observe_keeps_the_newest_first_up_to_capacity() -> None:
    clock = Clock()
    recent = RecentRequests(clock, capacity=3)
    for i in range(5):
        clock.advance(1)
        recent.observe(request(f"/{i}".encode()), Response(200), 1.23456)
    records = recent.to_json()
    assert [r["uri"] for r in records] == ["/4", "/3", "/2"]
    newest = records[0]
    assert newest == {
        "time": 5.0,
        "router": "",
        "method": "GET",
        "uri": "/4",
        "dst_path": "/svc/hello",
        "client_id": "/$/inet/127.0.0.1/7777",
        "status": 200,
        "latency_ms": 1.235,
        "error": None,
        "endpoint": "",
    }


def test_failures_record_the_mesh_status_and_error() -> None:
    recent = RecentRequests(Clock())
    recent.observe(request(), ConnectionFailed("connection refused"), 3.0)
    recent.observe(Request(b"GET", b"/x"), ValueError("boom"), 1.0)
    unidentified, refused = recent.to_json()
    assert refused["status"] == 502 and refused["error"] == "ConnectionFailed: connection refused"
    assert (
        unidentified["status"] is None
        and unidentified["dst_path"] == ""
        and unidentified["error"] == "ValueError: boom"
    )


def test_sample_rate_keeps_about_that_fraction() -> None:
    recent = RecentRequests(Clock(), capacity=10_000, sample_rate=0.25, rng=random.Random(7))
    for _ in range(4000):
        recent.observe(request(), Response(200), 1.0)
    assert 900 <= len(recent.records()) <= 1100


def test_plugin_records_through_its_server_stack_module() -> None:
    plugin = TELEMETERS.get("io.l5d.recentRequests")
    clock = Clock()
    telemeter = plugin.factory(
        plugin.config_type(sample_rate=1.0, capacity=2), PluginContext(reactor=clock)
    )
    assert telemeter.request_observer is None
    (edit,) = telemeter.stack_edits
    assert (edit.layer, edit.after, edit.module.role) == ("server", "stats", "recentRequests")
    stack = DEFAULT_STACKS.edited(telemeter.stack_edits).server
    assert stack.roles == ["stats", "recentRequests"]
    answer: Deferred[Response] = Deferred()
    params = (
        Params()
        .plus(StackParams.REACTOR, clock)
        .plus(StackParams.STATS, NULL_STATS)
        .plus(StackParams.CLASSIFIER, non_retryable_5xx())
    )
    service = stack.make(params, FunctionService(lambda req: answer))
    service(request())
    assert telemeter.recent_requests.to_json() == []  # recorded when it finishes
    clock.advance(0.002)
    answer.callback(Response(404))
    (record,) = telemeter.recent_requests.to_json()
    assert (record["status"], record["latency_ms"], record["dst_path"]) == (404, 2.0, "/svc/hello")
    assert telemeter.admin_resources() == {}


def test_a_record_names_the_endpoint_that_answered() -> None:
    """Failure accrual (the top of the endpoint stack) puts the endpoint in the context."""
    plugin = TELEMETERS.get("io.l5d.recentRequests")
    clock = Clock()
    telemeter = plugin.factory(plugin.config_type(), PluginContext(reactor=clock))
    stack = DEFAULT_STACKS.edited(telemeter.stack_edits).server
    params = (
        Params()
        .plus(StackParams.REACTOR, clock)
        .plus(StackParams.STATS, NULL_STATS)
        .plus(StackParams.CLASSIFIER, non_retryable_5xx())
    )
    endpoint = FailureAccrualService(
        FunctionService(lambda req: succeed(Response(200))),
        NoAccrualPolicy(),
        non_retryable_5xx(),
        clock,
        NULL_STATS,
        label="127.0.0.1:7778",
    )
    stack.make(params, endpoint)(request())
    (record,) = telemeter.recent_requests.records()
    assert record.endpoint == "127.0.0.1:7778"
    page = render_requests_page([record]).decode()
    assert "<th>endpoint</th>" in page and "<td>127.0.0.1:7778</td>" in page
