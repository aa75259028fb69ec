"""The HTTP wire end to end: real clients -> harness proxy (serve_http + EndpointClient) -> backend."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest
from http_wire_env import (
    Processes,
    Reader,
    Wire,
    connect,
    free_port,
    raw_exchange,
    read_response,
    wait_until,
)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    procs = Processes(tmp_path_factory.mktemp("wire"))
    try:
        yield Wire(procs)
    finally:
        procs.stop_all()


def inspect(body: bytes) -> dict:
    return json.loads(body)


# -- persistent connections and pipelining --------------------------------------------------


def test_keep_alive_reuses_client_and_upstream_connections(wire: Wire) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", wire.proxy_port, timeout=10)
    seen = []
    conn.request("GET", "/inspect")
    resp = conn.getresponse()
    seen.append(inspect(resp.read())["conn_id"])
    sock = conn.sock
    for _ in range(4):
        conn.request("GET", "/inspect", headers={"X-Test": "keepalive"})
        resp = conn.getresponse()
        assert resp.status == 200
        seen.append(inspect(resp.read())["conn_id"])
        assert conn.sock is sock, "the proxy closed a keep-alive client connection"
    conn.close()
    assert len(set(seen)) == 1, f"upstream connection not reused: {seen}"


def test_pipelined_requests_are_answered_in_order(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        sock.sendall(
            b"".join(b"GET /inspect?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
        )
        reader = Reader(sock)
        targets = [inspect(read_response(reader)[2])["target"] for _ in range(5)]
    assert targets == [f"/inspect?i={i}" for i in range(5)]


def test_absolute_form_becomes_origin_form_with_host(wire: Wire) -> None:
    status, _, body = raw_exchange(
        wire.proxy_port, b"GET http://hello.example:8080/inspect?q=1 HTTP/1.1\r\n\r\n"
    )
    seen = inspect(body)
    assert status == 200
    assert seen["target"] == "/inspect?q=1"
    assert ["Host", "hello.example:8080"] in seen["headers"]


def test_curl_through_http_proxy(wire: Wire) -> None:
    out = subprocess.run(
        ["curl", "-sS", "-i", "http://hello/inspect"],
        env={**os.environ, "http_proxy": f"http://127.0.0.1:{wire.proxy_port}", "no_proxy": ""},
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    assert out.startswith(b"HTTP/1.1 200")
    assert b'"target": "/inspect"' in out


# -- bodies -----------------------------------------------------------------------------------


def test_small_request_body_is_forwarded_with_content_length(wire: Wire) -> None:
    status, _, body = raw_exchange(
        wire.proxy_port,
        b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    )
    seen = inspect(body)
    assert status == 200 and seen["body"] == "hello world"
    assert ["Content-Length", "11"] in seen["headers"]


def test_large_request_body_streams_with_content_length(wire: Wire) -> None:
    data = os.urandom(300_000)
    conn = http.client.HTTPConnection("127.0.0.1", wire.proxy_port, timeout=10)
    conn.request("POST", "/echo", body=data)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == data


def test_chunked_request_with_trailers_reaches_backend(wire: Wire) -> None:
    request = (
        b"POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
    )
    status, _, body = raw_exchange(wire.proxy_port, request)
    seen = inspect(body)
    assert status == 200
    assert seen["body"] == "hello world"
    assert ["Transfer-Encoding", "chunked"] in seen["headers"]
    assert seen["trailers"] == [["X-Sum", "11"]]


def test_chunked_response_with_trailers_reaches_client(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        sock.sendall(b"GET /chunked?n=4 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, trailers = read_response(Reader(sock))
    assert status == 200
    assert headers["transfer-encoding"] == ["chunked"]
    assert body == b"chunk0;chunk1;chunk2;chunk3;"
    assert trailers == ["X-Trailer: done"]


def test_hop_by_hop_fields_are_removed(wire: Wire) -> None:
    request = (
        b"GET /inspect HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\n"
    )
    status, _, body = raw_exchange(wire.proxy_port, request)
    names = {k.lower() for k, _ in inspect(body)["headers"]}
    assert status == 200
    assert "x-end-to-end" in names
    for hop in (
        "connection",
        "x-private",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "proxy-authorization",
        "upgrade",
    ):
        assert hop not in names, hop


# -- bodiless responses, interim responses, 100-continue ---------------------------------------


def test_head_response_keeps_length_and_has_no_body(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"HEAD /gen?bytes=12345 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _, _ = read_response(reader, head_request=True)
        assert status == 200 and headers["content-length"] == ["12345"]
        sock.sendall(b"GET /inspect HTTP/1.1\r\nHost: x\r\n\r\n")  # still in sync
        status, _, body, _ = read_response(reader)
        assert status == 200 and inspect(body)["method"] == "GET"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(wire: Wire, code: int) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        status, headers, _, _ = read_response(reader)
        assert status == code
        assert "transfer-encoding" not in headers and "content-length" not in headers
        sock.sendall(b"GET /inspect HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(reader)[0] == 200


def test_interim_upstream_response_is_dropped(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /status?code=204&interim=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = reader.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 204"), head


def test_expect_100_continue_is_answered_by_the_proxy(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(
            b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert reader.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, _, body, _ = read_response(reader)
    seen = inspect(body)
    assert status == 200 and seen["body"] == "hello"
    assert "expect" not in {k.lower() for k, _ in seen["headers"]}


def test_curl_large_post_with_expect(wire: Wire) -> None:
    payload = b"z" * 2_000_000
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--data-binary",
            "@-",
            "-H",
            "Expect: 100-continue",
            f"http://127.0.0.1:{wire.proxy_port}/sink",
        ],
        input=payload,
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    assert json.loads(out)["received"] == len(payload)


# -- HTTP/1.0 ---------------------------------------------------------------------------------


def test_http10_client_gets_connection_closed(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /inspect HTTP/1.0\r\nHost: x\r\n\r\n")
        status, headers, body, _ = read_response(reader)
        assert status == 200 and inspect(body)["method"] == "GET"
        assert reader.closed()


def test_http10_keep_alive_when_asked(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(b"GET /inspect HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _, _ = read_response(reader)
            assert status == 200
            assert headers["connection"] == ["keep-alive"]


def test_http10_unknown_length_is_close_delimited(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /chunked?n=2 HTTP/1.0\r\nHost: x\r\n\r\n")
        head = reader.read_until(b"\r\n\r\n")
        assert b"chunked" not in head.lower() and b"content-length" not in head.lower()
        assert reader.read_to_eof() == b"chunk0;chunk1;"


# -- limits and malformed input ---------------------------------------------------------------


def assert_refused(port: int, request: bytes, status: int) -> None:
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(request)
        got, headers, _, _ = read_response(reader)
        assert got == status, (request[:80], got)
        assert headers.get("connection") == ["close"]
        assert reader.closed()


def test_long_request_line_gets_414(wire: Wire) -> None:
    assert_refused(wire.proxy_port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_large_headers_get_431(wire: Wire) -> None:
    assert_refused(
        wire.proxy_port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431
    )


def test_many_headers_get_431(wire: Wire) -> None:
    fields = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(200))
    assert_refused(wire.proxy_port, b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n", 431)


def test_garbage_gets_400_and_close(wire: Wire) -> None:
    assert_refused(
        wire.proxy_port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400
    )


SMUGGLING = {
    "cl-and-te": (
        b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two-different-cl": b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-list": b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
    "te-not-chunked-last": b"POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te-gzip-only": b"POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    "obs-fold": b"GET /inspect HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "space-before-colon": b"GET /inspect HTTP/1.1\r\nHost : x\r\n\r\n",
    "bad-chunk-size": (
        b"POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
def test_smuggling_shapes_are_refused(wire: Wire, shape: str) -> None:
    before = wire.backend_stats()["requests"]
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(SMUGGLING[shape])
        status, _, _, _ = read_response(reader)
        assert status in (400, 502), status  # 502 when the body broke after forwarding began
        assert reader.closed()
    if shape != "bad-chunk-size":
        assert wire.backend_stats()["requests"] == before + 1  # only the stats request itself


# -- failures -------------------------------------------------------------------------------------


def test_connection_refused_is_retryable_502(wire: Wire) -> None:
    port, _ = wire.start_proxy(upstream=f"127.0.0.1:{free_port()}")
    status, headers, body = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 502
    assert headers["l5d-retryable"] == ["true"]
    assert "unable to connect" in unquote(headers["l5d-err"][0])
    assert body.startswith(b"unable to connect")


def test_backend_reset_mid_response_closes_client_connection(wire: Wire) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", wire.proxy_port, timeout=10)
    conn.request("GET", "/reset?after=5000")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-length") == "1000000"
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        resp.read()


def test_garbage_upstream_response_is_502(wire: Wire) -> None:
    target = "/raw?resp=" + quote("NOT HTTP AT ALL\r\n\r\n")
    status, headers, _ = raw_exchange(
        wire.proxy_port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode()
    )
    assert status == 502
    assert "l5d-err" in headers


def test_upstream_close_is_not_reused(wire: Wire) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", wire.proxy_port, timeout=10)
    conn.request("GET", "/inspect")
    first = inspect(conn.getresponse().read())["conn_id"]
    conn.request("GET", "/close")
    assert conn.getresponse().read() == b"bye\n"
    conn.request("GET", "/inspect")
    resp = conn.getresponse()
    assert resp.status == 200
    assert inspect(resp.read())["conn_id"] != first


def test_early_upstream_answer_to_upload(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        reader = Reader(sock)
        sock.sendall(
            b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000
        )
        status, _, body, _ = read_response(reader)
    assert status == 413 and body == b"too large\n"


def test_client_disconnect_cancels_upstream_request(wire: Wire) -> None:
    sock = connect(wire.proxy_port)
    sock.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(
        lambda: wire.backend_stats()["hangs"] == 1, 10, what="the backend to hold the request"
    )
    sock.close()
    wait_until(
        lambda: wire.backend_stats()["hangs"] == 0, 10, what="the upstream request to be aborted"
    )


def test_max_concurrent_requests_gives_503(wire: Wire) -> None:
    port, _ = wire.start_proxy("--max-concurrent", "1")
    with connect(port) as hanging:
        hanging.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: wire.backend_stats()["hangs"] >= 1, 10, what="the hang to arrive")
        status, headers, _ = raw_exchange(port, b"GET /inspect HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503
        assert headers["l5d-retryable"] == ["true"]
    wait_until(lambda: wire.backend_stats()["hangs"] == 0, 10, what="the hang to go away")


def test_idle_and_header_read_timeouts(wire: Wire) -> None:
    port, _ = wire.start_proxy("--idle-timeout", "0.5", "--header-timeout", "0.5")
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /inspect HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(reader)[0] == 200
        start = time.monotonic()
        assert reader.closed()
        assert 0.3 < time.monotonic() - start < 5
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /inspect HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        status, headers, _, _ = read_response(reader)
        assert status == 408
        assert reader.closed()


def test_pipelined_post_then_get(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        sock.sendall(
            b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /inspect?last HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = Reader(sock)
        seen = [inspect(read_response(reader)[2]) for _ in range(3)]
    assert [s["body"] for s in seen] == ["abc", "de", ""]
    assert seen[2]["target"] == "/inspect?last"


def test_upgrade_request_is_forwarded_as_plain_request(wire: Wire) -> None:
    with connect(wire.proxy_port) as sock:
        sock.sendall(
            b"GET /inspect?ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"GET /inspect?after HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = Reader(sock)
        first = inspect(read_response(reader)[2])
        second = inspect(read_response(reader)[2])
    assert first["target"] == "/inspect?ws"
    assert "upgrade" not in {k.lower() for k, _ in first["headers"]}
    assert second["target"] == "/inspect?after"


def test_upgrade_request_with_body_is_refused(wire: Wire) -> None:
    request = b"POST /inspect HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 40\r\n\r\n"
    assert_refused(wire.proxy_port, request + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400)


def test_sigterm_drains_in_flight_requests(wire: Wire) -> None:
    port, proxy = wire.start_proxy()
    with connect(port) as busy, connect(port) as idle:
        slow_before = wire.backend_stats()["slow"]
        busy.sendall(b"GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(
            lambda: wire.backend_stats()["slow"] > slow_before, 5, what="the slow request to arrive"
        )
        proxy.terminate()
        idle_reader = Reader(idle)
        assert idle_reader.closed(), "an idle connection stays open during drain"
        status, headers, body, _ = read_response(Reader(busy))
        assert status == 200 and body == b"slow\n"
        assert headers["connection"] == ["close"]
    assert proxy.wait(10) == 0
