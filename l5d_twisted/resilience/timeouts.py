"""Timeouts: give up on a call after a while, and cancel it (``requestAttemptTimeoutMs``).

:func:`call_with_timeout` is the shared mechanism (the deadline filter uses it too): it
calls the service, and if no outcome arrives within the timeout it cancels the inner
Deferred (so the HTTP client can drop the request) and fails with the error ``make_error``
builds.  An outcome arriving after the timeout is dropped, its response body discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from l5d_twisted.errors import MeshError, RequestTimeout
from l5d_twisted.service import Filter, Service


def call_with_timeout(
    service: Service[Any, Any],
    request: Any,
    timeout_s: float,
    clock: Any,
    make_error: Callable[[], MeshError],
) -> Deferred[Any]:
    try:
        inner = service(request)
    except Exception as e:
        return fail(e)
    if inner.called:  # answered synchronously: nothing to time
        return inner

    timed_out = False
    outer: Deferred[Any] = Deferred(lambda _: inner.cancel())

    def on_timeout() -> None:
        nonlocal timed_out
        timed_out = True
        inner.cancel()
        if not outer.called:
            outer.errback(make_error())

    timer = clock.callLater(timeout_s, on_timeout)

    def on_outcome(result: Any) -> None:
        if timer.active():
            timer.cancel()
        if timed_out or outer.called:
            body = getattr(result, "body", None)
            if body is not None:
                body.discard()
            return None  # swallow: the caller already has its answer
        if isinstance(result, Failure):
            outer.errback(result)
        else:
            outer.callback(result)
        return None

    inner.addBoth(on_outcome)
    return outer


class TimeoutFilter(Filter[Any, Any]):
    """Fail with ``errors.RequestTimeout`` (503) when the next service takes too long."""

    def __init__(self, timeout_s: float, clock: Any) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._clock = clock
        self._message = f"exceeded {timeout_s * 1000:g} ms request timeout"

    def _error(self) -> MeshError:
        return RequestTimeout(self._message, timeout_s=self.timeout_s)

    def apply(self, request: Any, service: Service[Any, Any]) -> Deferred[Any]:
        return call_with_timeout(service, request, self.timeout_s, self._clock, self._error)
