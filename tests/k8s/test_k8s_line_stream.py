"""The watch stream's line splitter (k8s/api.py _LineStream): a large object (an EndpointSlice
of 1,000 endpoints is ~130 kB on one line) arrives in many pieces and is handed on whole."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from l5d_twisted.k8s import api
from l5d_twisted.k8s.api import MalformedResponse, _LineStream


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
