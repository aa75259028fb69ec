"""Exposition in small steps between which the reactor runs (issue 10, item 5).

Timing is the benchmark's job (bench/scrape/stall.py); these tests pin the behaviour: a
render does not finish in one reactor turn, other calls run between its steps, and the
bytes are exactly those of the one-go render.
"""

from __future__ import annotations

import math

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from l5d_twisted.telemetry import metrics_json as metrics_json_module
from l5d_twisted.telemetry import prometheus as prometheus_module
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import (
    MetricsJsonExposition,
    metrics_json,
    metrics_json_steps,
)
from l5d_twisted.telemetry.prometheus import PrometheusExposition
from l5d_twisted.telemetry.render import run_steps, stepping_cooperator


def big_tree(services: int = 40) -> MetricsTree:
    tree = MetricsTree(Clock())
    for i in range(services):
        service = tree.stats.scope("rt", "outgoing", "service", f"svc/s{i}")
        service.counter("requests").incr(i)
        service.stat("request_latency_ms").add(1.5 * i)
        client = tree.stats.scope("rt", "outgoing", "client", f"#/mem/s{i}")
        client.counter("status", "2XX").incr()
        client.gauge("loadbalancer", "size", fn=lambda: 3.0)
    return tree


def odd_tree() -> MetricsTree:
    """Escapes, non-finite values, big and small numbers, every kind of scope; no clash."""
    tree = big_tree(5)
    odd = tree.stats.scope("rt", "o", "service", 'svc/"quoted"\\back\nline')
    odd.counter("requests").incr(3)
    odd.stat("lat").add(1.5e9)
    tree.stats.gauge("nan", fn=lambda: math.nan)
    tree.stats.gauge("inf", fn=lambda: math.inf)
    tree.stats.gauge("neg", fn=lambda: -1e-9)
    tree.stats.gauge("minus_zero", fn=lambda: -0.0)
    tree.stats.counter("big").incr(10**7)
    tree.stats.stat("lat").add(1)
    client = tree.stats.scope("rt", "o", "client", "#/io.l5d.fs/x")
    client.scope("service", "svc/a").counter("requests").incr(2)
    client.scope("service", "svc/b").counter("requests").incr(5)
    client.scope("service", "svc/b").stat("request_latency_ms").add(4)
    client.counter("requests").incr(7)
    tree.stats.scope("rt", "o", "server", "127.0.0.1", "4140").counter("requests").incr(7)
    tree.stats.scope("rt", "o", "server", "127.0.0.1", "4140").stat("lat").add(2)
    tree.stats.scope("rt", "o", "bindcache", "path").counter("misses").incr()
    return tree


def varied_tree() -> MetricsTree:
    """Escapes, non-finite values, clashing names, big and small numbers."""
    tree = big_tree(5)
    odd = tree.stats.scope("rt", "o", "service", 'svc/"quoted"\\back\nline')
    odd.counter("requests").incr(3)
    odd.stat("lat").add(1.5e9)
    tree.stats.gauge("nan", fn=lambda: math.nan)
    tree.stats.gauge("inf", fn=lambda: math.inf)
    tree.stats.gauge("neg", fn=lambda: -1e-9)
    tree.stats.stat("lat").add(1)
    tree.stats.counter("lat_count").incr()  # clashes with the summary's lat_count
    tree.stats.counter("lat.count").incr()  # clashes with metrics.json's lat.count
    tree.stats.counter("a-b").incr()
    tree.stats.gauge("a_b", fn=lambda: 1)  # same sanitised name, other type
    tree.stats.scope("rt", "o", "server", "127.0.0.1", "4140").counter("requests").incr(7)
    return tree


def render_in_steps(tree: MetricsTree, **kw: object) -> bytes:
    out: list[bytes] = []
    for _ in PrometheusExposition(tree, process_metrics=False, **kw).render_steps(out):  # type: ignore[arg-type]
        pass
    return b"".join(out)


@pytest.mark.parametrize("samples_per_step", [1, 3, 500])
def test_prometheus_steps_make_the_same_bytes_as_one_go(
    samples_per_step: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus_module, "SAMPLES_PER_STEP", samples_per_step)
    monkeypatch.setattr(prometheus_module, "METRICS_PER_STEP", 2)
    monkeypatch.setattr(prometheus_module, "LINES_PER_PIECE", samples_per_step)
    monkeypatch.setattr(prometheus_module, "UNITS_PER_STEP", samples_per_step)
    for tree in (varied_tree(), odd_tree(), big_tree(), MetricsTree(Clock())):
        for prefix in ("", "l5d_"):
            assert (
                render_in_steps(tree, prefix=prefix)
                == PrometheusExposition(tree, prefix, process_metrics=False).render()
            )


@pytest.mark.parametrize("keys_per_step", [1, 3, 2000])
def test_metrics_json_steps_make_the_same_bytes_as_one_go(
    keys_per_step: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_json_module, "KEYS_PER_STEP", keys_per_step)
    monkeypatch.setattr(metrics_json_module, "METRICS_PER_STEP", 2)
    monkeypatch.setattr(metrics_json_module, "UNITS_PER_STEP", keys_per_step)
    monkeypatch.setattr(metrics_json_module, "BLOCKS_PER_PIECE", keys_per_step)
    for tree in (varied_tree(), odd_tree(), big_tree(), MetricsTree(Clock())):
        cached = MetricsJsonExposition(tree)
        for query in (None, "", "svc/s1", "lat", "nothing matches"):
            for pretty in (False, True):
                out: list[bytes] = []
                for _ in metrics_json_steps(tree, out, query, pretty):
                    pass
                assert b"".join(out) == metrics_json(tree, query, pretty), (query, pretty)
                for _ in range(2):
                    out = []
                    for _ in cached.render_steps(out, query, pretty):
                        pass
                    assert b"".join(out) == metrics_json(tree, query, pretty), (query, pretty)


def test_a_scrape_lets_the_reactor_run_other_calls_between_its_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prometheus_module, "UNITS_PER_STEP", 50)
    monkeypatch.setattr(prometheus_module, "LINES_PER_PIECE", 50)
    clock = Clock()
    tree = big_tree(200)
    exposition = PrometheusExposition(tree, process_metrics=False)
    out: list[bytes] = []
    d = run_steps(stepping_cooperator(clock), exposition.render_steps(out), lambda: b"".join(out))
    results: list[bytes] = []
    d.addCallback(results.append)
    # Something else the reactor has to do, scheduled while the render is under way.
    others: list[int] = []

    def other() -> None:
        others.append(len(out))
        if not results:
            clock.callLater(1, other)

    clock.callLater(1, other)
    turns = 0
    while not results:
        clock.advance(1)
        turns += 1
        assert turns < 100_000
    assert turns > 20  # many turns, not one
    # The other call ran between the render's steps, with the output part-way done.
    assert len(others) > 20 and any(0 < n < len(out) for n in others)
    assert results == [exposition.render()]


def test_metrics_json_render_yields_too() -> None:
    clock = Clock()
    tree = big_tree(200)
    out: list[bytes] = []
    d = run_steps(stepping_cooperator(clock), metrics_json_steps(tree, out), lambda: b"".join(out))
    results: list[bytes] = []
    d.addCallback(results.append)
    clock.advance(1)
    assert not results  # not done in one turn
    while not results:
        clock.advance(1)
    assert results == [metrics_json(tree)]


def test_cancelling_stops_the_render() -> None:
    clock = Clock()
    out: list[bytes] = []
    d = run_steps(
        stepping_cooperator(clock),
        PrometheusExposition(big_tree(200), process_metrics=False).render_steps(out),
        lambda: b"".join(out),
    )
    errors: list[object] = []
    d.addErrback(lambda f: errors.append(f.check(CancelledError)))
    clock.advance(1)
    d.cancel()
    produced = len(out)
    for _ in range(100):
        clock.advance(1)
    assert errors == [CancelledError] and len(out) == produced and not clock.getDelayedCalls()


class _Request:
    """What PiecesProducer uses of a twisted.web request: the written body, its end."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.producer: object = None
        self.finished = False

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.body.append(data)

    def finish(self) -> None:
        self.finished = True


def _drain(request: _Request) -> None:
    while request.producer is not None:
        request.producer.resumeProducing()  # type: ignore[attr-defined]


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per ``heap.trim()`` call (none made for real)."""
    from l5d_twisted import heap

    calls: list[None] = []

    def trim() -> bool:
        calls.append(None)
        return True

    monkeypatch.setattr(heap, "trim", trim)
    return calls


@pytest.mark.parametrize(
    ("piece", "count", "expected"),
    [
        (b"x" * 1000, 1100, 1),  # 1.1 MB: the C heap's free pages go back once it is written
        (b"x" * 1000, 1000, 0),  # under TRIM_AFTER_BYTES: a small scrape costs no trim
    ],
)
def test_a_large_body_gives_the_heap_back_once_written(
    trims: list[None], piece: bytes, count: int, expected: int
) -> None:
    from l5d_twisted.telemetry import render

    assert render.TRIM_AFTER_BYTES == 1 << 20
    calls = trims
    request = _Request()
    producer = render.PiecesProducer(request, [piece] * count)
    producer.start()
    assert request.headers[b"content-length"] == str(len(piece) * count).encode()
    producer.resumeProducing()
    assert calls == [] and not request.finished  # not while the body is being written
    _drain(request)
    assert request.finished and b"".join(request.body) == piece * count
    assert len(calls) == expected
    assert producer.pieces == []  # the written pieces are not kept for the trim to miss


def test_a_body_cut_short_does_not_trim(trims: list[None]) -> None:
    from l5d_twisted.telemetry import render

    calls = trims
    request = _Request()
    producer = render.PiecesProducer(request, [b"x" * 1000] * 2000)
    producer.start()
    producer.resumeProducing()
    producer.stopProducing()  # the scraper went away
    producer.resumeProducing()
    assert calls == [] and not request.finished
