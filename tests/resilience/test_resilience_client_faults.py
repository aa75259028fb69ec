"""Failures the client caused never count against the endpoint (issue 10, finding 4).

Twelve requests with a malformed chunk size (or a client hanging up mid-upload) used to
fail as 502 ``ConnectionReset`` at the endpoint: failure accrual ejected both healthy
instances and success rates fell.  They now fail as ``errors.ClientFault`` (400, 499,
408), which accrual ignores, stats count as ``client_errors`` and nothing retries.
"""

from __future__ import annotations

from typing import Any

import pytest
from resilience_fakes import FakeEndpoint, RecordingStats, ScriptedService, request, response
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from l5d_twisted import errors
from l5d_twisted.http.client import EndpointClient, PoolSettings
from l5d_twisted.http.stream import StreamBody
from l5d_twisted.naming.addr import Address
from l5d_twisted.resilience.accrual import AccrualState, FailureAccrualService
from l5d_twisted.resilience.accrual_policies import ConsecutiveFailuresPolicy
from l5d_twisted.resilience.backoff import ConstantBackoff
from l5d_twisted.resilience.budget import RetryBudget
from l5d_twisted.resilience.classifier import ResponseClass
from l5d_twisted.resilience.classifiers import (
    non_retryable_5xx,
    retryable_all_5xx,
    retryable_read_5xx,
)
from l5d_twisted.resilience.requeues import RequeueFilter
from l5d_twisted.resilience.retries import RetryFilter
from l5d_twisted.service import Status
from l5d_twisted.telemetry.filters import StatsFilter

CLIENT_FAULTS = [
    errors.MalformedRequestBody("malformed request: invalid chunk size"),
    errors.ClientDisconnected("the client closed the connection mid-request"),
    errors.ClientTimeout("timed out reading the request body"),
]


def accrual() -> tuple[FailureAccrualService, FakeEndpoint, RecordingStats]:
    stats = RecordingStats()
    endpoint = FakeEndpoint()
    svc = FailureAccrualService(
        endpoint,
        ConsecutiveFailuresPolicy(5, ConstantBackoff(10)),
        non_retryable_5xx(),
        Clock(),
        stats,
    )
    return svc, endpoint, stats


def fail_calls(
    svc: FailureAccrualService, endpoint: FakeEndpoint, error: BaseException, n: int
) -> None:
    for _ in range(n):
        got: list[Any] = []
        svc(request(b"POST")).addBoth(got.append)
        endpoint.calls[-1][1].errback(error)
        assert isinstance(got[0], Failure) and got[0].value is error


@pytest.mark.parametrize("error", CLIENT_FAULTS, ids=lambda e: type(e).__name__)
def test_twelve_client_faults_do_not_eject_the_endpoint(error: BaseException) -> None:
    svc, endpoint, stats = accrual()
    fail_calls(svc, endpoint, error, 12)
    assert svc.state is AccrualState.ALIVE and svc.status is Status.OPEN
    assert stats.counters["failure_accrual/removals"] == 0


def test_twelve_connection_resets_still_eject_it() -> None:
    """The control: what these requests failed as before is a real endpoint failure."""
    svc, endpoint, stats = accrual()
    fail_calls(
        svc, endpoint, errors.ConnectionReset("the request body could not be sent whole"), 12
    )
    assert svc.state is AccrualState.DEAD and stats.counters["failure_accrual/removals"] == 1


def test_client_fault_does_not_break_a_failure_streak_either() -> None:
    """Neither a failure nor a success: four real failures and a client fault are not five."""
    svc, endpoint, _ = accrual()
    fail_calls(svc, endpoint, errors.ConnectionReset("x"), 4)
    fail_calls(svc, endpoint, CLIENT_FAULTS[0], 1)
    assert svc.state is AccrualState.ALIVE
    fail_calls(svc, endpoint, errors.ConnectionReset("x"), 1)
    assert svc.state is AccrualState.DEAD


def test_a_probe_that_the_client_broke_leaves_the_probe_open() -> None:
    svc, endpoint, _ = accrual()
    fail_calls(svc, endpoint, errors.ConnectionReset("x"), 5)
    svc._open_probe()
    assert svc.state is AccrualState.PROBE_OPEN
    fail_calls(svc, endpoint, CLIENT_FAULTS[1], 1)
    assert svc.state is AccrualState.PROBE_OPEN  # it told us nothing about the endpoint


@pytest.mark.parametrize("error", CLIENT_FAULTS, ids=lambda e: type(e).__name__)
def test_stats_count_client_errors_apart_from_success_and_failures(
    error: errors.ClientFault,
) -> None:
    stats = RecordingStats()
    service = StatsFilter(stats, non_retryable_5xx(), Clock()).and_then(
        ScriptedService(error, response(200))
    )
    service(request(b"POST")).addErrback(lambda f: None)
    service(request())
    assert stats.counters["requests"] == 2
    assert stats.counters["client_errors"] == 1
    assert stats.counters["success"] == 1 and stats.counters["failures"] == 0
    assert stats.counters[f"status/{error.status}"] == 1  # what the client was answered (or 499)
    assert not any(k.startswith("failures/") for k in stats.counters)


def test_no_client_errors_counter_until_one_happens() -> None:
    stats = RecordingStats()
    StatsFilter(stats, non_retryable_5xx(), Clock()).and_then(ScriptedService(response(200)))(
        request()
    )
    assert "client_errors" not in stats.counters


@pytest.mark.parametrize(
    "classifier", [non_retryable_5xx(), retryable_read_5xx(), retryable_all_5xx()], ids=repr
)
@pytest.mark.parametrize("error", CLIENT_FAULTS, ids=lambda e: type(e).__name__)
def test_classifiers_never_retry_a_client_fault(classifier: Any, error: BaseException) -> None:
    assert classifier.classify(request(b"GET"), error) is ResponseClass.NON_RETRYABLE_FAILURE


def test_retries_and_requeues_leave_a_client_fault_alone() -> None:
    clock = Clock()
    stats = RecordingStats()
    endpoint = ScriptedService(CLIENT_FAULTS[0], response(200))
    budget = RetryBudget(100, 1.0, 10, clock)
    retries = RetryFilter(retryable_all_5xx(), budget, ConstantBackoff(0), clock, stats)
    requeues = RequeueFilter(RetryBudget(100, 1.0, 10, clock), stats)
    outcomes: list[Any] = []
    retries.and_then(requeues.and_then(endpoint))(request(b"GET")).addBoth(outcomes.append)
    assert isinstance(outcomes[0], Failure) and isinstance(
        outcomes[0].value, errors.MalformedRequestBody
    )
    assert stats.counters["retries/total"] == 0 and stats.counters["retries/requeues"] == 0


def test_a_cancelled_request_counts_as_a_client_error_with_status_499() -> None:
    """The client went away (the server cancels its request): no failure, like accrual."""
    stats = RecordingStats()
    endpoint = FakeEndpoint()
    service = StatsFilter(stats, non_retryable_5xx(), Clock()).and_then(endpoint)
    d = service(request(b"POST"))
    d.addErrback(lambda f: None)
    d.cancel()
    assert stats.counters["client_errors"] == 1 and stats.counters["failures"] == 0
    assert stats.counters["status/499"] == 1 and stats.counters["status/5XX"] == 0


def test_clients_gone_while_the_endpoint_connection_is_being_made_do_not_eject_it() -> None:
    """The flake of tests/http/test_http_hostile_wire.py's finding-4 test, in order.

    A client sends an upload's head and hangs up before the proxy has connected upstream:
    the server fails the body (``ClientDisconnected``, nobody consumes it yet) and cancels
    the request, which cancels the pool's connect.  Twisted's endpoints fail a cancelled
    connect with ``ConnectingCancelledError`` (no ``CancelledError``): the pool counted it
    in ``connect_failures`` and turned it into a ``ConnectionFailed`` that accrual held
    against the endpoint, so twelve such clients ejected a healthy one.
    """
    clock = MemoryReactorClock()
    stats = RecordingStats()
    client_stats = stats.scope("client")
    endpoint = EndpointClient(clock, Address("127.0.0.1", 8080), PoolSettings(), client_stats, 1.0)
    policy = ConsecutiveFailuresPolicy(5, ConstantBackoff(10))
    accrual_svc = FailureAccrualService(endpoint, policy, non_retryable_5xx(), clock, client_stats)
    service = StatsFilter(client_stats, non_retryable_5xx(), clock).and_then(accrual_svc)
    for _ in range(12):
        body = StreamBody(None, None)
        body.write(b"hello")
        outcomes: list[Any] = []
        d = service(request(b"POST", b"/sink", body=body))
        d.addBoth(outcomes.append)
        assert len(clock.tcpClients) == 1 and not outcomes  # connecting upstream
        body.fail(errors.ClientDisconnected("the client closed the connection mid-request"))
        d.cancel()  # what the server does with the request of a client that went away
        clock.tcpClients.clear()
        assert isinstance(outcomes[0], Failure) and isinstance(outcomes[0].value, CancelledError)
    assert accrual_svc.state is AccrualState.ALIVE and accrual_svc.status is Status.OPEN
    counters = stats.counters
    assert counters["client/failure_accrual/removals"] == 0
    assert counters["client/connect_failures"] == 0
    assert counters["client/failures"] == 0 and counters["client/client_errors"] == 12
    assert endpoint.pending == 0 and endpoint._pool._connecting == 0
