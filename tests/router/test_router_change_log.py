"""A client's endpoint changes told as differences: one info line at once, then at most one
a second summing the rest (issue 17: a line per change was ~7 % of applying one)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent

from l5d_twisted.balancers.base import BalancerContext
from l5d_twisted.naming.addr import AddrBound, AddrDelta, Address, BoundName
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Var
from l5d_twisted.registry import BALANCERS
from l5d_twisted.router import client as client_module
from l5d_twisted.router.client import CHANGE_LOG_WINDOW_S, BoundClient
from l5d_twisted.service import Service, Status


class Endpoint(Service[Any, Any]):
    def __init__(self, address: Address) -> None:
        self.address = address

    def __call__(self, request: Any) -> Deferred[Any]:
        return Deferred()

    @property
    def status(self) -> Status:
        return Status.OPEN

    def close(self) -> Deferred[None]:
        return succeed(None)


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[dict[str, Any]] = []
        sink: Any = self.events.append  # (an ILogObserver by duck typing)
        monkeypatch.setattr(client_module, "log", Logger(observer=sink))
        self.clock = Clock()
        self.current = AddrBound(frozenset(addr(i) for i in range(3)))
        self.var: Var[Any] = Var(self.current)
        plugin = BALANCERS.get("p2c")
        balancer = plugin.factory(plugin.config_type(), BalancerContext(self.clock))
        self.client = BoundClient(
            BoundName(Path.read("/#/io.l5d.fs/svc"), self.var),
            make_endpoint=Endpoint,
            balancer=balancer,
            reactor=self.clock,
            binding_timeout_s=10,
        )

    def change(self, add: int, remove: int) -> None:
        """Replace address ``remove`` by ``add``, told as a difference."""
        added = frozenset({addr(add)})
        removed = frozenset({addr(remove)})
        addresses = (self.current.addresses - removed) | added
        self.current = AddrBound(addresses, delta=AddrDelta(self.current.token, added, removed))
        self.var.update(self.current)

    def lines(self) -> list[str]:
        lines = [formatEvent(e) for e in self.events]
        self.events.clear()
        return lines


def addr(i: int) -> Address:
    return Address(f"10.0.0.{i}", 8080)


def test_the_first_change_is_logged_at_once_the_next_ones_summed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(monkeypatch)
    world.lines()  # (the first set, not a difference)

    world.change(10, 0)
    assert world.lines() == ["client /#/io.l5d.fs/svc bound to 3 addresses (+1 -1)"]

    world.change(11, 1)
    world.change(12, 2)
    world.clock.advance(CHANGE_LOG_WINDOW_S / 2)
    world.change(13, 10)
    assert world.lines() == [], "counted within the window, not logged"
    assert sorted(world.client.addresses()) == [
        "10.0.0.11:8080",
        "10.0.0.12:8080",
        "10.0.0.13:8080",
    ]

    world.clock.advance(CHANGE_LOG_WINDOW_S / 2)
    assert world.lines() == [
        "client /#/io.l5d.fs/svc bound to 3 addresses (+3 -3 over 3 more changes)"
    ]

    world.change(14, 11)  # in the next window: counted
    assert world.lines() == []
    world.clock.advance(CHANGE_LOG_WINDOW_S)
    assert world.lines() == [
        "client /#/io.l5d.fs/svc bound to 3 addresses (+1 -1 over 1 more changes)"
    ]

    world.clock.advance(CHANGE_LOG_WINDOW_S)  # a quiet window ends the summing
    assert world.lines() == [] and world.clock.getDelayedCalls() == []
    world.change(15, 12)
    assert world.lines() == ["client /#/io.l5d.fs/svc bound to 3 addresses (+1 -1)"]


def test_closing_logs_what_was_counted_and_leaves_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(monkeypatch)
    world.change(10, 0)
    world.change(11, 1)
    world.lines()
    world.client.close()
    assert world.lines() == [
        "client /#/io.l5d.fs/svc bound to 3 addresses (+1 -1 over 1 more changes)"
    ]
    assert world.clock.getDelayedCalls() == []
