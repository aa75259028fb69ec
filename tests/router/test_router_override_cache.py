"""Routes for a request's own dtab: bounded cost, a clean 400, and a cache of their own.

Issue 10, finding 1: ``l5d-dtab: /svc => /svc/a1 & /svc/b1`` with a different name on
each request froze the reactor for seconds, kept ~72 MB per route and could fill the
route cache (1,000 routes) shared with the operator's own routes.
"""

from __future__ import annotations

import gc
import http.client
import random
import sys
import tracemalloc
from pathlib import Path as FsPath
from typing import Any

import pytest
from l5d_testing import Processes, free_port, wait_for_port
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import BadDtabHeader, NoHostsAvailable
from l5d_twisted.http.errors import error_response
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.path import Path
from l5d_twisted.router.route import ERROR_EXPLANATION_STEPS
from l5d_twisted.router.router import MAX_OVERRIDE_ROUTES, Router
from l5d_twisted.service import Service
from l5d_twisted.telemetry.metrics import MetricsTree

CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: outgoing
  dtab: |
    /svc => /#/mem;
"""


class Ok200(Service[Request, Response]):
    def __call__(self, request: Request) -> Deferred[Response]:
        return succeed(Response(200, Headers([(b"content-length", b"0")])))


class Harness:
    def __init__(self, paths: int | None = None) -> None:
        self.clock = Clock()
        self.dialled: list[Address] = []
        names = {f"svc{i}": [f"127.0.0.1:{2000 + i}"] for i in range(20)}
        self.interpreter = Interpreter(
            {Path.read("/mem"): MemoryNamer(Path.read("/mem"), names)}, (), self.clock
        )
        self.router = Router(
            load_config(
                CONFIG if paths is None else CONFIG + f"  bindingCache: {{paths: {paths}}}\n"
            ).routers[0],
            self.interpreter,
            reactor=self.clock,
            stats=MetricsTree(self.clock).stats,
            ctx=PluginContext(reactor=self.clock),
            rng=random.Random(7),
            endpoint_factory=self._endpoint,
        )

    def _endpoint(
        self, reactor: Any, address: Address, *args: Any, **kwargs: Any
    ) -> Service[Request, Response]:
        self.dialled.append(address)
        return Ok200()

    def call(self, host: str, dtab: bytes | None = None) -> Any:
        headers = [(b"Host", host.encode())] + ([(b"l5d-dtab", dtab)] if dtab is not None else [])
        results: list[Any] = []
        self.router(Request(b"GET", b"/", Headers(headers))).addBoth(
            lambda r: results.append(getattr(r, "value", r))
        )
        assert results, "routing answered synchronously"
        return results[0]

    def override_routes(self) -> int:
        return sum(1 for key in self.router._routes if key[1])

    def configured_routes(self) -> set[str]:
        return {key[0].show() for key in self.router._routes if not key[1]}


def test_union_override_header_is_a_400_with_l5d_err_in_bounded_work_and_memory() -> None:
    h = Harness()
    assert isinstance(h.call("svc1"), Response)
    gc.collect()
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1

    tracemalloc.start()
    sys.setprofile(count)
    try:
        errors = [h.call(f"name{i}", b"/svc => /svc/a1 & /svc/b1") for i in range(10)]
    finally:
        sys.setprofile(None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    for error in errors:
        assert isinstance(error, BadDtabHeader) and error.status == 400, error
        assert "l5d-dtab" in error.message and "nested more than" in error.message
    response = error_response(errors[0])
    assert response.status == 400 and b"nested" in (response.headers.get(b"l5d-err") or b"")
    # Before the limits: ~72 MB and millions of calls per request, ending in RecursionError.
    assert peak < 16 * 1024 * 1024, peak
    assert calls[0] < 10 * 100_000, calls[0]
    assert isinstance(h.call("svc1"), Response), "the operator's routes still work"


def test_override_routes_have_their_own_small_cache() -> None:
    h = Harness()
    for i in range(20):
        h.clock.advance(1)
        assert isinstance(h.call(f"svc{i}"), Response)
    configured = h.configured_routes()
    assert len(configured) == 20
    for i in range(MAX_OVERRIDE_ROUTES + 50):
        h.clock.advance(1)
        assert isinstance(
            h.call("svc1", f"/svc/svc1 => /#/mem/svc{i % 20}; /x => /y{i}".encode()), Response
        )
    assert h.override_routes() == MAX_OVERRIDE_ROUTES
    assert h.configured_routes() == configured, "header-driven routes never evict the operator's"
    # the least recently used override route went first
    newest = {key[1] for key in h.router._routes if key[1]}
    assert any("/y149" in text for text in newest) and not any(
        text.endswith("/y0") for text in newest
    )


def test_configured_routes_evict_only_configured_ones() -> None:
    h = Harness(paths=5)
    for i in range(3):
        h.clock.advance(1)
        assert isinstance(h.call("svc1", f"/x => /y{i}".encode()), Response)
    for i in range(20):
        h.clock.advance(1)
        assert isinstance(h.call(f"svc{i}"), Response)
    assert h.configured_routes() == {f"/svc/svc{i}" for i in range(15, 20)}
    assert h.override_routes() == 3


class _CountingDict(dict[Any, Any]):
    lookups = 0

    def __getitem__(self, key: Any) -> Any:
        _CountingDict.lookups += 1
        return super().__getitem__(key)


def test_a_new_name_in_a_full_cache_evicts_without_scanning_every_route() -> None:
    # A min() over every cached route per new name stalled the reactor under a flood of
    # random Host values (bench/README.md, mixed attack); eviction is O(1) amortised now.
    h = Harness(paths=300)
    for i in range(300):
        h.clock.advance(1)
        h.call(f"name{i}")
    for i in range(0, 300, 2):  # used again: these stay, the others go first
        h.clock.advance(1)
        h.call(f"name{i}")
    counting = _CountingDict(h.router._binders)
    h.router._binders = counting
    _CountingDict.lookups = 0
    for i in range(100):
        h.clock.advance(1)
        h.call(f"new{i}")
    assert _CountingDict.lookups <= 100 * 3 + 300, _CountingDict.lookups  # was 300 per new name
    kept = h.configured_routes()
    assert len(kept) == 300
    assert all(f"/svc/name{i}" in kept for i in range(0, 200, 2)), "recently used routes are kept"
    assert not any(f"/svc/name{i}" in kept for i in range(1, 200, 2)), "unused ones went first"


def test_override_binds_do_not_fill_the_interpreters_recent_binds() -> None:
    h = Harness()
    assert isinstance(h.call("svc1"), Response)
    remembered = set(h.interpreter._recent)
    for i in range(30):
        h.call(f"name{i}", b"/svc => /svc/a1 & /svc/b1")
    assert set(h.interpreter._recent) == remembered


def test_no_hosts_explanation_is_made_once_per_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    explained = [0]
    real = h.interpreter.explain

    def counting(*args: Any, **kwargs: Any) -> Any:
        explained[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(h.interpreter, "explain", counting)
    for _ in range(5):
        error = h.call("nobody")
        assert isinstance(error, NoHostsAvailable) and "/svc/nobody" in error.body()
    assert explained[0] == 1


def test_no_hosts_explanation_of_a_request_dtab_is_a_short_walk() -> None:
    # 1,000 negative alternatives bind within the limits; the error body's explanation
    # stops after ERROR_EXPLANATION_STEPS instead of walking (and printing) all of them.
    h = Harness()
    dtab = ("/svc/x => " + " | ".join(f"/#/mem/nobody{i}" for i in range(1000))).encode()
    (error, response), cost = _calls(lambda: (lambda e: (e, error_response(e)))(h.call("x", dtab)))
    assert isinstance(error, NoHostsAvailable), error
    body = error.body()
    assert "override dtab: /svc/x => /#/mem/nobody0 | " in body and "see /delegator.json" in body
    assert "[1] /#/mem/nobody0 -> neg" in body
    assert body.count("the namer does not know this name") <= ERROR_EXPLANATION_STEPS
    assert response.status == 502 and len(error.body()) < 17 * 1024
    assert cost < 300_000, cost


def _calls(fn: Any) -> tuple[Any, int]:
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    return result, calls[0]


def test_a_normal_override_still_routes() -> None:
    h = Harness()
    response = h.call("anything", b"/svc/anything => /#/mem/svc3")
    assert isinstance(response, Response) and response.status == 200
    assert h.dialled == [Address("127.0.0.1", 2003)]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _get(port: int, host: str, headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/", headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("l5d-err")
    finally:
        conn.close()


def test_ten_union_headers_through_a_running_proxy_keep_its_memory(
    processes: Processes, tmp_path: FsPath
) -> None:
    # The reproduction of issue 10 against the real process: ten requests took the proxy
    # from ~60 MB to ~770 MB of RSS (and ~19 s of CPU, answering 502s).
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    disco = tmp_path / "disco"
    disco.mkdir()
    (disco / "world").write_text(f"127.0.0.1 {world_port}\n")
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
namers:
- {{kind: io.l5d.fs, rootDir: {disco}}}
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - {{ip: 127.0.0.1, port: {proxy_port}}}
"""
    )
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    mesh = processes.l5d("run", str(config), name="mesh")
    for port in (world_port, proxy_port, admin_port):
        wait_for_port("127.0.0.1", port)
    for _ in range(20):  # warm up the configured route, the client and the pool
        assert _get(proxy_port, "world")[0] == 200
    before = _rss_mb(mesh.pid)
    for i in range(10):
        status, err = _get(proxy_port, f"name{i}", {"l5d-dtab": "/svc => /svc/a1 & /svc/b1"})
        assert status == 400 and err is not None and "nested%20more%20than" in err, (status, err)
    assert _rss_mb(mesh.pid) - before < 20, (before, _rss_mb(mesh.pid))
    assert _get(proxy_port, "world")[0] == 200
