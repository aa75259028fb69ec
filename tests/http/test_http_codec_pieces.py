"""The pieces of the HTTP/1 codec on their own: the message reader (both sides), the
server's exchange queue, its timeout policy and the framing enum."""

from __future__ import annotations

import httptools
import pytest
from twisted.internet.task import Clock

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.codec import Framing, choose_framing
from l5d_twisted.http.exchange import MAX_PIPELINED, Exchange, ExchangeQueue
from l5d_twisted.http.hop import DROPPED_ON_PARSE, HOP_BY_HOP
from l5d_twisted.http.message import Request, Response
from l5d_twisted.http.reader import MessageReader, ProtocolError
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.http.timeouts import BODY_RATE_GRACE_S, ConnectionTimeouts


class Events:
    """An owner that records the reader's events."""

    def __init__(self, request: bool = True, max_head: int = 1024, max_line: int = 256) -> None:
        dropped = DROPPED_ON_PARSE if request else HOP_BY_HOP | {b"content-length"}
        self.reader = MessageReader(
            request, dropped, max_head, max_line, self.head, self.body, self.end
        )
        self.events: list[tuple[str, object]] = []

    def head(self) -> None:
        reader = self.reader
        reader.in_head = False  # the contract: httptools calls the owner directly
        self.events.append(
            ("head", (reader.url, list(reader.fields), reader.content_length, reader.chunked))
        )

    def body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def end(self) -> None:
        self.events.append(("end", self.reader.trailers))


def test_request_head_body_trailers_as_events() -> None:
    owner = Events()
    wire = (
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\nX-A: 1\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n"
    )
    assert owner.reader.feed(wire) is False
    assert owner.events == [
        ("head", (b"/up", [(b"Host", b"a"), (b"X-A", b"1")], None, True)),
        ("body", b"abc"),
        ("end", [(b"X-Sum", b"9")]),
    ]
    reader = owner.reader
    assert reader.conn_values == [b"keep-alive"] and reader.expect and reader.host_at == 0
    assert reader.body_bytes == 3


def test_a_collected_body_is_not_an_event() -> None:
    owner = Events()

    def head() -> None:
        owner.reader.in_head = False
        owner.reader.collect = []

    owner.reader.on_headers_complete = head
    owner.reader.new_parser()  # httptools takes the callbacks when the parser is made
    owner.reader.feed(b"PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel")
    owner.reader.feed(b"lo")
    assert owner.reader.collect == [b"hel", b"lo"]
    assert owner.events == [("end", None)]


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET /" + b"x" * 300 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX: " + b"v" * 2000 + b"\r\n\r\n", 431),
    ],
)
def test_request_refusals_raise_from_the_callback(wire: bytes, status: int) -> None:
    owner = Events()
    with pytest.raises(httptools.HttpParserCallbackError) as caught:
        owner.reader.feed(wire)
    cause = caught.value.__context__
    assert isinstance(cause, ProtocolError) and cause.status == status


def test_a_head_httptools_still_buffers_is_bounded_by_the_raw_bytes_read() -> None:
    owner = Events(max_head=1024, max_line=256)
    assert owner.reader.feed(b"GET / HTTP/1.1\r\nX-Long: ") is False
    over = False
    for _ in range(20):  # one field that never ends: httptools holds it, no callback counts it
        over = owner.reader.feed(b"v" * 100)
        if over:
            break
    assert over and owner.reader.in_head and owner.events == []


def test_response_side_is_lenient_and_keeps_a_head_responses_length() -> None:
    owner = Events(request=False)
    owner.reader.keep_length = True
    owner.reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nHost: x\r\nHost: y\r\n\r\n")
    head = owner.events[0][1]
    assert head == (b"", [(b"Content-Length", b"12"), (b"Host", b"x"), (b"Host", b"y")], 12, False)
    # a Transfer-Encoding not ending in chunked is the server's business (read until close)
    other = Events(request=False)
    other.reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert other.reader.chunked is True


def test_response_status_line_over_the_limit_is_refused() -> None:
    owner = Events(request=False, max_line=16)
    with pytest.raises(httptools.HttpParserCallbackError) as caught:
        owner.reader.feed(b"HTTP/1.1 200 " + b"O" * 40 + b"\r\n\r\n")
    assert isinstance(caught.value.__context__, ProtocolError)


def test_refusing_keeps_the_requests_read_whole_and_answers_after_them() -> None:
    queue = ExchangeQueue()
    done, partial = (
        Exchange(Request(b"GET", b"/a"), True, True),
        Exchange(Request(b"POST", b"/b"), True, True),
    )
    done.ready = True
    queue.waiting.extend([done, partial])
    queue.parsing = partial
    assert queue.busy()
    refusal = Response(400)
    queue.refuse(partial, refusal)
    assert list(queue.waiting)[0] is done
    last = queue.waiting[-1]
    assert len(queue.waiting) == 2 and last.rejection is refusal and last.ready and last.body_done
    queue.waiting.extend(Exchange(None, True, True) for _ in range(MAX_PIPELINED))
    assert not queue.may_read_more()
    queue.clear()
    queue.parsing = None
    assert not queue.busy()


def timeouts(clock: Clock) -> tuple[ConnectionTimeouts, list[float]]:
    fired: list[float] = []
    policy = ConnectionTimeouts(clock, lambda: fired.append(clock.seconds()), 10.0, 60.0, 30.0, 240)
    return policy, fired


def test_timer_fires_the_owner_and_can_be_cancelled() -> None:
    clock = Clock()
    policy, fired = timeouts(clock)
    policy.start()  # the first head is due within the header read timeout
    clock.advance(10)
    assert fired == [10.0] and policy.timer is None
    policy.schedule(5)
    policy.cancel()
    clock.advance(10)
    assert fired == [10.0] and not clock.getDelayedCalls()


def test_head_and_idle_time_left() -> None:
    clock = Clock()
    policy, _ = timeouts(clock)
    policy.start()
    policy.head_started = 2.0
    assert policy.head_time_left(7.0) == 5.0 and policy.head_time_left(12.5) < 0
    policy.last_activity = 1.0
    assert policy.idle_time_left(31.0) == 30.0 and policy.idle_time_left(61.0) <= 0


def test_body_pace_a_stall_a_trickle_and_a_fresh_window() -> None:
    clock = Clock()
    policy, _ = timeouts(clock)
    policy.start()
    policy.restart_body_clock(100)
    # a stall: no byte for the body idle timeout (said before the rate, which it also breaks)
    assert policy.body_too_slow(BODY_RATE_GRACE_S - 1, 100) is None
    assert policy.body_too_slow(30.0, 100) == "no request body data for 30 s"
    # a trickle: bytes keep arriving, but under 240 B/s on average once the grace is over
    clock.advance(100)
    policy.restart_body_clock(100)
    policy.last_activity = clock.seconds() + BODY_RATE_GRACE_S  # a byte just arrived
    now = clock.seconds() + BODY_RATE_GRACE_S
    assert policy.body_too_slow(now, 100 + 240 * 5) is None
    assert policy.body_too_slow(now, 100 + 240 * 5 - 1) == "request body slower than 240 bytes/s"
    # within the grace nothing is too slow; a restarted window forgets the slow past
    assert policy.body_too_slow(clock.seconds() + 1, 100) is None
    clock.advance(BODY_RATE_GRACE_S)
    policy.restart_body_clock(101)
    assert policy.body_too_slow(clock.seconds() + 1, 101) is None


def test_framing_is_an_enum() -> None:
    assert choose_framing(BufferedBody(b"x"), True) is Framing.LENGTH
    assert choose_framing(BufferedBody(b"x", [(b"a", b"b")]), True) is Framing.CHUNKED
    assert choose_framing(StreamBody(None, None), True) is Framing.CHUNKED
    assert choose_framing(StreamBody(None, None), False) is Framing.CLOSE  # an HTTP/1.0 client
    assert choose_framing(StreamBody(None, 7), False) is Framing.LENGTH
