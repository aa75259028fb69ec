"""StreamBody: buffering before a consumer, backpressure both ways, failure and discard."""

from __future__ import annotations

import pytest

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.stream import HIGH_WATER, BodyTooLarge, StreamBody, read_body


class Source:
    def __init__(self) -> None:
        self.paused = False
        self.aborted = False
        self.events: list[str] = []

    def pause_body(self) -> None:
        self.paused = True
        self.events.append("pause")

    def resume_body(self) -> None:
        self.paused = False
        self.events.append("resume")

    def abort_body(self) -> None:
        self.aborted = True


class Sink:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended: object = None
        self.error: BaseException | None = None

    def body_data(self, data: bytes) -> None:
        self.data.append(data)

    def body_end(self, trailers: object) -> None:
        self.ended = trailers if trailers is not None else True

    def body_error(self, reason: BaseException) -> None:
        self.error = reason


def test_buffers_until_consumed_and_pauses_the_source_above_high_water() -> None:
    source = Source()
    stream = StreamBody(source, None)
    stream.write(b"a" * HIGH_WATER)
    assert not source.paused
    stream.write(b"b")
    assert source.paused
    sink = Sink()
    stream.consume(sink)
    assert b"".join(sink.data) == b"a" * HIGH_WATER + b"b"
    assert source.events == ["pause", "resume"]


def test_consumer_backpressure_pauses_and_resumes_the_source() -> None:
    source = Source()
    stream = StreamBody(source, 6)
    sink = Sink()
    stream.consume(sink)
    stream.write(b"abc")
    stream.pause()
    assert source.paused
    stream.write(b"def")  # arrives while paused: held
    stream.finish()
    assert sink.data == [b"abc"] and sink.ended is None
    stream.resume()
    assert sink.data == [b"abc", b"def"] and sink.ended is True
    assert stream.complete


def test_trailers_reach_the_sink() -> None:
    stream = StreamBody(Source(), None)
    sink = Sink()
    stream.consume(sink)
    stream.write(b"x")
    stream.finish([(b"X-Sum", b"1")])
    assert sink.ended == [(b"X-Sum", b"1")]


def test_failure_is_reported_not_presented_as_the_end() -> None:
    stream = StreamBody(Source(), 100)
    sink = Sink()
    stream.consume(sink)
    stream.write(b"partial")
    stream.fail(ConnectionError("upstream died"))
    assert isinstance(sink.error, ConnectionError) and sink.ended is None


def test_discard_tells_the_source_to_stop() -> None:
    source = Source()
    stream = StreamBody(source, None)
    stream.write(b"abc")
    stream.discard()
    assert source.aborted
    stream.write(b"more")  # ignored
    assert not stream.consumed or stream.complete


def test_consuming_twice_is_an_error() -> None:
    stream = StreamBody(Source(), None)
    stream.consume(Sink())
    with pytest.raises(RuntimeError):
        stream.consume(Sink())


def test_read_all_collects_and_limits() -> None:
    stream = StreamBody(Source(), None)
    d = stream.read_all()
    stream.write(b"hello ")
    stream.write(b"world")
    stream.finish()
    result: list[BufferedBody] = []
    d.addCallback(result.append)
    assert result[0].data == b"hello world" and result[0].replayable

    source = Source()
    limited = StreamBody(source, None)
    errors: list[object] = []
    limited.read_all(max_bytes=4).addErrback(lambda f: errors.append(f.type))
    limited.write(b"too long")
    assert errors == [BodyTooLarge] and source.aborted


def test_read_body_of_a_buffered_body_is_immediate() -> None:
    got: list[BufferedBody] = []
    read_body(BufferedBody(b"x")).addCallback(got.append)
    assert got[0].data == b"x"
