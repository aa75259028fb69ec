from __future__ import annotations

import pytest
from resilience_fakes import request, response

from l5d_twisted import errors
from l5d_twisted.registry import CLASSIFIERS
from l5d_twisted.resilience.classifier import ResponseClass

S, R, N = (
    ResponseClass.SUCCESS,
    ResponseClass.RETRYABLE_FAILURE,
    ResponseClass.NON_RETRYABLE_FAILURE,
)


def classifier(kind: str):  # type: ignore[no-untyped-def]
    plugin = CLASSIFIERS.get(kind)
    return plugin.factory(plugin.config_type())


ALL_KINDS = [
    "io.l5d.http.nonRetryable5XX",
    "io.l5d.http.retryableRead5XX",
    "io.l5d.http.retryableIdempotent5XX",
    "io.l5d.http.retryableAll5XX",
    "io.l5d.http.allSuccessful",
]

# method -> expected class of a 503 for each kind, in ALL_KINDS order
TABLE = {
    b"GET": [N, R, R, R, S],
    b"HEAD": [N, R, R, R, S],
    b"OPTIONS": [N, R, R, R, S],
    b"TRACE": [N, R, R, R, S],
    b"PUT": [N, N, R, R, S],
    b"DELETE": [N, N, R, R, S],
    b"POST": [N, N, N, R, S],
    b"PATCH": [N, N, N, R, S],
}


def test_all_kinds_registered() -> None:
    for kind in ALL_KINDS:
        assert kind in CLASSIFIERS


@pytest.mark.parametrize("method", sorted(TABLE))
def test_5xx_by_method(method: bytes) -> None:
    for kind, expected in zip(ALL_KINDS, TABLE[method]):
        got = classifier(kind).classify(request(method), response(503))
        assert got is expected, (kind, method)


def test_lowercase_method_is_recognised() -> None:
    assert classifier("io.l5d.http.retryableRead5XX").classify(request(b"get"), response(500)) is R


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("status", [200, 204, 301, 404, 499])
def test_non_5xx_is_success(kind: str, status: int) -> None:
    assert classifier(kind).classify(request(b"POST"), response(status)) is S


@pytest.mark.parametrize("method", sorted(TABLE))
def test_exceptions_retryable_where_5xx_are(method: bytes) -> None:
    for kind, expected in zip(ALL_KINDS, TABLE[method]):
        got = classifier(kind).classify(request(method), errors.ConnectionReset("reset"))
        assert got is (R if expected is R else N), (kind, method)
        assert classifier(kind).classify(request(method), errors.RequestTimeout("slow")) is got


@pytest.mark.parametrize("kind", ["io.l5d.http.nonRetryable5XX", "io.l5d.http.allSuccessful"])
def test_exceptions(kind: str) -> None:
    c = classifier(kind)
    post = request(b"POST")
    assert c.classify(post, errors.ConnectionFailed("refused")) is R
    assert c.classify(post, errors.Overloaded("full")) is R
    assert c.classify(post, errors.ConnectionReset("reset")) is N
    assert c.classify(post, errors.RequestTimeout("slow")) is N
    assert c.classify(post, RuntimeError("boom")) is N


@pytest.mark.parametrize("kind", ALL_KINDS[:4])
def test_downstream_mesh_retryable_header(kind: str) -> None:
    c = classifier(kind)
    marked = response(502, [(b"L5d-Retryable", b"true")])
    assert c.classify(request(b"POST"), marked) is R
    assert c.classify(request(b"POST"), response(502, [(b"l5d-retryable", b"false")])) in (N, R)
    if kind == "io.l5d.http.nonRetryable5XX":
        assert c.classify(request(b"GET"), response(502, [(b"l5d-retryable", b"false")])) is N


def test_cancellation_is_never_retryable() -> None:
    from twisted.internet.defer import CancelledError

    for kind in ALL_KINDS:
        assert classifier(kind).classify(request(b"GET"), CancelledError()) is N


def test_unroutable_is_never_retryable() -> None:
    for kind in ALL_KINDS:
        for error in (errors.NoHostsAvailable("none"), errors.BindingTimeout("pending")):
            assert classifier(kind).classify(request(b"GET"), error) is N, (kind, error)
