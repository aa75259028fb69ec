"""The router's idle sweep (issue 17) looks only at routes and clients that could have
expired, and closes what expired a batch per reactor turn; on a task.Clock."""

from __future__ import annotations

from typing import Any

import pytest
from test_router_routing import CONFIG, Harness, cached, ok

from l5d_twisted.router.expiry import ExpiryWheel
from l5d_twisted.router.router import Router

TAKEN: list[int] = []


class CountingWheel(ExpiryWheel[Any]):
    """An ExpiryWheel noting how many keys each sweep takes (TAKEN)."""

    __slots__ = ()

    def take_due(self, now_s: float) -> list[Any]:
        out = super().take_due(now_s)
        TAKEN.append(len(out))
        return out


def counting(router: Router) -> list[int]:
    TAKEN.clear()
    router._route_expiry.__class__ = CountingWheel
    return TAKEN


def test_a_sweep_looks_only_at_names_that_could_have_expired() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=20))  # a sweep every 2 s
    for i in range(300):
        h.namer.set(f"s{i}", "127.0.0.1:8080")
        ok(h.call(f"s{i}"))
    taken = counting(h.router)
    for _ in range(9):  # 18 s: nothing due yet
        h.clock.advance(2)
    assert taken == [0] * 9
    h.clock.advance(2)  # 20 s: all due, all expired, each looked at once
    assert sum(taken) == 300
    assert not h.router._routes and not h.router._clients
    assert len(h.router._route_expiry) == 0 and len(h.router._client_expiry) == 0


def test_a_name_in_use_is_looked_at_about_once_per_ttl() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=20))
    h.namer.set("busy", "127.0.0.1:8080")
    ok(h.call("busy"))
    taken = counting(h.router)
    for _ in range(50):  # 100 s, a request every 2 s
        h.clock.advance(2)
        ok(h.call("busy"))
    assert 4 <= sum(taken) <= 6  # five TTLs
    assert [key[0].show() for key in h.router._routes] == ["/svc/busy"]


def test_the_idle_ttl_holds_for_a_name_made_again_after_eviction() -> None:
    h = Harness(cached(CONFIG, paths=2, clients=2, idleTtlSecs=20))
    for name in ("a", "b", "c"):
        h.namer.set(name, "127.0.0.1:8080")
    ok(h.call("a"))
    h.clock.advance(10)
    ok(h.call("b"))
    ok(h.call("c"))  # evicts a (the bound of 2)
    ok(h.call("a"))  # a again, at 10 s: its filing at 0 s is stale
    h.clock.advance(18)  # 28 s: a's first filing came (20 s) and was skipped
    assert {key[0].show() for key in h.router._routes} == {"/svc/c", "/svc/a"}
    h.clock.advance(4)  # 32 s: idle for 22 s
    assert not h.router._routes


def test_expired_names_close_a_batch_per_reactor_turn() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=20))
    for i in range(100):
        h.namer.set(f"s{i}", "127.0.0.1:8080")
        ok(h.call(f"s{i}"))
    turns: list[Any] = []
    original = h.clock.callLater

    def call_later(delay: float, f: Any, *args: Any, **kw: Any) -> Any:
        if delay == 0 and getattr(f, "__name__", "") == "_evict_expired":
            turns.append(f)  # run by hand below, one turn at a time
            return None
        return original(delay, f, *args, **kw)

    h.clock.callLater = call_later  # type: ignore[method-assign, assignment]
    h.clock.advance(22)  # the sweep finds 100 routes and 100 clients expired
    batch = Router.EVICTIONS_PER_TURN
    assert len(h.router._routes) == 100 - batch and len(turns) == 1
    ok(h.call("s99"))  # used between turns: kept
    while turns:
        turns.pop()()
    assert [key[0].show() for key in h.router._routes] == ["/svc/s99"]
    assert set(h.router.client_state()) == {"/#/mem/s99"}
    h.clock.callLater = original  # type: ignore[method-assign]
    h.clock.advance(24)
    assert not h.router._routes and h.router.client_state() == {}


def test_a_client_with_requests_in_flight_is_looked_at_again() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=20))
    h.namer.set("slow", "127.0.0.1:8080")
    ok(h.call("slow"))
    client = next(iter(h.router._clients.values()))
    pending = [1.0]
    client.__class__ = type(
        "Pending",
        (type(client),),
        {"__slots__": (), "pending": property(lambda self: pending[0])},  # (BoundClient is slotted)
    )
    h.clock.advance(24)
    assert set(h.router.client_state()) == {"/#/mem/slow"}, "in flight: kept"
    pending[0] = 0.0
    h.clock.advance(2)
    assert h.router.client_state() == {}


def test_expiry_wheel_skips_stale_filings_and_keeps_order() -> None:
    wheel: ExpiryWheel[str] = ExpiryWheel(2.0, origin_s=1.0)
    wheel.file("a", 4.0)  # first sweep at or after 4 s: 5 s
    wheel.file("b", 5.0)
    wheel.file("c", 9.0)
    wheel.file("a", 8.0)  # filed again: the 4 s filing is stale
    assert wheel.take_due(3.0) == []
    assert wheel.take_due(5.0) == ["b"]
    assert sorted(wheel.take_due(9.0)) == ["a", "c"]
    assert len(wheel) == 0
    wheel.file("d", 10.0)
    wheel.discard("d")
    assert wheel.take_due(100.0) == []


def test_the_c_heap_is_trimmed_once_many_expired_names_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from l5d_twisted import heap
    from l5d_twisted.router import router as router_module

    trims: list[bool] = []

    def trim() -> bool:
        trims.append(True)
        return True

    monkeypatch.setattr(heap, "trim", trim)
    monkeypatch.setattr(router_module, "TRIM_AFTER_EVICTIONS", 50)
    h = Harness(cached(CONFIG, idleTtlSecs=20))
    for i in range(40):  # 80 routes and clients
        h.namer.set(f"s{i}", "127.0.0.1:8080")
        ok(h.call(f"s{i}"))
    h.clock.advance(22)
    assert not h.router._routes and trims == [True]  # once, when all were closed
    ok(h.call("s0"))
    h.clock.advance(22)  # two closed: not worth a trim
    assert trims == [True]


def test_heap_trim_answers_where_it_cannot_trim() -> None:
    from l5d_twisted import heap

    assert heap.trim() in (True, False)
