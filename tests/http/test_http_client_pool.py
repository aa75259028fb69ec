"""EndpointClient and its pool, driven with MemoryReactorClock and StringTransport."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from l5d_twisted.errors import ConnectionFailed, ConnectionReset, Overloaded, UpstreamProtocolError
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.naming.addr import Address
from l5d_twisted.service import Status
from l5d_twisted.telemetry.stats import NULL_STATS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def make_client(**pool: Any) -> tuple[MemoryReactorClock, EndpointClient]:
    reactor = MemoryReactorClock()
    return reactor, EndpointClient(
        reactor, Address("10.1.2.3", 8080), PoolSettings(**pool), NULL_STATS, 1.0
    )


def accept(reactor: MemoryReactorClock) -> tuple[Any, StringTransport]:
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    transport = StringTransport()
    proto = factory.buildProtocol(None)
    proto.makeConnection(transport)
    return proto, transport


def results(d: Any) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_origin_form_host_and_framing_are_written() -> None:
    reactor, client = make_client()
    request = Request(
        b"POST",
        b"http://hello:81/a/b?c=d",
        Headers([(b"X-A", b"1"), (b"Content-Length", b"99")]),
        BufferedBody(b"body"),
    )
    got = results(client(request))
    proto, transport = accept(reactor)
    written = transport.value()
    assert written.startswith(
        b"POST /a/b?c=d HTTP/1.1\r\nHost: hello:81\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody"
    )
    proto.dataReceived(OK)
    assert got[0].status == 200 and got[0].body.data == b"hi"


def test_host_defaults_to_the_address_and_get_has_no_length() -> None:
    reactor, client = make_client()
    client(Request(b"GET", b"/x"))
    _, transport = accept(reactor)
    assert transport.value() == b"GET /x HTTP/1.1\r\nHost: 10.1.2.3:8080\r\n\r\n"


def test_keep_alive_connection_is_reused_and_pending_counted() -> None:
    reactor, client = make_client()
    first = results(client(Request(b"GET", b"/1")))
    assert client.pending == 1
    proto, transport = accept(reactor)
    proto.dataReceived(OK)
    assert first[0].status == 200 and client.pending == 0
    transport.clear()
    second = results(client(Request(b"GET", b"/2")))
    assert reactor.tcpClients == []  # no new connection
    assert transport.value().startswith(b"GET /2 ")
    proto.dataReceived(OK)
    assert second[0].status == 200


def test_connection_close_response_is_not_reused() -> None:
    reactor, client = make_client()
    client(Request(b"GET", b"/1"))
    proto, transport = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert transport.disconnecting
    client(Request(b"GET", b"/2"))
    assert len(reactor.tcpClients) == 1


def test_max_size_queues_waiters_and_max_waiters_rejects() -> None:
    reactor, client = make_client(max_size=1, max_waiters=1)
    first = results(client(Request(b"GET", b"/1")))
    second = results(client(Request(b"GET", b"/2")))
    third = results(client(Request(b"GET", b"/3")))
    assert isinstance(third[0].value, Overloaded) and third[0].value.retryable
    assert client.status is Status.BUSY
    proto, transport = accept(reactor)
    assert transport.value().startswith(b"GET /1 ")
    transport.clear()
    proto.dataReceived(OK)
    assert first[0].status == 200
    assert transport.value().startswith(b"GET /2 ")  # the waiter got the connection
    proto.dataReceived(OK)
    assert second[0].status == 200


def test_connect_failure_is_retryable_connection_failed() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert isinstance(got[0].value, ConnectionFailed) and got[0].value.retryable
    assert "10.1.2.3:8080" in got[0].value.message


def test_break_before_response_is_connection_reset() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    proto, transport = accept(reactor)
    proto.connectionLost(Failure(ConnectionRefusedError()))
    assert isinstance(got[0].value, ConnectionReset) and not got[0].value.retryable


def test_break_mid_body_fails_the_stream() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc")
    body = got[0].body
    assert isinstance(body, StreamBody)
    errors = results(body.read_all())
    from twisted.internet.error import ConnectionLost

    proto.connectionLost(Failure(ConnectionLost()))
    assert isinstance(errors[0].value, ConnectionReset)


def test_close_delimited_body_ends_at_close() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    proto, _ = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\n\r\nsome ")
    collected = results(got[0].body.read_all())
    proto.dataReceived(b"bytes")
    from twisted.internet.error import ConnectionDone

    proto.connectionLost(Failure(ConnectionDone()))
    assert collected[0].data == b"some bytes"


def test_head_response_has_no_body_and_connection_is_reusable() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"HEAD", b"/")))
    proto, transport = accept(reactor)
    proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert got[0].status == 200 and got[0].body.length == 0
    assert got[0].headers.get(b"content-length") == b"500"
    transport.clear()
    again = results(client(Request(b"GET", b"/")))
    assert transport.value().startswith(b"GET / ")
    proto.dataReceived(OK)
    assert again[0].body.data == b"hi"


def test_garbage_response_is_protocol_error() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    proto, transport = accept(reactor)
    proto.dataReceived(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert isinstance(got[0].value, UpstreamProtocolError)
    assert transport.disconnecting or transport.disconnected


def test_cancel_aborts_the_connection() -> None:
    reactor, client = make_client()
    d = client(Request(b"GET", b"/"))
    got = results(d)
    proto, transport = accept(reactor)
    d.cancel()
    assert isinstance(got[0].value, CancelledError)
    assert transport.disconnecting or transport.disconnected


def test_idle_connections_expire() -> None:
    reactor, client = make_client(idle_time_s=5.0)
    client(Request(b"GET", b"/"))
    proto, transport = accept(reactor)
    proto.dataReceived(OK)
    reactor.advance(4.9)
    assert not transport.disconnecting
    reactor.advance(0.2)
    assert transport.disconnecting


def test_min_size_connections_do_not_expire() -> None:
    reactor, client = make_client(idle_time_s=5.0, min_size=1)
    client(Request(b"GET", b"/"))
    proto, transport = accept(reactor)
    proto.dataReceived(OK)
    reactor.advance(30)
    assert not transport.disconnecting


def test_close_waits_for_in_flight_then_closes() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    proto, transport = accept(reactor)
    closed = results(client.close())
    assert closed == [] and client.status is Status.CLOSED
    after = results(client(Request(b"GET", b"/")))
    assert isinstance(after[0].value, ConnectionFailed)
    proto.dataReceived(OK)
    assert got[0].status == 200
    assert transport.disconnecting
    proto.connectionLost(Failure(ConnectionRefusedError()))
    assert closed == [None]


@pytest.mark.parametrize("chunked", [True, False])
def test_streamed_request_body_is_framed(chunked: bool) -> None:
    reactor, client = make_client()
    body = StreamBody(None, None if chunked else 6)
    got = results(client(Request(b"PUT", b"/up", body=body)))
    proto, transport = accept(reactor)
    body.write(b"abc")
    body.write(b"def")
    body.finish([(b"X-T", b"1")] if chunked else None)
    if chunked:
        assert transport.value().endswith(
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-T: 1\r\n\r\n"
        )
    else:
        assert transport.value().endswith(b"Content-Length: 6\r\n\r\nabcdef")
    proto.dataReceived(OK)
    assert got[0].status == 200


def test_stale_keep_alive_connection_resends_idempotent_request() -> None:
    reactor, client = make_client()
    client(Request(b"GET", b"/1"))
    proto, transport = accept(reactor)
    proto.dataReceived(OK)
    got = results(client(Request(b"GET", b"/2")))
    from twisted.internet.error import ConnectionDone

    proto.connectionLost(Failure(ConnectionDone()))  # the server closed it as we sent
    assert got == []
    proto2, transport2 = accept(reactor)
    assert transport2.value().startswith(b"GET /2 ")
    proto2.dataReceived(OK)
    assert got[0].status == 200 and client.pending == 0


def test_stale_connection_does_not_resend_a_post() -> None:
    reactor, client = make_client()
    client(Request(b"GET", b"/1"))
    proto, _ = accept(reactor)
    proto.dataReceived(OK)
    got = results(client(Request(b"POST", b"/2", body=BufferedBody(b"x"))))
    from twisted.internet.error import ConnectionDone

    proto.connectionLost(Failure(ConnectionDone()))
    assert isinstance(got[0].value, ConnectionReset)
    assert reactor.tcpClients == []


def test_a_resent_request_can_be_cancelled() -> None:
    reactor, client = make_client()
    client(Request(b"GET", b"/1"))
    proto, _ = accept(reactor)
    proto.dataReceived(OK)
    d = client(Request(b"GET", b"/2"))
    got = results(d)
    from twisted.internet.error import ConnectionDone

    proto.connectionLost(Failure(ConnectionDone()))
    proto2, transport2 = accept(reactor)
    d.cancel()
    assert isinstance(got[0].value, CancelledError)
    assert transport2.disconnecting or transport2.disconnected
    assert client.pending == 0


def test_next_request_sent_from_the_callback_reuses_the_connection() -> None:
    """Retries send from the response callback: the connection must already be free."""
    reactor, client = make_client()
    follow_up: list[Any] = []

    def send_next(response: Any) -> Any:
        follow_up.append(client(Request(b"GET", b"/again")))
        return response

    client(Request(b"GET", b"/first")).addCallback(send_next)
    proto, transport = accept(reactor)
    transport.clear()
    proto.dataReceived(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    assert follow_up and reactor.tcpClients == []
    assert transport.value().startswith(b"GET /again ")


def test_unencodable_request_fails_cleanly_and_keeps_the_connection() -> None:
    from l5d_twisted.errors import MeshError

    reactor, client = make_client()
    client(Request(b"GET", b"/1"))
    proto, transport = accept(reactor)
    proto.dataReceived(OK)
    transport.clear()
    bad = results(client(Request(b"GET", b"/2", Headers([(b"X-Bad", "str")]))))  # type: ignore[list-item]
    assert isinstance(bad[0].value, MeshError) and transport.value() == b""
    good = results(client(Request(b"GET", b"/3")))
    assert transport.value().startswith(b"GET /3 ") and reactor.tcpClients == []
    proto.dataReceived(OK)
    assert good[0].status == 200 and client.pending == 0


def test_a_connection_made_for_a_waiter_that_gave_up_is_pooled_not_leaked() -> None:
    # max_size=1: the first exchange breaks, the pool connects again for the waiter, and the
    # waiter is cancelled (e.g. its attempt timed out) while that connection is being made.
    reactor, client = make_client(max_size=1)
    first = results(client(Request(b"GET", b"/1")))
    second = client(Request(b"GET", b"/2"))
    second_results = results(second)
    proto, _ = accept(reactor)
    proto.connectionLost(Failure(ConnectionRefusedError()))
    assert isinstance(first[0].value, ConnectionReset)
    assert len(reactor.tcpClients) == 1  # connecting for the waiter
    second.cancel()
    assert isinstance(second_results[0].value, CancelledError)
    proto2, transport2 = accept(reactor)
    # the new connection went idle: the next request uses it instead of waiting forever
    third = results(client(Request(b"GET", b"/3")))
    assert reactor.tcpClients == []
    assert transport2.value().startswith(b"GET /3 ")
    proto2.dataReceived(OK)
    assert third[0].status == 200


def test_a_consumed_stream_is_refused_before_anything_is_written() -> None:
    reactor, client = make_client()
    body = StreamBody(None, None)
    body.discard()
    got = results(client(Request(b"POST", b"/up", Headers(), body)))
    proto, transport = accept(reactor)
    assert transport.value() == b""
    assert "already consumed" in got[0].value.message
    assert client.pending == 0
    follow = results(client(Request(b"GET", b"/next")))
    assert reactor.tcpClients == []  # the connection stayed usable
    assert transport.value().startswith(b"GET /next ")
    proto.dataReceived(OK)
    assert follow[0].status == 200


def test_a_connect_cancelled_by_the_caller_is_a_cancel_not_a_connect_failure() -> None:
    """Twisted fails a cancelled connect with ConnectingCancelledError, no CancelledError:
    the pool turned it into a ConnectionFailed (the endpoint's failure) when a client hung
    up while its request waited for the connection.  Its room goes to the next waiter."""
    reactor, client = make_client(max_size=1)
    first = client(Request(b"POST", b"/up", Headers(), StreamBody(None, None)))
    first_results = results(first)
    waiting = results(client(Request(b"GET", b"/2")))
    assert len(reactor.tcpClients) == 1  # one connect in progress, the second request waits
    first.cancel()
    assert isinstance(first_results[0].value, CancelledError)
    assert not isinstance(first_results[0].value, ConnectionFailed)
    assert reactor.connectors[0].stoppedConnecting  # the connect itself was stopped
    assert client.pending == 1  # only the waiter
    assert len(reactor.tcpClients) == 2  # the cancelled connect stays listed; one for the waiter
    reactor.tcpClients.pop(0)
    proto, transport = accept(reactor)
    assert transport.value().startswith(b"GET /2 ")
    proto.dataReceived(OK)
    assert waiting[0].status == 200 and client.pending == 0


def test_a_refused_or_timed_out_connect_fails_the_request_as_a_connect_failure() -> None:
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    _, _, factory, timeout, _ = reactor.tcpClients.pop(0)
    assert timeout == 1.0  # the client's connect timeout goes to connectTCP
    factory.clientConnectionFailed(reactor.connectors[0], Failure(ConnectionRefusedError()))
    assert isinstance(got[0].value, ConnectionFailed)
    assert "10.1.2.3:8080" in str(got[0].value)
    assert client.pending == 0 and client._pool.size == 0


def test_an_ip_address_is_connected_without_twisteds_endpoint_wrappers() -> None:
    """The transport's protocol is ours from the start: no wrapper per connection, and no
    extra call per read (issue 17: ~400 bytes per pooled connection)."""
    reactor, client = make_client()
    got = results(client(Request(b"GET", b"/")))
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    transport = StringTransport()
    factory.buildProtocol(None).makeConnection(transport)
    proto = transport.protocol  # type: ignore[attr-defined]
    assert type(proto).__name__ == "HttpClientProtocol"
    assert factory.buildProtocol(None) is None  # one connection per factory
    proto.dataReceived(OK)
    assert got[0].status == 200
