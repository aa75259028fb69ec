"""NamerdHttpInterpreter against a fake namerd on loopback (tests/interpreters/namerd_fake.py):
the requests it makes, the trees and address sets it builds from namerd's documents,
through an outage, and bounded against a namerd that sends too much."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from namerd_fake import FakeNamerd
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from l5d_twisted.interpreters import namerd_client
from l5d_twisted.interpreters.namerd_http import NamerdHttpInterpreter
from l5d_twisted.naming.addr import Addr, AddrBound, AddrNeg, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.limits import BindingLimitError
from l5d_twisted.naming.nametree import Leaf, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, State
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics

SCOPE = "rt/out/interpreter/io.l5d.namerd.http/"


def leaf(bid: str, ip: str = "127.0.0.1", port: int = 8080) -> dict[str, Any]:
    return {
        "type": "leaf",
        "bound": {"id": bid, "path": "/", "addr": addr(ip, port)},
    }


def addr(ip: str, port: int, weight: float | None = None) -> dict[str, Any]:
    meta = {} if weight is None else {"endpoint_addr_weight": weight}
    return {"type": "bound", "addrs": [{"ip": ip, "port": port, "meta": meta}], "meta": {}}


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"not within {timeout}s: {what}")


class Setup:
    def __init__(self, fake: FakeNamerd) -> None:
        self.fake = fake
        self.metrics = MetricsTree(reactor)
        self.interpreter = NamerdHttpInterpreter(
            dst=Path.read(f"/$/inet/127.0.0.1/{fake.number}"),
            namespace="default",
            locator=Interpreter({}, (), reactor),
            reactor=reactor,
            stats=self.metrics.stats.scope("rt", "out"),
            base_s=0.05,
            max_s=0.2,
            rng=random.Random(1),
        )
        self.states: list[State] = []
        self.closers: list[Any] = []

    def watch(self, dtab: str = "/svc => /#/io.l5d.fs", path: str = "/svc/world") -> Any:
        var = self.interpreter.bind(Dtab.read(dtab), Path.read(path))
        self.closers.append(var.observe(self.states.append))
        return var

    def tree(self) -> Any:
        state = self.states[-1] if self.states else None
        return state.value if isinstance(state, Ok) else None

    def metric(self, name: str) -> float:
        value: float = flat_metrics(self.metrics).get(SCOPE + name, 0.0)
        return value

    def close(self) -> None:
        for c in self.closers:
            c.close()
        self.interpreter.close()
        self.metrics.stop()


@pytest_twisted.async_yield_fixture
async def setup() -> AsyncIterator[Setup]:
    fake = FakeNamerd()
    fake.listen()
    s = Setup(fake)
    try:
        yield s
    finally:
        s.close()
        await fake.stop()


@pytest_twisted.ensureDeferred
async def test_bind_asks_namerd_with_the_dtab_and_builds_the_tree(setup: Setup) -> None:
    setup.fake.set(
        "bind",
        {
            "type": "union",
            "union": [
                {"weight": 9, "tree": leaf("/#/io.l5d.fs/world-v1")},
                {"weight": 1, "tree": leaf("/#/io.l5d.fs/world-v2", "127.0.0.2")},
            ],
        },
    )
    setup.watch("/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/world-v1")
    await until(lambda: setup.tree() is not None, "a bound tree")
    (asked,) = setup.fake.asked("bind")
    assert asked == {
        "path": "/svc/world",
        "dtab": "/svc => /#/io.l5d.fs;/svc/world => /#/io.l5d.fs/world-v1",
        "watch": "true",
    }
    tree = setup.tree()
    assert isinstance(tree, Union)
    assert [b.weight for b in tree.branches] == [9.0, 1.0]
    names = [b.tree.value for b in tree.branches]
    assert [n.id.show() for n in names] == ["/#/io.l5d.fs/world-v1", "/#/io.l5d.fs/world-v2"]
    # the address in the bind answer is there before the addr watch answers
    first = names[0].addr.sample()
    assert isinstance(first, AddrBound)
    assert {(a.host, a.port) for a in first.addresses} == {("127.0.0.1", 8080)}


@pytest_twisted.ensureDeferred
async def test_addresses_follow_the_addr_watch_of_each_bound_id(setup: Setup) -> None:
    setup.fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    setup.watch()
    await until(lambda: setup.tree() is not None, "a bound tree")
    bound: BoundName = setup.tree().value
    seen: list[Addr] = []
    setup.closers.append(bound.addr.observe(seen.append))
    await until(lambda: bool(setup.fake.asked("addr")), "an addr watch")
    assert setup.fake.asked("addr")[0] == {"path": "/#/io.l5d.fs/world-v1", "watch": "true"}
    setup.fake.set("addr:/#/io.l5d.fs/world-v1", addr("127.0.0.9", 9000, weight=2.5))
    await until(lambda: len(seen) >= 2, "the addr watch's answer")
    latest = seen[-1]
    assert isinstance(latest, AddrBound)
    (only,) = latest.addresses
    assert (only.host, only.port, only.weight) == ("127.0.0.9", 9000, 2.5)
    setup.fake.set("addr:/#/io.l5d.fs/world-v1", {"type": "neg"})
    await until(lambda: isinstance(seen[-1], AddrNeg), "neg")
    # the same id in a later tree keeps the same address var (and so its client)
    setup.fake.set("bind", {"type": "alt", "alt": [{"type": "neg"}, leaf("/#/io.l5d.fs/world-v1")]})
    await until(lambda: not isinstance(setup.tree(), Leaf), "the new tree")
    assert setup.tree().trees[1].value.addr is bound.addr
    assert setup.metric("bind/updates") == 2


@pytest_twisted.ensureDeferred
async def test_namerds_exception_is_a_failed_binding(setup: Setup) -> None:
    setup.fake.set("bind", {"type": "exception", "message": "more than 100 delegation steps"})
    setup.watch()
    await until(lambda: bool(setup.states) and isinstance(setup.states[-1], Failed), "failed")
    assert "more than 100 delegation steps" in str(setup.states[-1].error)  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_an_outage_keeps_the_last_tree_and_the_watch_comes_back(setup: Setup) -> None:
    fake = setup.fake
    fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    setup.watch()
    await until(lambda: setup.tree() is not None, "a bound tree")
    good = setup.tree()
    number = fake.number
    await fake.stop()  # connections cut, port closed: reconnects are refused
    await until(lambda: setup.metric("failures") >= 3, "failed reconnects")
    assert setup.tree() == good
    assert len(setup.states) == 2  # Pending, then the tree: nothing since
    fake.set("bind", leaf("/#/io.l5d.fs/world-v2"))
    fake.listen(number)
    await until(
        lambda: setup.tree() is not None and setup.tree().value.id.show().endswith("v2"),
        "the tree after namerd came back",
    )
    assert setup.metric("connects") >= 2


@pytest_twisted.ensureDeferred
async def test_bad_json_restarts_the_stream_and_keeps_the_last_tree(setup: Setup) -> None:
    fake = setup.fake
    fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    setup.watch()
    await until(lambda: setup.tree() is not None, "a bound tree")
    good = setup.tree()
    fake.set("bind", b'{"type": "leaf", "bound": \n')
    await until(lambda: setup.metric("malformed") >= 1, "the bad line counted")
    assert setup.tree() == good
    fake.set("bind", leaf("/#/io.l5d.fs/world-v2"))  # what the reconnected watch gets first
    await until(lambda: setup.tree().value.id.show().endswith("v2"), "the next good tree")
    assert len(fake.asked("bind")) >= 2


@pytest_twisted.ensureDeferred
async def test_a_line_that_never_ends_is_cut_at_the_bound(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(namerd_client, "MAX_LINE_BYTES", 64 * 1024)
    fake = setup.fake
    fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    setup.watch()
    await until(lambda: setup.tree() is not None, "a bound tree")
    good = setup.tree()
    (_, request) = fake.open[0]
    closed: Deferred[Any] = request.notifyFinish()
    closed.addErrback(lambda _: None)
    for _ in range(64):  # 1 MiB of one unfinished line, in 16 KiB pieces
        request.write(b"x" * 16384)
    await until(lambda: closed.called, "the client to hang up")
    assert setup.tree() == good
    assert setup.metric("failures") >= 1


@pytest_twisted.ensureDeferred
async def test_the_delegator_shows_namerds_delegation_and_dtab_or_the_last_known(
    setup: Setup,
) -> None:
    fake = setup.fake
    fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    fake.current["dtabs:"] = b'[{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]\n'
    fake.current["delegate:/svc/world"] = (
        b'{"type": "delegate", "path": "/svc/world", "delegate": {"type": "leaf", '
        b'"path": "/#/io.l5d.fs/world", "dentry": {"prefix": "/svc", "dst": "/#/io.l5d.fs"}, '
        b'"bound": {"id": "/#/io.l5d.fs/world", "path": "/", "addr": {"type": "neg"}}}}\n'
    )
    explained = await setup.interpreter.explain_settled(Dtab.empty(), Path.read("/svc/world"), 5)
    shown = explained.to_json()
    assert shown["dtab"] == "/svc => /#/io.l5d.fs"
    assert shown["delegate"]["dentry"] == {"prefix": "/svc", "dst": "/#/io.l5d.fs"}
    assert shown["result"]["addresses"] == ["127.0.0.1:8080"]
    info = setup.interpreter.delegator_info()
    assert (info["dtab"], info["namespace"]) == ("/svc => /#/io.l5d.fs", "default")
    fake_port = fake.number
    await fake.stop()
    explained = await setup.interpreter.explain_settled(Dtab.empty(), Path.read("/svc/world"), 1)
    assert "namerd unreachable" in explained.to_text()
    assert explained.to_json()["dtab"] == "/svc => /#/io.l5d.fs"  # the last known
    assert setup.interpreter.delegator_info()["lastError"]
    fake.listen(fake_port)
    await setup.interpreter.explain_settled(Dtab.empty(), Path.read("/svc/world"), 5)
    assert setup.interpreter.delegator_info()["lastError"] is None  # namerd answers again


@pytest_twisted.ensureDeferred
async def test_a_bind_namerd_refuses_is_a_failed_binding_a_request_dtab_answers_400_for(
    setup: Setup,
) -> None:
    setup.fake.status = 400
    setup.watch()
    await until(lambda: bool(setup.states) and isinstance(setup.states[-1], Failed), "failed")
    error = setup.states[-1].error  # type: ignore[union-attr]
    assert isinstance(error, BindingLimitError)  # the router's 400 for a request's dtab
    assert "namerd answered 400: no" in str(error)
    assert setup.metric("failures") >= 1


@pytest_twisted.ensureDeferred
async def test_a_dst_whose_name_resolves_late_is_connected_to_when_it_does() -> None:
    """At start-up namerd's hostname may not be resolved yet: the watches connect as soon as
    it is, not a whole backoff (here 30 s) later, and that wait is no failure."""
    fake = FakeNamerd()
    fake.listen()
    fake.set("bind", leaf("/#/io.l5d.fs/world"))
    answer: Deferred[list[str]] = Deferred()

    def resolve(host: str, port: int) -> Deferred[list[str]]:
        assert host == "namerd.test"
        return answer

    metrics = MetricsTree(reactor)
    interpreter = NamerdHttpInterpreter(
        dst=Path.read(f"/$/inet/namerd.test/{fake.number}"),
        namespace="default",
        locator=Interpreter({}, (), reactor, resolve=resolve),
        reactor=reactor,
        stats=metrics.stats.scope("rt", "out"),
        base_s=30.0,
        max_s=60.0,
    )
    states: list[State] = []
    watch = interpreter.bind(Dtab.empty(), Path.read("/svc/world")).observe(states.append)
    try:
        await deferLater(reactor, 0.2, lambda: None)
        assert fake.requests == []
        reactor.callLater(0, answer.callback, ["127.0.0.1"])  # type: ignore[attr-defined]
        await until(lambda: any(isinstance(s, Ok) for s in states), "the tree", timeout=5.0)
        assert flat_metrics(metrics).get(SCOPE + "failures", 0) == 0
    finally:
        watch.close()
        interpreter.close()
        metrics.stop()
        await fake.stop()


@pytest_twisted.ensureDeferred
async def test_the_delegator_does_not_wait_longer_than_asked_for_a_silent_namerd(
    setup: Setup,
) -> None:
    setup.fake.set("bind", leaf("/#/io.l5d.fs/world-v1"))
    setup.fake.hang = True
    started = reactor.seconds()  # type: ignore[attr-defined]
    explained = await setup.interpreter.explain_settled(Dtab.empty(), Path.read("/svc/world"), 0.5)
    assert reactor.seconds() - started < 3.0  # type: ignore[attr-defined]
    assert "no answer from namerd within 0.5s" in explained.to_text()
    assert explained.to_json()["result"]["addresses"] == ["127.0.0.1:8080"]  # the live bind
