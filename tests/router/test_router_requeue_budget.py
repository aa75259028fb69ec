"""``client.requeueBudget`` (linkerd 1): the budget of requeues, the re-sends of requests
that never reached an endpoint (connection failures), per client.

In memory: a router over an in-memory namer whose one endpoint refuses connections and
another that answers; time is a Clock.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from l5d_twisted.config import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.naming.addr import AddrBound, Address, BoundName
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, Var
from l5d_twisted.router.router import Router
from l5d_twisted.service import Service
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics

REFUSING = Address("127.0.0.1", 1001)
ANSWERING = Address("127.0.0.1", 1002)

CONFIG = """
namers:
- kind: io.l5d.memory
  prefix: /mem
routers:
- protocol: http
  label: out
  dtab: /svc => /#/mem;
  service:
    # no service-level retries: requeues alone may save a refused connection
    retries: {budget: {minRetriesPerSec: 0, percentCanRetry: 0.0}}
  client:
    failureAccrual: {kind: none}
"""


class _Namer:
    def lookup(self, path: Path) -> Var[Any]:
        if path.segments[:1] != ("hello",):
            return Var(Ok(NEG))
        addr = Var(AddrBound(frozenset({REFUSING, ANSWERING})))
        return Var(Ok(Leaf(BoundName(Path.read("/#/mem/hello"), addr, path.drop(1)))))

    def state(self) -> Any:
        return {}


class _Endpoint(Service[Request, Response]):
    def __init__(self, address: Address, sent: list[Address]) -> None:
        self.address = address
        self.sent = sent

    def __call__(self, request: Request) -> Deferred[Response]:
        self.sent.append(self.address)
        if self.address == REFUSING:
            return fail(ConnectionFailed("connection refused"))
        return succeed(Response(200, Headers([(b"content-length", b"0")])))


def _run(config_text: str, requests: int = 100) -> tuple[int, dict[str, Any]]:
    """Send ``requests`` requests; (how many failed, the router's flat metrics)."""
    clock = Clock()
    metrics = MetricsTree(clock)
    sent: list[Address] = []
    router = Router(
        load_config(config_text).routers[0],
        Interpreter({Path.read("/mem"): _Namer()}, (), clock),
        reactor=clock,
        stats=metrics.stats,
        ctx=PluginContext(reactor=clock),
        rng=random.Random(3),
        endpoint_factory=lambda reactor, address, *a, **kw: _Endpoint(address, sent),
    )
    failed = 0
    for _ in range(requests):
        results: list[Any] = []
        router(Request(b"GET", b"/", Headers([(b"Host", b"hello")]))).addBoth(results.append)
        assert results, "answered at once (no timers involved)"
        if not isinstance(results[0], Response):
            failed += 1
            results[0].trap(ConnectionFailed)
        clock.advance(0.05)
    assert REFUSING in sent and ANSWERING in sent
    return failed, flat_metrics(metrics)


def _client_counter(metrics: dict[str, Any], name: str) -> float:
    found = [v for k, v in metrics.items() if "/client/" in k and k.endswith(name)]
    assert len(found) == 1, sorted(metrics)
    return float(found[0])


def test_default_budget_requeues_connection_failures_to_another_endpoint() -> None:
    failed, metrics = _run(CONFIG)
    assert failed == 0, "every refused connection was sent again, to the endpoint that answers"
    assert _client_counter(metrics, "retries/requeues") > 0
    assert _client_counter(metrics, "retries/budget_exhausted") == 0


def test_an_empty_requeue_budget_requeues_nothing() -> None:
    config = CONFIG + "    requeueBudget: {minRetriesPerSec: 0, percentCanRetry: 0.0}\n"
    assert (
        load_config(config)
        .routers[0]
        .client.params_for(Path.read("/#/mem/hello"))
        .requeue_budget.percent_can_retry
        == 0.0
    )
    failed, metrics = _run(config)
    assert failed > 0, "the refused connections now fail the request"
    assert _client_counter(metrics, "retries/requeues") == 0
    assert _client_counter(metrics, "retries/budget_exhausted") == failed


def test_a_percentage_budget_bounds_requeues_by_the_requests_sent() -> None:
    # no reserve: 10 % of the requests may be requeued (over the ttl window)
    config = (
        CONFIG + "    requeueBudget: {minRetriesPerSec: 0, percentCanRetry: 0.1, ttlSecs: 60}\n"
    )
    failed, metrics = _run(config, requests=400)
    requeues = _client_counter(metrics, "retries/requeues")
    assert 0 < requeues <= 400 * 0.1 + 1
    assert failed > 0
    assert _client_counter(metrics, "retries/budget_exhausted") == failed


def test_requeue_budget_per_prefix_and_bounds() -> None:
    import pytest

    from l5d_twisted.config import ConfigErrors

    config = load_config(
        """
routers:
- protocol: http
  client:
    kind: io.l5d.static
    configs:
    - prefix: /#/mem/hello
      requeueBudget: {percentCanRetry: 0.5, ttlSecs: 20}
"""
    )
    client = config.routers[0].client
    hello = client.params_for(Path.read("/#/mem/hello")).requeue_budget
    other = client.params_for(Path.read("/#/mem/other")).requeue_budget
    assert (hello.min_retries_per_sec, hello.percent_can_retry, hello.ttl_secs) == (10, 0.5, 20)
    assert (other.min_retries_per_sec, other.percent_can_retry, other.ttl_secs) == (10, 0.2, 10)
    with pytest.raises(ConfigErrors, match=r"requeueBudget.ttlSecs: expected an integer 1-60"):
        load_config("routers: [{protocol: http, client: {requeueBudget: {ttlSecs: 0}}}]")
