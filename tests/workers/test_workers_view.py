"""The supervisor's merged view (workers.admin.MergedView) on a fake clock: a refresh asked
for during another reads the workers again; a worker that ends mid-merge is counted once."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from l5d_twisted.telemetry.metrics_json import flat_metrics
from l5d_twisted.workers.admin import MergedView
from l5d_twisted.workers.control import ChannelClosed


class FakeWorker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.asked: list[Deferred[Any]] = []
        self.channel = self

    def request(self, op: str, **args: Any) -> Deferred[Any]:
        assert op == "snapshot"
        d: Deferred[Any] = Deferred()
        self.asked.append(d)
        return d

    def answer(self, requests: int) -> None:
        records = [[["rt", "out", "service", "svc/a", "requests"], "c", requests]]
        self.asked.pop(0).callback(({"process": []}, records))


def _done(clock: Clock, d: Deferred[None]) -> None:
    for _ in range(1000):  # the merge runs in steps on the clock
        if d.called:
            return
        clock.advance(0)
    raise AssertionError("the refresh never finished")


def _requests(view: MergedView) -> int:
    value = flat_metrics(view.tree)["rt/out/service/svc/a/requests"]
    assert isinstance(value, int)
    return value


def test_a_worker_ending_mid_merge_is_counted_once_and_counters_never_go_down() -> None:
    clock = Clock()
    w0, w1 = FakeWorker(0), FakeWorker(1)
    live = [w0, w1]
    view = MergedView(clock, lambda: list(live))

    d = view.refresh()
    w0.answer(5)
    w1.answer(3)
    _done(clock, d)
    assert _requests(view) == 8

    d = view.refresh()
    view.forget(1)  # worker 1's exit is noticed while the supervisor asks...
    live.remove(w1)
    w1.answer(4)  # ...before its last answer, still in the channel, is read
    w0.answer(6)
    _done(clock, d)
    assert _requests(view) == 6 + 4  # worker 1 as it last answered, not twice

    replacement = FakeWorker(1)
    live.append(replacement)
    d = view.refresh()
    w0.answer(6)
    replacement.answer(1)
    _done(clock, d)
    assert _requests(view) == 6 + 1 + 4  # what the dead worker counted is kept

    d = view.refresh()
    view.forget(0)
    live.remove(w0)
    w0.asked.pop(0).errback(ChannelClosed())  # it died without answering
    replacement.answer(2)
    _done(clock, d)
    assert _requests(view) == 6 + 2 + 4  # worker 0 as it last answered


def test_a_refresh_asked_during_another_reads_the_workers_again() -> None:
    clock = Clock()
    w0 = FakeWorker(0)
    view = MergedView(clock, lambda: [w0])
    first = view.refresh()
    second = view.refresh()  # asked while the first one waits for the worker
    assert len(w0.asked) == 1
    w0.answer(1)
    _done(clock, first)
    assert not second.called and len(w0.asked) == 1  # a new snapshot, asked after `second`
    w0.answer(2)
    _done(clock, second)
    assert _requests(view) == 2


class FakeSupervisor:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.reactor = Clock()
        self.stopping = False
        self.all_started = True
        self.running: list[Any] = []

    def live_workers(self) -> list[Any]:
        return self.running


def test_not_ready_while_no_worker_runs() -> None:
    from twisted.web.test.requesthelper import DummyRequest

    from l5d_twisted.config import load_config
    from l5d_twisted.workers.admin import WorkersAdminServer, WorkersTarget

    supervisor = FakeSupervisor(load_config("workers: 2\nrouters:\n- protocol: http\n"))
    view = MergedView(supervisor.reactor, supervisor.live_workers)
    admin = WorkersAdminServer(WorkersTarget(supervisor, view), supervisor.reactor)

    def ready() -> tuple[int, bytes]:
        request = DummyRequest([b"ready"])
        body = admin.ready(request)  # type: ignore[arg-type]
        return request.responseCode or 200, body

    supervisor.running = [FakeWorker(0)]
    assert ready() == (200, b"ready")
    supervisor.running = []  # every worker died; replacements are on their way
    assert ready() == (503, b"no worker running")
    supervisor.stopping = True
    assert ready() == (503, b"draining")
