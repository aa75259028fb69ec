"""A route whose binding is pending holds requests (its waiters made at the first wait:
issue 17) and releases them, or times them out naming the path."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from l5d_twisted.errors import BindingTimeout
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.naming.addr import AddrBound, Address, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.nametree import Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Ok, Var
from l5d_twisted.router.route import BindingService


class Interpreter:
    def __init__(self) -> None:
        self.var: Var[Any] = Var(PENDING)

    def bind(self, dtab: Dtab, path: Path, remember: bool = True) -> Var[Any]:
        return self.var


def route(clock: Clock, interpreter: Interpreter, called: list[BoundName]) -> BindingService:
    def client_for(bound: BoundName) -> Any:
        def call(request: Request) -> Deferred[Any]:
            called.append(bound)
            return succeed("answered")

        return call

    return BindingService(
        path=Path.read("/svc/hello"),
        local_dtab=Dtab.read(""),
        base_dtab=Dtab.read(""),
        interpreter=interpreter,
        client_for=client_for,
        reactor=clock,
        rng=random.Random(1),
        binding_timeout_s=2.0,
    )


def test_a_pending_binding_holds_the_request_until_bound() -> None:
    clock, interpreter = Clock(), Interpreter()
    called: list[BoundName] = []
    service = route(clock, interpreter, called)
    results: list[Any] = []
    service(Request(b"GET", b"/", Headers())).addBoth(results.append)
    assert results == []
    bound = BoundName(Path.read("/#/io.l5d.fs/hello"), Var(AddrBound.of([Address("10.0.0.1", 80)])))
    interpreter.var.update(Ok(Leaf(bound)))
    assert results == ["answered"] and called == [bound]
    assert clock.getDelayedCalls() == []


def test_a_pending_binding_times_out_naming_the_path() -> None:
    clock, interpreter = Clock(), Interpreter()
    called: list[BoundName] = []
    service = route(clock, interpreter, called)
    results: list[Any] = []
    service(Request(b"GET", b"/", Headers())).addBoth(results.append)
    clock.advance(2.01)
    assert len(results) == 1 and results[0].check(BindingTimeout)
    assert "binding /svc/hello" in str(results[0].value)
    results[0].trap(BindingTimeout)
