"""``admin.workerThreads`` (issue 12): at most that many metrics renders in progress at
once (linkerd 1's default 2), the next ones waiting in order, a bounded queue, cheap
endpoints never waiting; on a stepping cooperator (one step per clock turn) so that
what runs when is deterministic."""

from __future__ import annotations

import types
from typing import Any

import pytest
from fake_mesh import FakeMesh, Traffic
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from l5d_twisted.admin.http_error import HttpError
from l5d_twisted.admin.server import AdminServer
from l5d_twisted.admin.slots import RenderSlots
from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.model import AdminConfig
from l5d_twisted.telemetry.metrics_json import metrics_json
from l5d_twisted.telemetry.render import stepping_cooperator


def admin(worker_threads: int | None) -> tuple[AdminServer, Clock, FakeMesh]:
    clock = Clock()
    mesh: Any = FakeMesh(Clock())
    Traffic(mesh, hello_rps=50, world_rps=30).step(1.0)
    if worker_threads is not None:
        mesh.config = types.SimpleNamespace(admin=AdminConfig(worker_threads=worker_threads))
    return AdminServer(mesh, clock, cooperator=stepping_cooperator(clock)), clock, mesh


def get(server: AdminServer, path: bytes) -> tuple[DummyRequest, list[bytes]]:
    request = DummyRequest([b""])
    request.path = path
    written: list[bytes] = []
    request.write = written.append  # type: ignore[method-assign]
    body = server.handle(request)
    if isinstance(body, bytes):
        written.append(body)
        request.finish()
    return request, written


def turns_until(clock: Clock, done: Any, limit: int = 10_000) -> int:
    turns = 0
    while not done() and turns < limit:
        clock.advance(1)
        turns += 1
    assert done(), "never finished"
    return turns


def test_the_default_is_linkerd_1s_two() -> None:
    assert AdminConfig().worker_threads == 2
    server, _, _ = admin(None)  # a target without config: the default too
    assert server.render_slots.slots == 2


def test_renders_beyond_worker_threads_wait_their_turn_and_all_complete() -> None:
    server, clock, mesh = admin(2)
    scrapes = [get(server, b"/admin/metrics.json") for _ in range(4)]
    assert (server.render_slots.running, server.render_slots.waiting) == (2, 2)
    turns_until(clock, lambda: scrapes[0][0].finished and scrapes[1][0].finished)
    # the first two done: the waiting two started, in order, and nothing else waits
    assert server.render_slots.waiting == 0
    turns_until(clock, lambda: all(r.finished for r, _ in scrapes))
    expected = metrics_json(mesh.metrics)
    assert all(b"".join(w) == expected for _, w in scrapes)
    assert (server.render_slots.running, server.render_slots.waiting) == (0, 0)


def test_one_worker_thread_renders_one_scrape_at_a_time() -> None:
    server, clock, _ = admin(1)
    first, _ = get(server, b"/admin/metrics/prometheus")
    second, second_written = get(server, b"/admin/metrics/prometheus")
    assert (server.render_slots.running, server.render_slots.waiting) == (1, 1)
    turns_until(clock, lambda: first.finished)
    assert not second.finished and not second_written  # it starts only now
    turns = turns_until(clock, lambda: second.finished)
    assert turns > 2 and b"".join(second_written).startswith(b"#")


def test_cheap_endpoints_never_wait_behind_renders() -> None:
    server, _, _ = admin(1)
    for _ in range(3):
        get(server, b"/admin/metrics.json")
    assert server.render_slots.waiting == 2
    for path, body in ((b"/admin/ping", b"pong"), (b"/ready", b"ready")):
        request, written = get(server, path)
        assert request.finished and b"".join(written) == body


def test_a_client_that_leaves_while_waiting_leaves_the_queue() -> None:
    server, clock, _ = admin(1)
    first, _ = get(server, b"/admin/metrics.json")
    gone, gone_written = get(server, b"/admin/metrics.json")
    third, _ = get(server, b"/admin/metrics.json")
    assert server.render_slots.waiting == 2
    gone.processingFailed(Exception("client went away"))  # fires notifyFinish's errback
    assert server.render_slots.waiting == 1
    turns_until(clock, lambda: first.finished and third.finished)
    assert not gone_written


def test_the_queue_is_bounded_with_a_503() -> None:
    slots = RenderSlots(1, max_waiting=2)
    started: list[Deferred[list[bytes]]] = []

    def start() -> Deferred[list[bytes]]:
        d: Deferred[list[bytes]] = Deferred()
        started.append(d)
        return d

    results = [slots.run(start) for _ in range(3)]  # one running, two waiting
    with pytest.raises(HttpError) as raised:
        slots.run(start)
    assert raised.value.status == 503 and "admin.workerThreads: 1" in raised.value.message
    started[0].callback([b"done"])  # the running one ends: the next starts
    assert len(started) == 2 and slots.waiting == 1
    results[2].cancel()  # a waiting one gives up
    assert slots.waiting == 0 and results[2].called
    results[2].addErrback(lambda f: f.trap(CancelledError))
    started[1].callback([b"done"])
    assert (slots.running, slots.waiting) == (0, 0)


def test_worker_threads_is_read_and_bounded_by_check() -> None:
    base = "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n"
    assert load_config("admin: {workerThreads: 4}\n" + base).admin.worker_threads == 4
    with pytest.raises(ConfigErrors) as raised:
        load_config("admin: {workerThreads: 0}\n" + base)
    assert "admin.workerThreads: expected an integer 1-64" in str(raised.value)
