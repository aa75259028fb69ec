"""The watch stream's line splitter (k8s/api.py _LineStream): a large object (an EndpointSlice
of 1,000 endpoints is ~130 kB on one line) arrives in many pieces and is handed on whole."""

from __future__ import annotations

import gc
from typing import Any

import pytest_twisted
from k8s_fake_api import FakeApi, endpoint
from k8s_watch_helpers import eventually
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from l5d_twisted.k8s import api
from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import KubernetesApi, MalformedResponse, _LineStream


def stream() -> tuple[_LineStream, list[bytes], list[Any]]:
    lines: list[bytes] = []
    done: Deferred[None] = Deferred()
    outcome: list[Any] = []
    done.addBoth(outcome.append)
    return _LineStream(lines.append, done), lines, outcome


def test_a_line_in_many_pieces_arrives_whole_and_once() -> None:
    s, lines, _ = stream()
    big = b"x" * 130_000
    for i in range(0, len(big), 1000):
        s.dataReceived(big[i : i + 1000])
    assert lines == []
    s.dataReceived(b"\n{")
    assert lines == [big]
    s.dataReceived(b'"a": 1}\n\n{"b"')
    assert lines == [big, b'{"a": 1}']
    s.connectionLost(Failure(ResponseDone()))
    assert lines == [big, b'{"a": 1}', b'{"b"']


def test_several_lines_in_one_piece_and_blank_lines_skipped() -> None:
    s, lines, outcome = stream()
    s.dataReceived(b"one\ntwo\n\n  \nthr")
    s.dataReceived(b"ee\n")
    assert lines == [b"one", b"two", b"three"]
    s.connectionLost(Failure(ResponseDone()))
    assert lines == [b"one", b"two", b"three"] and outcome == [None]


def test_a_line_longer_than_the_limit_aborts(monkeypatch: Any) -> None:
    monkeypatch.setattr(api, "MAX_LINE_BYTES", 10_000)
    s, lines, outcome = stream()
    for _ in range(11):
        s.dataReceived(b"y" * 1000)
    assert lines == []
    assert isinstance(outcome[0], Failure) and outcome[0].check(MalformedResponse)


@pytest_twisted.ensureDeferred
async def test_a_watch_keeps_no_copy_of_what_it_received() -> None:
    """treq's default (buffered) response kept every piece of the body for a later
    content(): a watch held every object it had ever been sent until it ended (42 MB after
    300 changes of a 1,000-endpoint slice in bench/scale/endpoints.py)."""
    fake = FakeApi()
    fake.listen()
    k8s = KubernetesApi(reactor, ApiAccess(fake.base_url), request_timeout_s=2.0)
    lines: list[bytes] = []
    handle = k8s.watch(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {"watch": "true", "resourceVersion": str(fake.rv)},
        lines.append,
        5.0,
    )
    try:
        for i in range(20):
            endpoints = [endpoint(f"10.0.{i}.{j}", "n1") for j in range(200)]
            fake.set_service("default", "web", endpoints)
        await eventually(lambda: len(lines) >= 20, what="the events")
        kept = sum(
            len(piece)
            for held in gc.get_objects()
            if type(held).__name__ == "_BufferedResponse"  # treq's
            for piece in held._buffer
        )
        assert kept == 0, f"{kept} bytes of the stream kept"
    finally:
        handle.done.addErrback(lambda _: None)  # (aborted by the test)
        handle.abort()
        await fake.stop()
