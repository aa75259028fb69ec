"""A namerd watch on a task.Clock: backoff between reconnects (linkerd 1's retry), the last
good value kept through failures, bad lines restart the stream, and no watch without an
observer."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from l5d_twisted.interpreters import namerd_json
from l5d_twisted.interpreters.namerd_client import (
    WARN_EVERY_S,
    NamerdUnavailable,
    StreamHandle,
    WatchStats,
    WatchVar,
)
from l5d_twisted.k8s.backoff import JitteredBackoff
from l5d_twisted.naming.addr import ADDR_PENDING, Addr, AddrBound
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics

BOUND = b'{"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": 8080, "meta": {}}], "meta": {}}'
OTHER = b'{"type": "bound", "addrs": [{"ip": "127.0.0.2", "port": 8080, "meta": {}}], "meta": {}}'


class FakeHttp:
    """Records each stream asked for; the test fires their lines and endings."""

    def __init__(self, clock: Clock) -> None:
        self.reactor = clock
        self.streams: list[tuple[Any, StreamHandle]] = []
        self.down = False

    def stream(self, family: str, params: dict[str, str], on_line: Any) -> StreamHandle:
        if self.down:
            raise NamerdUnavailable("no address")
        request: Deferred[Any] = Deferred()
        request.addErrback(lambda _: None)  # cancelled by abort(), as the Agent's is
        handle = StreamHandle(request)
        self.streams.append((on_line, handle))
        return handle

    def line(self, data: bytes) -> None:
        self.streams[-1][0](data)

    def fail(self) -> None:
        self.streams[-1][1].done.errback(ConnectionRefusedError("namerd is gone"))


def make(base: float = 1.0, maximum: float = 8.0) -> tuple[Clock, FakeHttp, WatchVar[Addr], Any]:
    clock = Clock()
    http = FakeHttp(clock)
    metrics = MetricsTree(clock)
    stats = WatchStats(metrics.stats.scope("rt", "r", "interpreter", "io.l5d.namerd.http"))
    var: WatchVar[Addr] = WatchVar(
        http,  # type: ignore[arg-type]
        "addr",
        {"path": "/#/io.l5d.fs/world"},
        namerd_json.parse_addr,
        ADDR_PENDING,
        JitteredBackoff(random.Random(7), base, maximum),
        stats,
        "addr /#/io.l5d.fs/world",
    )
    return clock, http, var, metrics


def counter(metrics: Any, name: str) -> float:
    found: float = flat_metrics(metrics)[f"rt/r/interpreter/io.l5d.namerd.http/{name}"]
    return found


def test_reconnects_back_off_exponentially_up_to_the_maximum_and_reset_after_an_update() -> None:
    clock, http, var, metrics = make(base=1.0, maximum=8.0)
    seen: list[Addr] = []
    var.observe(seen.append)
    assert len(http.streams) == 1
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    for n, ceiling in enumerate(ceilings, start=1):
        http.fail()
        clock.advance(0.999)  # never before baseSeconds
        assert len(http.streams) == n
        clock.advance(ceiling - 0.999)  # at the latest when the doubled ceiling is reached
        assert len(http.streams) == n + 1, f"retry {n} not within {ceiling}s"
    assert counter(metrics, "failures") == 5
    # a good update resets the backoff: the next failure retries within baseSeconds again
    http.line(BOUND)
    http.fail()
    clock.advance(1.0)
    assert len(http.streams) == 7


def test_the_last_good_value_is_kept_through_failures_and_replaced_by_the_next() -> None:
    clock, http, var, metrics = make()
    seen: list[Addr] = []
    var.observe(seen.append)
    http.line(BOUND)
    good = var.sample()
    assert isinstance(good, AddrBound) and {a.host for a in good.addresses} == {"127.0.0.1"}
    for _ in range(3):
        http.fail()
        clock.advance(10.0)
        assert var.sample() == good
    http.down = True  # no address for namerd at all: the same
    http.fail()
    clock.advance(10.0)
    assert var.sample() == good
    http.down = False
    clock.advance(10.0)
    http.line(OTHER)
    assert {a.host for a in var.sample().addresses} == {"127.0.0.2"}  # type: ignore[attr-defined]
    assert [type(s).__name__ for s in seen] == ["AddrPending", "AddrBound", "AddrBound"]
    assert counter(metrics, "addr/updates") == 2


def test_a_bad_line_drops_the_stream_keeps_the_value_and_reconnects_after_backoff() -> None:
    clock, http, var, metrics = make(base=1.0, maximum=8.0)
    var.observe(lambda _: None)
    http.line(BOUND)
    good = var.sample()
    for bad in (b"{not json", b'{"type": "bound", "addrs": [{"ip": "x", "port": 0}]}', b"[1, 2]"):
        handle = http.streams[-1][1]
        http.line(bad)
        assert handle.done.called  # aborted
        handle.done.addErrback(lambda _: None)
        assert var.sample() == good
        before = len(http.streams)
        clock.advance(8.0)
        assert len(http.streams) == before + 1
    assert counter(metrics, "malformed") == 3


def test_a_stream_namerd_ends_after_an_update_is_asked_again_at_once() -> None:
    clock, http, var, _ = make(base=5.0, maximum=60.0)
    var.observe(lambda _: None)
    http.line(BOUND)
    http.streams[-1][1].done.callback(b"")
    clock.advance(0)
    assert len(http.streams) == 2
    # one that ends without an update is a failure: backoff
    http.streams[-1][1].done.callback(b"")
    clock.advance(4.9)
    assert len(http.streams) == 2


def test_no_stream_without_an_observer_and_none_left_behind() -> None:
    clock, http, var, metrics = make()
    assert http.streams == []
    watch = var.observe(lambda _: None)
    assert counter(metrics, "open_streams") == 1
    handle = http.streams[-1][1]
    handle.done.addErrback(lambda _: None)
    watch.close()
    assert handle.done.called
    assert counter(metrics, "open_streams") == 0
    assert reconnects(clock) == []
    # nor after a failure while no one observes
    again = var.observe(lambda _: None)
    http.fail()
    assert len(reconnects(clock)) == 1
    again.close()
    assert reconnects(clock) == []


def reconnects(clock: Clock) -> list[Any]:
    return [c for c in clock.getDelayedCalls() if "_connect" in repr(c.func)]


def test_an_outage_logs_one_warning_per_interval_not_one_per_watch() -> None:
    clock = Clock()
    http = FakeHttp(clock)
    metrics = MetricsTree(clock)
    stats = WatchStats(metrics.stats.scope("rt", "r", "interpreter", "io.l5d.namerd.http"))
    watches = [
        WatchVar(
            http,  # type: ignore[arg-type]
            "addr",
            {"path": f"/#/io.l5d.fs/s{i}"},
            namerd_json.parse_addr,
            ADDR_PENDING,
            JitteredBackoff(random.Random(i), 1.0, 8.0),
            stats,
            f"addr /#/io.l5d.fs/s{i}",
        )
        for i in range(100)
    ]
    for w in watches:
        w.observe(lambda _: None)
    with capturedLogs() as events:
        for _, handle in list(http.streams):
            handle.done.errback(ConnectionRefusedError("namerd is gone"))
    warnings = [e for e in events if "namerd watch" in e.get("log_format", "")]
    assert len(warnings) == 1
    assert counter(metrics, "failures") == 100
    clock.advance(WARN_EVERY_S)
    with capturedLogs() as events:
        for _, handle in list(http.streams)[100:]:
            handle.done.errback(ConnectionRefusedError("namerd is gone"))
    (warning,) = [e for e in events if "namerd watch" in e.get("log_format", "")]
    assert warning["quiet"] == 99
