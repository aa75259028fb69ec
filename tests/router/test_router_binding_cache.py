"""``routers[].bindingCache`` (issue 17): cache sizes and idle time from the config, and an
expired name lets go of everything it held (route, client, balancer, endpoints, the namer's
watch, its metric scopes), on a task.Clock."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from test_router_routing import CONFIG, Harness, cached, ok
from twisted.internet.defer import Deferred

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.model import BindingCacheConfig
from l5d_twisted.http.message import Headers, Response
from l5d_twisted.router.router import sweep_interval


def test_linkerd1_keys_with_defaults_for_ten_thousand_names() -> None:
    cache = load_config(CONFIG).routers[0].binding_cache
    assert cache == BindingCacheConfig(
        paths=10_000, trees=10_000, bounds=10_000, clients=10_000, idle_ttl_secs=600
    )
    configured = load_config(
        cached(CONFIG, paths=7, trees=1, bounds=2, clients=3, idleTtlSecs=45)
    ).routers[0]
    assert configured.binding_cache == BindingCacheConfig(7, 1, 2, 3, 45)


@pytest.mark.parametrize(
    "block, message",
    [
        ("{paths: 0}", "bindingCache.paths: expected an integer >= 1, got 0"),
        ("{clients: -5}", "bindingCache.clients: expected an integer >= 1"),
        ("{idleTtlSecs: 0}", "bindingCache.idleTtlSecs: expected an integer >= 1"),
        ("{idleTtlSecs: ten}", "bindingCache.idleTtlSecs"),
        ("{idleTtl: 10}", "unknown key 'idleTtl'"),
        ("100", "bindingCache"),
    ],
)
def test_bad_binding_cache_values_are_config_errors(block: str, message: str) -> None:
    text = CONFIG.replace("label: outgoing", f"label: outgoing\n  bindingCache: {block}")
    with pytest.raises(ConfigErrors) as raised:
        load_config(text)
    assert message in str(raised.value)


def test_the_default_caches_hold_more_names_than_linkerd1s_thousand() -> None:
    h = Harness(CONFIG)
    for i in range(1_500):
        h.namer.set(f"s{i}", "127.0.0.1:8080")
    for i in range(1_500):
        h.clock.advance(0.01)
        ok(h.call(f"s{i}"))
    assert len(h.router._routes) == 1_500
    assert len(h.router.client_state()) == 1_500


def test_configured_sizes_bound_routes_and_clients_apart() -> None:
    h = Harness(cached(CONFIG, paths=4, clients=2))
    for i in range(10):
        h.namer.set(f"s{i}", f"127.0.0.1:{3000 + i}")
        h.clock.advance(1)
        ok(h.call(f"s{i}"))
    assert {key[0].show() for key in h.router._routes} == {f"/svc/s{i}" for i in range(6, 10)}
    assert set(h.router.client_state()) == {"/#/mem/s8", "/#/mem/s9"}


def test_sweep_interval_follows_the_ttl() -> None:
    assert sweep_interval(600) == 30.0
    assert sweep_interval(20) == 2.0
    assert sweep_interval(3) == 1.0


def test_the_configured_idle_ttl_is_respected() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=20))
    h.namer.set("a", "127.0.0.1:8080")
    h.namer.set("b", "127.0.0.1:8081")
    ok(h.call("a"))
    ok(h.call("b"))
    for _ in range(9):  # 18 s: b is used every 2 s, a not at all
        h.clock.advance(2)
        ok(h.call("b"))
    assert set(h.router.client_state()) == {"/#/mem/a", "/#/mem/b"}, "not expired before its TTL"
    h.clock.advance(2)  # a idle 20 s: gone by the next sweep (every 2 s)
    h.clock.advance(2)
    assert set(h.router.client_state()) == {"/#/mem/b"}
    assert [key[0].show() for key in h.router._routes] == ["/svc/b"]
    h.clock.advance(23)
    assert h.router.client_state() == {} and not h.router._routes


def test_expiry_releases_everything_a_name_held() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=30))
    h.metrics.set_expiry_ttl(30)
    h.namer.set("gone", "127.0.0.1:8080", "127.0.0.1:8081")
    ok(h.call("gone"))
    ok(h.call("gone"))
    router = h.router
    client = next(iter(router._clients.values()))
    refs: list[weakref.ref[Any]] = [
        weakref.ref(x)
        for x in (
            *router._binders.values(),
            *router._routes.values(),
            client,
            client.balancer,
            *router._client_services.values(),
        )
    ]
    del client
    watched = h.namer.addrs["gone"]
    assert watched.observed, "the client watches the name's addresses while it lives"
    scopes = {key for key in h.metrics.group_keys() if "gone" in "/".join(key)}
    assert scopes == {
        ("rt", "outgoing", "service", "svc/gone"),
        ("rt", "outgoing", "client", "#/mem/gone"),
    }
    gc.collect()
    gc.disable()  # freed by reference counting, not left for a full collection
    try:
        for _ in range(12):  # the sweeps and metric ticks, every 3 s
            h.clock.advance(3)
        assert not router._routes and not router._binders
        assert not router._clients and not router._client_services
        # (the loop markers live on the routes: no router-wide table to empty)
        assert not watched.observed, "the namer watch is closed"
        assert not [key for key in h.metrics.group_keys() if "gone" in "/".join(key)]
        assert [r() for r in refs] == [None] * len(refs)
        assert not [k for k in h.metrics._dormant if "gone" in "/".join(k)], (
            "no expired metric scope is kept alive"
        )
    finally:
        gc.enable()
    ok(h.call("gone"))  # and it comes back on demand
    assert set(router.client_state()) == {"/#/mem/gone"}


def test_a_client_with_a_request_in_flight_outlives_its_ttl() -> None:
    h = Harness(cached(CONFIG, idleTtlSecs=10))
    h.namer.set("slow", "127.0.0.1:8080")
    ok(h.call("slow"))  # makes the endpoint
    endpoint = next(iter(h.endpoints.values()))
    endpoint.hold = True
    held = h.call("slow")
    assert isinstance(held, Deferred) and not held.called
    h.clock.advance(25)
    assert set(h.router.client_state()) == {"/#/mem/slow"}, "in flight: not closed"
    endpoint.held[0].callback(Response(200, Headers([(b"content-length", b"0")])))
    h.clock.advance(25)
    assert h.router.client_state() == {}, "closed once idle for its TTL"
