"""StatsFilter: what one request records, success decided by the classifier."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.message import Request, Response
from l5d_twisted.resilience.classifier import ResponseClass
from l5d_twisted.service import FunctionService
from l5d_twisted.telemetry.filters import StatsFilter
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics


class FiveXXIsFailure:
    def classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass:
        if isinstance(outcome, BaseException) or outcome.status >= 500:
            return ResponseClass.NON_RETRYABLE_FAILURE
        return ResponseClass.SUCCESS


def build(clock: Clock, answer):  # type: ignore[no-untyped-def]
    tree = MetricsTree(clock)
    scope = tree.stats.scope("rt", "out", "service", "/svc/hello")
    service = StatsFilter(scope, FiveXXIsFailure(), clock).and_then(FunctionService(answer))
    return tree, service


def metrics(tree: MetricsTree) -> dict[str, object]:
    prefix = "rt/out/service/svc/hello/"
    return {k[len(prefix) :]: v for k, v in flat_metrics(tree).items() if k.startswith(prefix)}


def test_success_and_latency_to_response_head() -> None:
    clock = Clock()
    pending: list[Deferred[Response]] = []

    def answer(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        pending.append(d)
        return d

    tree, service = build(clock, answer)
    results: list[Response] = []
    service(Request(b"GET", b"/")).addCallback(results.append)
    m = metrics(tree)
    assert m["requests"] == 1 and m["pending"] == 1 and m["success"] == 0
    clock.advance(0.25)
    pending[0].callback(Response(200))
    m = metrics(tree)
    assert results[0].status == 200
    assert m["pending"] == 0 and m["success"] == 1 and m["failures"] == 0
    assert m["status/200"] == 1 and m["status/2XX"] == 1
    assert abs(m["request_latency_ms.max"] - 250.0) < 1e-6  # type: ignore[operator]


def test_5xx_response_is_a_failure_without_kind() -> None:
    tree, service = build(Clock(), lambda r: succeed(Response(503)))
    service(Request(b"GET", b"/"))
    m = metrics(tree)
    assert m["failures"] == 1 and m["success"] == 0
    assert m["status/503"] == 1 and m["status/5XX"] == 1
    assert not any(k.startswith("failures/") for k in m)


def test_exception_counts_kind_and_mesh_status_and_propagates() -> None:
    tree, service = build(Clock(), lambda r: fail(ConnectionFailed("refused")))
    errors: list[object] = []
    service(Request(b"GET", b"/")).addErrback(lambda f: errors.append(f.value))
    m = metrics(tree)
    assert isinstance(errors[0], ConnectionFailed)
    assert m["failures"] == 1 and m["failures/ConnectionFailed"] == 1
    assert m["status/502"] == 1 and m["pending"] == 0


def test_plain_exception_uses_class_name_and_synchronous_raise_is_caught() -> None:
    def boom(request: Request) -> Deferred[Response]:
        raise ValueError("bad")

    tree, service = build(Clock(), boom)
    errors: list[object] = []
    service(Request(b"GET", b"/")).addErrback(lambda f: errors.append(f.value))
    m = metrics(tree)
    assert isinstance(errors[0], ValueError)
    assert m["failures/ValueError"] == 1 and m["pending"] == 0


def test_a_broken_classifier_counts_a_failure_not_a_crash() -> None:
    class Broken:
        def classify(self, request: Request, outcome: object) -> ResponseClass:
            raise RuntimeError("oops")

    clock = Clock()
    tree = MetricsTree(clock)
    scope = tree.stats.scope("rt", "out", "service", "svc/hello")
    service = StatsFilter(scope, Broken(), clock).and_then(
        FunctionService(lambda r: succeed(Response(200)))
    )
    got: list[Response] = []
    service(Request(b"GET", b"/")).addCallback(got.append)
    assert got[0].status == 200
    assert metrics(tree)["failures"] == 1
