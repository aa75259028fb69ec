"""An evicted route and client are freed by reference counting alone, not by a full GC.

Names come from requests (random ``Host`` values, override dtabs), so routes and clients
are evicted all the time under attack; left in reference cycles each one waits for a full
garbage collection, which then takes long (bench/attack/mixed.py).  The collector is
disabled while the test evicts (``gc.collect()`` is never called to free them).
"""

from __future__ import annotations

import weakref
from typing import Any

import pytest
from l5d_testing import no_gc
from test_router_routing import CONFIG, Harness, cached, ok

import l5d_twisted.router.router as router_module
from l5d_twisted.errors import NoHostsAvailable


@pytest.fixture
def harness(monkeypatch: Any) -> Harness:
    h = Harness(cached(CONFIG, paths=3, clients=3))
    for i in range(10):
        h.namer.set(f"svc{i}", f"127.0.0.1:{2000 + i}")
    return h


def evict_all(h: Harness) -> None:
    """Enough new names to push every earlier route and client out of the caches."""
    for i in range(1, 8):
        h.clock.advance(1)
        ok(h.call(f"svc{i}"))
    h.sent.clear()


def test_an_evicted_route_and_its_client_are_freed(harness: Harness) -> None:
    h = harness
    with no_gc():
        ok(h.call("svc0"))
        router = h.router
        refs = [
            weakref.ref(x)
            for x in (
                *router._binders.values(),
                *router._routes.values(),
                *router._clients.values(),
                *router._client_services.values(),
            )
        ]
        refs.append(weakref.ref(next(iter(router._clients.values())).balancer))
        assert len(refs) == 5
        evict_all(h)
        assert [r() for r in refs] == [None] * 5


def test_an_evicted_route_that_failed_is_freed(harness: Harness) -> None:
    h = harness
    with no_gc():
        error = h.call("nobody")  # negative: its choice holds a NoHostsAvailable
        assert isinstance(error, NoHostsAvailable)
        ref = weakref.ref(next(iter(h.router._binders.values())))
        del error
        evict_all(h)
        assert ref() is None


def test_an_evicted_override_route_is_freed(harness: Harness, monkeypatch: Any) -> None:
    h = harness
    monkeypatch.setattr(router_module, "MAX_OVERRIDE_ROUTES", 1)
    with no_gc():
        ok(h.call("svc0", [(b"l5d-dtab", b"/svc/svc0 => /svc/svc1")]))
        (key,) = [k for k in h.router._binders if k[1]]
        ref = weakref.ref(h.router._binders[key])
        ok(h.call("svc0", [(b"l5d-dtab", b"/svc/svc0 => /svc/svc2")]))  # evicts the first
        assert key not in h.router._binders
        assert ref() is None


def test_a_route_whose_request_dtab_ran_out_of_binding_budget_is_freed(
    harness: Harness, monkeypatch: Any
) -> None:
    h = harness
    monkeypatch.setattr(router_module, "MAX_OVERRIDE_ROUTES", 1)
    # a union of unions 40 deep: over the tree depth limit (a BindingLimitError, 400)
    deep = ";".join(f"/svc/d{i} => /svc/d{i + 1} & /svc/e{i + 1}" for i in range(40))
    with no_gc():
        error = h.call("d0", [(b"l5d-dtab", deep.encode())])
        assert getattr(error, "status", None) == 400, error
        (key,) = [k for k in h.router._binders if k[1]]
        ref = weakref.ref(h.router._binders[key])
        del error
        ok(h.call("svc0", [(b"l5d-dtab", b"/svc/svc0 => /svc/svc2")]))  # evicts it
        assert ref() is None
