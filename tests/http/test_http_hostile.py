"""Hostile or malformed requests at the HTTP server and client (issue 10, findings 3 and 8).

Driven with StringTransport and a Clock; the end-to-end reproductions through a real proxy
process are in ``test_http_hostile_wire.py``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from l5d_twisted.errors import ClientDisconnected, MalformedRequestBody
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.client import EndpointClient, HttpClientProtocol
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.pool import PoolSettings
from l5d_twisted.http.server import HttpServer, ServerSettings
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.identifiers.header_token import HeaderTokenIdentifier
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.path import Path
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.stats import NULL_STATS


def connection(service: Any, **settings: Any) -> tuple[Clock, Any, StringTransport]:
    clock = Clock()
    server = HttpServer(clock, FunctionService(service), ServerSettings(**settings), NULL_STATS)
    proto = server.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return clock, proto, transport


def ok(text: bytes = b"ok") -> Response:
    return Response(200, Headers(), BufferedBody(text))


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Deferred[Response]:
        self.requests.append(request)
        return succeed(ok())


# -- Host from an absolute-form target (RFC 9112 §3.2.2) ---------------------------------


def test_absolute_form_target_replaces_the_host_header() -> None:
    """Routed as hello and forwarded as hello: the identifier and the next hop agree."""
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET http://hello/x HTTP/1.1\r\nHost: world\r\nX-A: 1\r\n\r\n")
    [request] = seen.requests
    assert request.headers.get_all(b"host") == [b"hello"]
    assert request.headers.items()[0] == (b"Host", b"hello")  # where the client put it
    identified = HeaderTokenIdentifier(Path.read("/svc"), "Host").identify(request)
    assert identified.path == Path.read("/svc/hello")  # type: ignore[union-attr]
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_absolute_form_target_without_host_header_gets_one() -> None:
    seen = Recorder()
    _, proto, _ = connection(seen)
    proto.dataReceived(b"GET http://hello:8080?q=/a HTTP/1.1\r\nX-A: 1\r\n\r\n")
    assert seen.requests[0].headers.items()[0] == (b"Host", b"hello:8080")


def test_absolute_form_target_without_authority_is_refused() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET http:///x HTTP/1.1\r\nHost: world\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ") and seen.requests == []


def test_absolute_form_target_with_userinfo_is_refused() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET http://user@hello/x HTTP/1.1\r\nHost: world\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ") and seen.requests == []


def test_client_writes_host_from_an_absolute_form_target() -> None:
    """Whatever Host a layer left on the request, the wire says the target's authority."""
    client = EndpointClient(Clock(), Address("127.0.0.1", 9), PoolSettings(), NULL_STATS)
    proto = HttpClientProtocol(client)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.send(Request(b"GET", b"http://hello/x?y", Headers([(b"X-A", b"1"), (b"Host", b"world")])))
    head = transport.value().split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"GET /x?y HTTP/1.1"
    assert head[1] == b"Host: hello"
    assert b"Host: world" not in head and head.count(b"Host: hello") == 1


# -- two Host headers, unsupported versions -----------------------------------------------


def test_two_host_headers_are_refused_with_400() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: hello\r\nhost: world\r\n\r\n")
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 400 ") and b"more%20than%20one%20Host" in out
    assert seen.requests == [] and transport.disconnecting


def test_request_line_with_http_2_0_gets_505() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET / HTTP/2.0\r\nHost: hello\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 505 ") and seen.requests == []
    assert transport.disconnecting


def test_request_line_with_http_0_9_gets_505() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET / HTTP/0.9\r\nHost: hello\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 505 ") and seen.requests == []


def test_http_1_0_and_1_1_are_still_served() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(
        b"GET / HTTP/1.0\r\nHost: hello\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: hello\r\n\r\n"
    )
    assert [r.version for r in seen.requests] == [b"1.0", b"1.1"]
    assert transport.value().count(b"HTTP/1.1 200 ") == 2


# -- bad chunk sizes: 400, and the client's fault ---------------------------------------


class BodyReader:
    """A service that reads the whole request body (as forwarding does) before answering."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def __call__(self, request: Request) -> Deferred[Response]:
        assert isinstance(request.body, StreamBody)
        d = request.body.read_all()

        def failed(f: Failure) -> Failure:
            self.errors.append(f.value)
            return f

        return d.addCallbacks(lambda body: ok(body.data), failed)


def test_bad_chunk_size_after_dispatch_is_400_and_a_client_fault() -> None:
    reader = BodyReader()
    _, proto, transport = connection(reader)
    proto.dataReceived(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    proto.dataReceived(b"zz\r\nxx\r\n0\r\n\r\n")
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 400 "), out[:80]
    assert [type(e) for e in reader.errors] == [MalformedRequestBody]
    assert transport.disconnecting


def test_client_gone_mid_upload_is_a_client_fault() -> None:
    reader = BodyReader()
    _, proto, _ = connection(reader)
    proto.dataReceived(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    proto.connectionLost(Failure(ConnectionResetError()))
    assert [type(e) for e in reader.errors] == [ClientDisconnected]


def test_client_fails_the_exchange_with_the_clients_fault_not_a_reset() -> None:
    """The upstream exchange of a body the client broke fails with that error (not 502)."""
    client = EndpointClient(Clock(), Address("127.0.0.1", 9), PoolSettings(), NULL_STATS)
    proto = HttpClientProtocol(client)
    transport = StringTransport()
    proto.makeConnection(transport)
    body = StreamBody(None, None)
    outcomes: list[Any] = []
    proto.send(Request(b"POST", b"/up", Headers([(b"Host", b"w")]), body)).addBoth(outcomes.append)
    body.write(b"hello")
    body.fail(MalformedRequestBody("bad chunk size"))
    assert len(outcomes) == 1 and isinstance(outcomes[0], Failure)
    assert isinstance(outcomes[0].value, MalformedRequestBody)
    assert not proto.reusable  # the upstream connection is dropped, never reused


# -- pipelined requests crossing reads ---------------------------------------------------


def test_pipelined_requests_crossing_64k_reads_are_all_answered() -> None:
    """A head that began late in one read was measured by the whole read: a spurious 431."""
    _, proto, transport = connection(lambda r: succeed(ok()))
    one = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"
    data = one * 1000
    for i in range(0, len(data), 65536):
        proto.dataReceived(data[i : i + 65536])
    out = transport.value()
    assert out.count(b"HTTP/1.1 200 ") == 1000
    assert b"431" not in out and not transport.disconnecting


def test_one_head_larger_than_the_limit_across_reads_is_still_431() -> None:
    seen = Recorder()
    _, proto, transport = connection(seen)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nX-Big: ")
    for _ in range(20):
        proto.dataReceived(b"b" * 1024)
        if transport.disconnecting:
            break
    out = transport.value()
    assert out.count(b"HTTP/1.1 200 ") == 1 and b"HTTP/1.1 431 " in out
    assert len(seen.requests) == 1
