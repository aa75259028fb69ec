"""Random requests and random dtab headers against a running proxy (hypothesis, derandomized).

After every example the proxy must still answer a probe correctly within 2 s, stay under
150 MB RSS and 400 open files, and never have dialled the canary (an address no config
names) nor relayed the admin server.  Any 4xx or 5xx answer is fine; so is closing the
connection.  Example counts are modest so the folder runs in about a minute.
"""

from __future__ import annotations

import urllib.parse

import pytest
from fuzz_mesh import FUZZ_SETTINGS, FuzzMesh, exchange, request
from fuzz_strategies import NAME, FuzzRequest, Ports, dtabs, requests
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow


def ports_of(mesh: FuzzMesh) -> Ports:
    return Ports(
        canary=mesh.canary.port,
        admin=mesh.admin_port,
        proxy=mesh.port,
        backend=mesh.backend_ports[0],
    )


def test_random_requests_never_break_the_proxy(mesh: FuzzMesh) -> None:
    ports = ports_of(mesh)

    @settings(FUZZ_SETTINGS, max_examples=200)
    @given(req=requests(ports))
    def attack(req: FuzzRequest) -> None:
        ex = exchange(
            mesh.port, req.raw, split=req.split, head_only=req.head_only, idle=0.25, total=3
        )
        assert ex.raw == b"" or ex.raw.startswith(b"HTTP/1.1 "), (
            f"not an HTTP/1.1 answer: {ex.raw[:120]!r}"
        )
        mesh.assert_not_admin(ex, req.raw[:300])
        mesh.assert_served_by_configured_backends(ex, req.raw[:300])
        mesh.check_health(req.raw[:300])

    attack()


def test_random_dtab_headers_never_break_the_proxy(mesh: FuzzMesh) -> None:
    ports = ports_of(mesh)

    @settings(FUZZ_SETTINGS, max_examples=200)
    @given(
        dtab=dtabs(ports),
        host=st.sampled_from(["a", "b", "ab", "nosuch"]),
        header=st.sampled_from(["l5d-dtab", "l5d-ctx-dtab"]),
    )
    def attack(dtab: str, host: str, header: str) -> None:
        raw = request("GET", "/inspect?fuzz=dtab", host, [(header, dtab)])
        ex = exchange(mesh.port, raw, total=3, idle=3)
        assert ex.responses, f"no answer within 3 s ({ex.seconds:.2f}s) to {header}: {dtab!r}"
        resp = ex.responses[0]
        assert resp.status < 300 or resp.status >= 400, (resp.status, dtab)
        if resp.status == 200:
            assert b'"target": "/inspect?fuzz=dtab"' in resp.body, (
                f"a 200 not from a backend for {dtab!r}: {resp.body[:200]!r}"
            )
        mesh.assert_not_admin(ex, dtab)
        mesh.assert_served_by_configured_backends(ex, dtab)
        mesh.check_health(f"{header}: {dtab}")

    attack()


def test_random_delegator_queries_never_break_the_admin_or_the_proxy(mesh: FuzzMesh) -> None:
    """The admin's dtab playground binds client-chosen dtabs too: same bounds as the data plane."""
    ports = ports_of(mesh)
    paths = st.one_of(
        st.sampled_from(
            [
                "/svc/a",
                "/svc/b",
                "/svc/ab",
                "/svc",
                "/",
                "",
                "/#/io.l5d.fs/a",
                "/$/inet/127.0.0.1/1",
                "svc",
                "/svc/a/b/c",
            ]
        ),
        NAME.map(lambda n: f"/svc/{n}"),
    )

    @settings(FUZZ_SETTINGS, max_examples=120)
    @given(dtab=dtabs(ports), path=paths, router=st.sampled_from(["out", "", "nosuch"]))
    def attack(dtab: str, path: str, router: str) -> None:
        query = urllib.parse.urlencode({"router": router, "path": path, "dtab": dtab})
        ex = exchange(
            mesh.admin_port,
            request("GET", f"/delegator.json?{query}", "127.0.0.1"),
            total=3,
            idle=3,
        )
        assert ex.responses, (
            f"no answer from /delegator.json within 3 s ({ex.seconds:.2f}s) for {path!r} with {dtab!r}"
        )
        assert ex.responses[0].status < 500, (ex.responses[0].status, ex.responses[0].body[:200])
        mesh.check_health(f"/delegator.json {path} {dtab}")

    attack()
