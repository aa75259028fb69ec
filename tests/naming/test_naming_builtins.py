"""The /$/ namers: inet (DNS with refresh, driven by a Clock and a fake resolver), rinet,
the rewriting io.buoyant namers, nil and fail."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.addr import AddrBound, AddrFailed, AddrNeg, AddrPending
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, State

P = Path.read


class FakeDns:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: list[str] = []

    def resolve(self, host: str, port: int) -> Deferred[list[str]]:
        self.calls.append(host)
        answer = self.answers.get(host, [])
        if isinstance(answer, Exception):
            return fail(answer)
        if isinstance(answer, Deferred):
            return answer
        return succeed(list(answer))


def bound_of(state: State) -> Any:
    assert isinstance(state, Ok) and isinstance(state.value, Leaf), state
    return state.value.value


def hosts(addr: Any) -> set[tuple[str, int]]:
    assert isinstance(addr, AddrBound), addr
    return {(a.host, a.port) for a in addr.addresses}


def test_inet_ip_literal_binds_at_once_without_dns() -> None:
    dns = FakeDns()
    i = Interpreter({}, reactor=Clock(), resolve=dns.resolve)
    bound = bound_of(i.bind(Dtab.read("/svc => /$/inet/127.0.0.1/8080"), P("/svc/rest")).sample())
    assert bound.id == P("/$/inet/127.0.0.1/8080") and bound.residual == P("/rest")
    assert hosts(bound.addr.sample()) == {("127.0.0.1", 8080)}
    assert dns.calls == []


def test_inet_host_name_resolves_and_refreshes_while_observed() -> None:
    clock = Clock()
    dns = FakeDns()
    dns.answers["web.local"] = ["10.0.0.1", "10.0.0.2"]
    i = Interpreter({}, reactor=clock, resolve=dns.resolve, dns_refresh_s=5.0)
    bound = bound_of(i.bind(Dtab.empty(), P("/$/inet/web.local/80")).sample())
    assert isinstance(bound.addr.sample(), AddrPending)  # nothing resolved before anyone watches
    seen: list[Any] = []
    handle = bound.addr.observe(seen.append)
    assert hosts(seen[-1]) == {("10.0.0.1", 80), ("10.0.0.2", 80)}
    dns.answers["web.local"] = ["10.0.0.3"]
    clock.advance(5)
    assert hosts(seen[-1]) == {("10.0.0.3", 80)}
    # a resolver error keeps the last good answer
    dns.answers["web.local"] = RuntimeError("resolver down")
    clock.advance(5)
    assert hosts(seen[-1]) == {("10.0.0.3", 80)}
    dns.answers["web.local"] = []
    clock.advance(5)
    assert isinstance(seen[-1], AddrNeg)
    handle.close()
    calls = len(dns.calls)
    clock.advance(60)
    assert len(dns.calls) == calls and not clock.getDelayedCalls()


def test_inet_first_lookup_error_is_a_failed_address_set() -> None:
    clock = Clock()
    dns = FakeDns()
    dns.answers["down.local"] = RuntimeError("resolver down")
    i = Interpreter({}, reactor=clock, resolve=dns.resolve)
    bound = bound_of(i.bind(Dtab.empty(), P("/$/inet/down.local/80")).sample())
    seen: list[Any] = []
    bound.addr.observe(seen.append)
    assert isinstance(seen[-1], AddrFailed) and "resolver down" in seen[-1].reason


def test_rinet_takes_port_then_host() -> None:
    i = Interpreter({}, reactor=Clock(), resolve=FakeDns().resolve)
    bound = bound_of(i.bind(Dtab.empty(), P("/$/io.buoyant.rinet/8080/127.0.0.2")).sample())
    assert bound.id == P("/$/io.buoyant.rinet/8080/127.0.0.2")
    assert hosts(bound.addr.sample()) == {("127.0.0.2", 8080)}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/$/inet/host", "needs a host and a port"),
        ("/$/inet/host/http", "invalid port 'http'"),
        ("/$/inet/host/70000", "invalid port '70000'"),
        ("/$/nosuchnamer/x", "unknown namer /$/nosuchnamer"),
    ],
)
def test_malformed_builtin_uses_fail_with_the_expected_form(path: str, message: str) -> None:
    state = (
        Interpreter({}, reactor=Clock(), resolve=FakeDns().resolve)
        .bind(Dtab.empty(), P(path))
        .sample()
    )
    assert isinstance(state, Failed) and message in str(state.error)


def _namer() -> MemoryNamer:
    return MemoryNamer(
        P("/n"),
        {
            "com/example/www": ["1.1.1.1:80"],
            "web/8080": ["2.2.2.2:8080"],
            "8080/web": ["3.3.3.3:8080"],
            "api": ["4.4.4.4:80"],
        },
    )


def _bound_id(dtab: str, path: str) -> Any:
    state = Interpreter({P("/n"): _namer()}).bind(Dtab.read(dtab), P(path)).sample()
    if isinstance(state, Ok) and isinstance(state.value, Leaf):
        return state.value.value.id.show()
    assert isinstance(state, Ok), state
    return state.value


def test_domain_to_path_prefix_reverses_the_domain_and_rebinds() -> None:
    dtab = "/p => /#/n; /svc => /$/io.buoyant.http.domainToPathPfx/p"
    assert _bound_id(dtab, "/svc/www.example.com") == "/#/n/com/example/www"
    assert _bound_id(dtab, "/svc/nothing.example.org") is NEG


def test_subdomain_of_prefix_keeps_the_subdomain() -> None:
    dtab = "/p => /#/n; /svc => /$/io.buoyant.http.subdomainOfPfx/example.com/p"
    assert _bound_id(dtab, "/svc/api.example.com") == "/#/n/api"
    assert _bound_id(dtab, "/svc/api.example.com:8080") == "/#/n/api"
    assert _bound_id(dtab, "/svc/api.other.org") is NEG
    assert _bound_id(dtab, "/svc/example.com") is NEG


def test_hostport_and_porthost_prefixes_split_host_and_port() -> None:
    assert (
        _bound_id("/p => /#/n; /svc => /$/io.buoyant.hostportPfx/p", "/svc/web:8080")
        == "/#/n/web/8080"
    )
    assert (
        _bound_id("/p => /#/n; /svc => /$/io.buoyant.porthostPfx/p", "/svc/web:8080")
        == "/#/n/8080/web"
    )
    # no port: the rule does not apply, so a fallback is used
    assert (
        _bound_id("/p => /#/n; /svc => /#/n/api | /$/io.buoyant.hostportPfx/p", "/svc/web")
        == "/#/n/api"
    )
    assert _bound_id("/p => /#/n; /svc => /$/io.buoyant.hostportPfx/p", "/svc/web") is NEG


def test_nil_and_fail() -> None:
    assert _bound_id("/svc => /$/nil", "/svc/x") is EMPTY
    assert _bound_id("/svc => /$/fail | /#/n/api", "/svc/x") is FAIL
    assert _bound_id("/svc => /#/n/none | /$/nil", "/svc/x") is EMPTY


def test_transformed_ids_are_not_bound_again() -> None:
    assert _bound_id("", "/%/io.l5d.port/4141/#/n/api") is NEG


@pytest_twisted.ensureDeferred
async def test_real_resolver_prefers_ipv4_for_localhost() -> None:
    from twisted.internet import reactor

    from l5d_twisted.naming.inet import thread_resolver

    ips = await thread_resolver(reactor)("localhost", 80)  # /etc/hosts: no DNS traffic
    assert "127.0.0.1" in ips and "::1" not in ips
