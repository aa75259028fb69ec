"""Issue 10's findings, each replayed against a real proxy process with two real backends.

The attacks here are the ones that used to wreck the proxy: a test that leaves it unhealthy
gets it replaced before the next (``MeshHolder``), so one failure does not hide another.
The attacks end with ``check_health`` (and every test starts from a proxy that passed it):
the proxy is alive, answers a probe within 2 s, stays under 150 MB RSS and 400 open files,
and never dialled the canary.
A 4xx or 5xx answer to garbage is fine; a crash, a hang, unbounded memory, or dialling an
address the operator did not configure is not.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse

import pytest
from fuzz_mesh import PROBE_DEADLINE_S, RSS_LIMIT_MB, FuzzMesh, exchange, request
from l5d_testing import wait_until

pytestmark = pytest.mark.slow


def metric(mesh: FuzzMesh, name: str) -> float:
    return float(mesh.metrics().get(name, 0))


# 1. union override dtabs: bounded work, a clean 400, no memory kept


def test_union_dtab_headers_with_new_names_are_refused_in_bounded_time_and_memory(
    mesh: FuzzMesh,
) -> None:
    for i in range(10):
        dtab = f"/svc => /svc/a{i} & /svc/b{i}"
        ex = exchange(
            mesh.port, request("GET", "/inspect", "a", [("l5d-dtab", dtab)]), total=10, idle=10
        )
        assert ex.responses, f"no answer to l5d-dtab {dtab!r} in {ex.seconds:.1f}s"
        assert ex.seconds < PROBE_DEADLINE_S, f"l5d-dtab {dtab!r} took {ex.seconds:.2f}s"
        assert ex.responses[0].status == 400, (
            dtab,
            ex.responses[0].status,
            ex.responses[0].body[:200],
        )
        assert mesh.rss_mb() < RSS_LIMIT_MB, f"RSS {mesh.rss_mb():.0f} MB after {i + 1} union dtabs"
    mesh.check_health("10 union dtab headers")


def test_delegator_json_with_a_union_dtab_answers_in_bounded_time_and_memory(
    mesh: FuzzMesh,
) -> None:
    for i in range(5):
        query = urllib.parse.urlencode(
            {"router": "out", "path": "/svc/a", "dtab": f"/svc => /svc/a{i} & /svc/b{i}"}
        )
        ex = exchange(
            mesh.admin_port,
            request("GET", f"/delegator.json?{query}", "127.0.0.1"),
            total=10,
            idle=10,
        )
        assert ex.responses, f"no answer from /delegator.json in {ex.seconds:.1f}s"
        assert ex.seconds < PROBE_DEADLINE_S, f"/delegator.json took {ex.seconds:.2f}s"
        assert mesh.rss_mb() < RSS_LIMIT_MB, (
            f"RSS {mesh.rss_mb():.0f} MB after {i + 1} delegator calls"
        )
    mesh.check_health("5 /delegator.json union dtabs")


# 2. trust boundaries: a request dtab reaches only what the operator routes to


@pytest.mark.parametrize(
    "builtin", ["/$/inet/127.0.0.1/{port}", "/$/io.buoyant.rinet/{port}/127.0.0.1"]
)
@pytest.mark.parametrize("where", ["admin", "canary", "proxy", "backend"])
def test_a_request_dtab_cannot_dial_an_address_of_its_choosing(
    mesh: FuzzMesh, builtin: str, where: str
) -> None:
    # "backend": b's own backend, but reached by an address the client chose, not by a name
    port = {
        "admin": mesh.admin_port,
        "canary": mesh.canary.port,
        "proxy": mesh.port,
        "backend": mesh.backend_ports[1],
    }[where]
    dtab = "/svc/a => " + builtin.format(port=port)
    ex = exchange(
        mesh.port, request("GET", "/config.json", "a", [("l5d-dtab", dtab)]), total=10, idle=10
    )
    mesh.assert_not_admin(ex, dtab)
    mesh.assert_served_by_configured_backends(ex, dtab)
    assert ex.responses, f"no answer to l5d-dtab {dtab!r}"
    resp = ex.responses[0]
    assert resp.status == 403, (dtab, resp.status, resp.body[:200])
    assert resp.header("l5d-err"), "a refused request dtab says why in l5d-err"
    assert ex.seconds < PROBE_DEADLINE_S
    mesh.check_health(dtab)


def test_a_configured_routing_loop_is_cut_without_spending_a_connection_per_hop(
    mesh: FuzzMesh,
) -> None:
    before = mesh.fds()
    for _ in range(3):
        ex = exchange(mesh.port, request("GET", "/inspect", "loop"), total=10, idle=10)
        assert ex.responses, "no answer to a request the operator routed back to the proxy"
        assert 400 <= ex.responses[0].status < 600
        assert ex.seconds < PROBE_DEADLINE_S
    # a few hops' worth of sockets, not hundreds (it used to be ~900 per loop)
    assert mesh.fds() - before < 100, f"open files went from {before} to {mesh.fds()}"
    mesh.check_health("3 looping requests")


# 3. Host, framing, and client-caused failures


def test_absolute_form_target_replaces_the_host_header(mesh: FuzzMesh) -> None:
    ex = exchange(mesh.port, request("GET", "http://a/inspect", "b"))
    assert ex.responses and ex.responses[0].status == 200
    seen = ex.responses[0].body.decode()
    assert '["Host", "a"]' in seen and '["Host", "b"]' not in seen, seen
    assert '["l5d-dst-service", "/svc/a"]' in seen, seen


def test_two_host_headers_are_a_400_and_never_forwarded(mesh: FuzzMesh) -> None:
    for hosts in (("a", "b"), ("a", "a")):
        ex = exchange(
            mesh.port,
            b"GET /inspect?twohosts HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n\r\n"
            % (hosts[0].encode(), hosts[1].encode()),
        )
        assert ex.responses, hosts
        assert ex.responses[0].status == 400, (
            hosts,
            ex.responses[0].status,
            ex.responses[0].body[:200],
        )
    mesh.check_health("two Host headers")


BAD_CHUNKS = [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"-3\r\nabc\r\n0\r\n\r\n",
    b"3 3\r\nabc\r\n0\r\n\r\n",
    b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    b"3\r\nabcdef\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("chunks", BAD_CHUNKS, ids=lambda c: repr(c[:8]))
def test_a_bad_chunk_size_is_a_400(mesh: FuzzMesh, chunks: bytes) -> None:
    ex = exchange(
        mesh.port, b"POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    assert ex.responses, chunks
    assert ex.responses[0].status == 400, (
        chunks,
        ex.responses[0].status,
        ex.responses[0].body[:200],
    )


def test_client_caused_failures_do_not_count_against_the_endpoint(mesh: FuzzMesh) -> None:
    client, service = "rt/out/client/#/io.l5d.fs/a", "rt/out/service/svc/a"
    names = (
        f"{client}/failure_accrual/removals",
        f"{client}/failures",
        f"{client}/connect_failures",
        f"{service}/failures",
    )
    server_errors = f"rt/out/server/127.0.0.1/{mesh.port}/client_errors"
    before = {name: metric(mesh, name) for name in (*names, server_errors)}
    for i in range(12):
        bad = BAD_CHUNKS[i % len(BAD_CHUNKS)]
        exchange(
            mesh.port, b"POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + bad
        )
    # the backend may still be reading one of those: "reached" below would then be true too early
    wait_for_upload_to_reach(mesh, "a", streaming=False)
    for _ in range(4):  # clients gone mid-upload
        with socket.create_connection(("127.0.0.1", mesh.port)) as s:
            s.sendall(
                b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000
            )
            wait_for_upload_to_reach(mesh, "a")
    for _ in range(4):  # clients gone at once, mostly while the proxy connects upstream
        with socket.create_connection(("127.0.0.1", mesh.port)) as s:
            s.sendall(
                b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000
            )
    # the proxy's own record that it finished all 20 (each a client error at its server)
    wait_until(
        lambda: metric(mesh, server_errors) >= before[server_errors] + 20,
        timeout=10,
        what="the proxy to finish the 20 requests",
    )
    mesh.check_health("12 bad chunks and 8 abandoned uploads")
    after = {name: metric(mesh, name) for name in names}
    before = {name: before[name] for name in names}
    assert after == before, (
        f"a client's mistakes counted against the endpoint or service: {before} -> {after}"
    )


def wait_for_upload_to_reach(mesh: FuzzMesh, service: str, streaming: bool = True) -> None:
    """Poll the backend until the proxy is streaming an upload to it (``streaming`` False:
    until none is)."""
    port = mesh.backend_ports[0 if service == "a" else 1]

    def reached() -> bool:
        ex = exchange(port, request("GET", "/stats", "x", [("Connection", "close")]))
        return (
            bool(ex.responses) and (json.loads(ex.responses[0].body)["streaming"] > 0) == streaming
        )

    wait_until(
        reached,
        timeout=5,
        interval=0.01,
        what="the upload to reach the backend" if streaming else "the backend's uploads to end",
    )


# 5. bounded resources: hung backends, slow uploads, idle connections, huge headers


DEFAULT_TOTAL_TIMEOUT_S = 15  # service.totalTimeoutMs's default


def test_hung_requests_are_timed_out_by_default_and_do_not_starve_other_traffic(
    mesh: FuzzMesh,
) -> None:
    socks = []
    try:
        started = time.monotonic()
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", mesh.port))
            s.sendall(request("GET", f"/hang?{i}", "a"))
            socks.append(s)
        mesh.check_health("30 requests to a backend that never answers")
        answers = []
        for s in socks:
            s.settimeout(max(0.1, started + DEFAULT_TOTAL_TIMEOUT_S + 5 - time.monotonic()))
            try:
                answers.append(s.recv(4096))
            except TimeoutError:
                answers.append(b"")
        took = time.monotonic() - started
        unanswered = sum(1 for a in answers if not a.startswith(b"HTTP/1.1 5"))
        assert unanswered == 0, (
            f"{unanswered} of 30 hung requests had no 5xx after {took:.0f}s (no default total timeout?)"
        )
        mesh.check_health("30 timed-out requests")
    finally:
        for s in socks:
            s.close()


def test_a_trickling_upload_is_cut(mesh: FuzzMesh) -> None:
    """One 5-byte chunk a second: 5 B/s, under any sane minimum rate; the proxy ends it."""
    with socket.create_connection(("127.0.0.1", mesh.port)) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        started = time.monotonic()
        s.settimeout(1.0)
        answer = b""
        while time.monotonic() - started < 15:
            try:
                s.sendall(b"5\r\nhello\r\n")
                data = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            answer += data
            if not data or b"\r\n\r\n" in answer:
                break
        took = time.monotonic() - started
    assert took < 12, f"a 5 B/s upload was still open after {took:.0f}s"
    assert not answer or answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 400", b"HTTP/1.1 413")), (
        answer[:200]
    )
    mesh.check_health("a trickling upload")


class HugeHeaderBackend:
    """Answers every request with a response head of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.size = size
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: ")
                block = b"y" * 65536
                for _ in range(self.size // len(block)):
                    conn.sendall(block)
                conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.stopped = True
        self.sock.close()


def test_a_huge_response_header_is_refused_without_buffering_it(mesh: FuzzMesh) -> None:
    big = HugeHeaderBackend(30 * 1024 * 1024)
    try:
        (mesh.disco / "huge").write_text(f"127.0.0.1 {big.port}\n")
        before = mesh.rss_mb()
        ex = exchange(mesh.port, request("GET", "/", "huge"), total=20, idle=20)
        assert ex.responses, "no answer when a backend sent a 30 MB header"
        assert ex.responses[0].status >= 500
        assert mesh.rss_mb() - before < 40, (
            f"RSS {before:.0f} -> {mesh.rss_mb():.0f} MB for one 30 MB header"
        )
        mesh.check_health("a 30 MB response header")
    finally:
        big.close()


# 6. client-driven metric cardinality


def test_random_hosts_do_not_grow_metric_scopes_without_bound(mesh: FuzzMesh) -> None:
    for batch_no in range(
        3
    ):  # 1,500 distinct Host values (the default cap is 1,000), 500 pipelined per connection
        batch = b"".join(request("GET", "/", f"h{batch_no}x{i:04d}") for i in range(500))
        ex = exchange(mesh.port, batch, expect=500, total=30, idle=5)
        assert len(ex.responses) == 500
    started = time.monotonic()
    ex = exchange(
        mesh.admin_port, request("GET", "/admin/metrics/prometheus", "127.0.0.1"), total=30, idle=30
    )
    scrape_s = time.monotonic() - started
    assert ex.responses and ex.responses[0].status == 200
    text = ex.responses[0].body.decode()
    services = set(re.findall(r'service="([^"]*)"', text))
    # the cap (1,000 scopes by default) plus the overflow bucket and the probes' services
    assert len(services) <= 1010, (
        f"{len(services)} service scopes ({len(text.splitlines())} lines) after 1,500 random Hosts"
    )
    assert scrape_s < PROBE_DEADLINE_S, f"a scrape took {scrape_s:.2f}s"
    mesh.check_health("1,500 random Hosts")


# 8. the low ones


def test_http_2_0_on_an_http_1_request_line_is_refused(mesh: FuzzMesh) -> None:
    ex = exchange(mesh.port, b"GET /inspect HTTP/2.0\r\nHost: a\r\n\r\n")
    assert ex.responses
    assert ex.responses[0].status in (400, 505), (
        ex.responses[0].status,
        ex.responses[0].body[:200],
    )


def test_pipelined_requests_crossing_a_64k_read_are_all_answered(mesh: FuzzMesh) -> None:
    n = 70
    batch = b"".join(request("GET", f"/inspect?n={i}&pad={'x' * 1000}", "a") for i in range(n))
    ex = exchange(mesh.port, batch, expect=n, total=10)
    assert len(ex.responses) == n, f"{len(ex.responses)} of {n} pipelined requests answered"
    for i, resp in enumerate(ex.responses):
        assert resp.status == 200 and f"/inspect?n={i}&".encode() in resp.body, (i, resp.status)


def test_metrics_json_with_a_long_q_answers(mesh: FuzzMesh) -> None:
    for size in (5_000, 20_000, 100_000):
        ex = exchange(
            mesh.admin_port,
            request("GET", "/admin/metrics.json?q=" + "a" * size, "127.0.0.1"),
            total=5,
        )
        assert ex.responses, f"metrics.json with a {size}-byte q closed without an answer"
    mesh.check_health("long metrics.json queries")


@pytest.mark.parametrize("page", ["/", "/delegator", "/requests"])
def test_admin_pages_carry_a_content_security_policy(mesh: FuzzMesh, page: str) -> None:
    ex = exchange(mesh.admin_port, request("GET", page, "127.0.0.1"), total=5)
    assert ex.responses and ex.responses[0].status == 200, ex.raw[:200]
    assert ex.responses[0].header("content-security-policy"), (
        f"{page} has no Content-Security-Policy"
    )
