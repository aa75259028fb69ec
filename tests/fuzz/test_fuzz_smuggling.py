"""Request smuggling and malformed framing against a real proxy with real backends.

Two parts: the byte soup of ``tests/http/test_http_server_fuzz.py`` (its ``PIECES``, in
memory there) sent over raw sockets to a running proxy; and the classic desync shapes
(CL.TE, TE.CL, obfuscated TE, duplicate CL, hop-by-hop tricks), each carrying a smuggled
request in its body.  After each attack, probes on fresh connections must get their own
answers: a backend that read part of a body as a request would answer the wrong one.
"""

from __future__ import annotations

import json
import sys

import pytest
from fuzz_mesh import FUZZ_SETTINGS, FuzzMesh, exchange
from hypothesis import given, settings
from hypothesis import strategies as st
from l5d_testing import REPO

sys.path.insert(0, str(REPO / "tests" / "http"))
from test_http_server_fuzz import PIECES  # noqa: E402  (the in-memory fuzz test's vocabulary)

pytestmark = pytest.mark.slow

SMUGGLED = b"GET /inspect?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n"


def assert_no_desync(mesh: FuzzMesh, context: object) -> None:
    """Probes to the attacked service (``a``) on fresh connections get their own answers."""
    for _ in range(2):
        problem = mesh.probe_once("a")
        assert problem is None, f"{problem} after {context!r}"
    mesh.check_health(context)


def test_byte_soup_never_breaks_the_proxy(mesh: FuzzMesh) -> None:
    @settings(FUZZ_SETTINGS, max_examples=80)
    @given(
        pieces=st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=20)), max_size=14),
        split=st.integers(min_value=0, max_value=64),
    )
    def attack(pieces: list[bytes], split: int) -> None:
        data = b"".join(pieces)
        ex = exchange(mesh.port, data, split=split, expect=0, idle=0.25, total=2)
        assert ex.raw == b"" or ex.raw.startswith(b"HTTP/1.1 "), (
            f"not an HTTP/1.1 answer: {ex.raw[:120]!r}"
        )
        assert b"smuggled" not in ex.raw
        assert_no_desync(mesh, data)

    attack()


def framed(headers: bytes, body: bytes) -> bytes:
    return b"POST /inspect?attack=1 HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n" + body


CHUNKED_THEN_SMUGGLED = b"0\r\n\r\n" + SMUGGLED
N = len(CHUNKED_THEN_SMUGGLED)
CASES = {
    "cl.te": framed(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te.cl": framed(
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ),
    "te-space-before-colon": framed(
        b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-tab": framed(
        b"Transfer-Encoding:\tchunked\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-xchunked": framed(
        b"Transfer-Encoding: xchunked\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-chunked-identity": framed(
        b"Transfer-Encoding: chunked, identity\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-identity-chunked": framed(
        b"Transfer-Encoding: identity, chunked\r\n", CHUNKED_THEN_SMUGGLED
    ),
    "te-twice": framed(
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\nContent-Length: %d\r\n" % N,
        CHUNKED_THEN_SMUGGLED,
    ),
    "te-obs-fold": framed(
        b"Transfer-Encoding:\r\n chunked\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-uppercase": framed(
        b"Transfer-Encoding: CHUNKED\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-underscore": framed(
        b"Transfer_Encoding: chunked\r\nContent-Length: %d\r\n" % N, CHUNKED_THEN_SMUGGLED
    ),
    "te-in-http10": b"POST /inspect?attack=1 HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    + CHUNKED_THEN_SMUGGLED,
    "cl-twice-differ": framed(
        b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED
    ),
    "cl-list": framed(b"Content-Length: 0, %d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-plus": framed(b"Content-Length: +%d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-space-before-colon": framed(b"Content-Length : %d\r\n" % len(SMUGGLED), SMUGGLED),
    "cl-hop-by-hop": framed(
        b"Connection: Content-Length\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED
    ),
    "te-hop-by-hop": framed(
        b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n",
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ),
    "get-with-body": b"GET /inspect?attack=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
    % (len(SMUGGLED), SMUGGLED),
    "chunk-size-leading-zeros": framed(
        b"Transfer-Encoding: chunked\r\n",
        b"0000000000000000000000%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ),
    "chunk-size-overflow": framed(
        b"Transfer-Encoding: chunked\r\n", b"1%016x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    ),
    "chunk-bare-lf": framed(
        b"Transfer-Encoding: chunked\r\n", b"%x\n%s\n0\n\n" % (len(SMUGGLED), SMUGGLED)
    ),
    "chunk-ext-with-crlf-in-quotes": framed(
        b"Transfer-Encoding: chunked\r\n", b'0;a="\r\n\r\n' + SMUGGLED + b'"\r\n\r\n'
    ),
    "chunk-missing-crlf-after-data": framed(
        b"Transfer-Encoding: chunked\r\n", b"3\r\nabc" + SMUGGLED + b"0\r\n\r\n"
    ),
    "trailer-smuggles": framed(b"Transfer-Encoding: chunked\r\n", b"0\r\nX: y\r\n" + SMUGGLED),
    "lf-only-head": b"POST /inspect?attack=1 HTTP/1.1\nHost: a\nContent-Length: %d\nTransfer-Encoding: chunked\n\n"
    % N
    + CHUNKED_THEN_SMUGGLED,
    "nul-in-header": framed(b"X-A: a\x00b\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
    "expect-continue": framed(
        b"Expect: 100-continue\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n" % N,
        CHUNKED_THEN_SMUGGLED,
    ),
    "upgrade": framed(
        b"Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_smuggling_shapes_never_desynchronise_a_backend(mesh: FuzzMesh, name: str) -> None:
    attack = CASES[name]
    for split in (0, 5):
        ex = exchange(mesh.port, attack, split=split, expect=2, idle=0.3, total=3)
        assert ex.raw == b"" or ex.raw.startswith(b"HTTP/1.1 "), (
            f"{name}: not an HTTP/1.1 answer: {ex.raw[:120]!r}"
        )
        # the first answer is for the attacking request itself (or a 4xx); the smuggled one
        # may only be answered after it, when the proxy parsed it as a pipelined request
        if ex.responses and ex.responses[0].status == 200:
            assert json.loads(ex.responses[0].body)["target"] == "/inspect?attack=1", (
                f"{name}: the first answer was not for the attacking request"
            )
        assert_no_desync(mesh, name)
