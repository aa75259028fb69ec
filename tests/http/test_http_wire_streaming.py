"""Big bodies stream through the proxy with bounded memory (1 GB each way)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from http_wire_env import (
    Processes,
    Reader,
    Wire,
    connect,
    read_response,
    rss_kb,
    rss_peak_kb,
    wait_until,
)

GB = 1 << 30
RSS_GROWTH_LIMIT_KB = 64 * 1024  # what the proxy may grow by while moving a gigabyte


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    procs = Processes(tmp_path_factory.mktemp("stream"))
    try:
        yield Wire(procs)
    finally:
        procs.stop_all()


def drain(sock: socket.socket, expected: int) -> int:
    """Read exactly ``expected`` body bytes (after the head) without keeping them."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    while total < expected:
        n = sock.recv_into(view, min(len(buf), expected - total))
        if n == 0:
            break
        total += n
    return total


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


@pytest.mark.slow
def test_one_gigabyte_download_streams_with_bounded_memory(wire: Wire) -> None:
    baseline = rss_kb(wire.proxy.pid)
    start = time.monotonic()
    with connect(wire.proxy_port, timeout=60) as sock:
        sock.sendall(b"GET /gen?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % GB)
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % GB in head
        got = len(rest) + drain(sock, GB - len(rest))
    elapsed = time.monotonic() - start
    assert got == GB
    growth = rss_peak_kb(wire.proxy.pid) - baseline
    print(
        f"1 GB download in {elapsed:.1f}s ({GB / elapsed / 1e6:.0f} MB/s), proxy peak RSS growth {growth} kB"
    )
    assert growth < RSS_GROWTH_LIMIT_KB


@pytest.mark.slow
def test_one_gigabyte_upload_streams_with_bounded_memory(wire: Wire) -> None:
    baseline = rss_kb(wire.proxy.pid)
    block = b"u" * (1 << 20)
    start = time.monotonic()
    with connect(wire.proxy_port, timeout=60) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GB)
        for _ in range(GB // len(block)):
            sock.sendall(block)
        status, _, body, _ = read_response(Reader(sock))
    elapsed = time.monotonic() - start
    assert status == 200 and json.loads(body)["received"] == GB
    growth = rss_peak_kb(wire.proxy.pid) - baseline
    print(
        f"1 GB upload in {elapsed:.1f}s ({GB / elapsed / 1e6:.0f} MB/s), proxy peak RSS growth {growth} kB"
    )
    assert growth < RSS_GROWTH_LIMIT_KB


def test_chunked_upload_and_download_of_many_chunks(wire: Wire) -> None:
    size = 64 << 20
    block = b"c" * 65536
    with connect(wire.proxy_port, timeout=60) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(size // len(block)):
            sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
        sock.sendall(b"0\r\nX-Done: yes\r\n\r\n")
        reader = Reader(sock)
        status, _, body, _ = read_response(reader)
        assert status == 200
        result = json.loads(body)
        assert result["received"] == size and result["trailers"] == [["X-Done", "yes"]]
        sock.sendall(b"GET /gen?bytes=%d&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        status, headers, body, _ = read_response(reader)
        assert status == 200 and headers["transfer-encoding"] == ["chunked"] and len(body) == size


def test_slow_reader_pauses_the_upstream(wire: Wire) -> None:
    """A client that stops reading must not make the proxy buffer the whole response."""
    baseline = rss_kb(wire.proxy.pid)
    size = 256 << 20
    with connect(wire.proxy_port, timeout=60) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /gen?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        head, rest = read_head(sock)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # not reading: let buffers fill everywhere
            time.sleep(0.1)
        assert rss_kb(wire.proxy.pid) - baseline < RSS_GROWTH_LIMIT_KB
        assert len(rest) + drain(sock, size - len(rest)) == size


def test_client_leaving_mid_download_aborts_the_upstream(wire: Wire) -> None:
    sock = connect(wire.proxy_port)
    sock.sendall(b"GET /gen?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % GB)
    read_head(sock)
    assert drain(sock, 1 << 20) == 1 << 20
    wait_until(
        lambda: wire.backend_stats()["streaming"] == 1, 10, what="the download to be in progress"
    )
    sock.close()
    wait_until(
        lambda: wire.backend_stats()["streaming"] == 0,
        10,
        what="the upstream transfer to be aborted",
    )


def test_client_leaving_mid_upload_aborts_the_upstream(wire: Wire) -> None:
    sock = connect(wire.proxy_port)
    sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GB)
    sock.sendall(b"u" * (4 << 20))
    wait_until(
        lambda: wire.backend_stats()["streaming"] == 1, 10, what="the upload to be in progress"
    )
    sock.close()
    wait_until(
        lambda: wire.backend_stats()["streaming"] == 0,
        10,
        what="the upstream transfer to be aborted",
    )
