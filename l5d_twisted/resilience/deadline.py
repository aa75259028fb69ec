"""Deadlines: a request's end-to-end time limit, carried from hop to hop.

The ``l5d-ctx-deadline`` header holds ``<timestamp_ns> <deadline_ns>`` (nanoseconds since
the epoch: when it was written, and when the request must be done).  A request may carry
several (repeated headers or comma-joined values); the strictest (earliest) deadline wins.
Malformed values are ignored, with a log line.

:class:`DeadlineFilter` combines that with this router's ``totalTimeoutMs`` (again the
stricter wins), then:

* if the deadline has already passed, answers ``errors.DeadlineExceeded`` (503) at once,
  without calling the next service;
* otherwise rewrites the header on the forwarded request as ``<now_ns> <deadline_ns>`` (one
  value), records the deadline (seconds on the clock) in ``request.ctx[DEADLINE]``, and
  enforces the remaining time as a timeout (``RequestTimeout`` when totalTimeoutMs was the
  binding limit, ``DeadlineExceeded`` when the caller's deadline was).
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.errors import DeadlineExceeded, MeshError, RequestTimeout
from l5d_twisted.request_context import DEADLINE
from l5d_twisted.resilience.timeouts import call_with_timeout
from l5d_twisted.service import Filter, Service

log = Logger()

DEADLINE_HEADER = b"l5d-ctx-deadline"
_NS = 1_000_000_000


def parse_deadlines(values: list[bytes]) -> int | None:
    """The strictest deadline (ns) among the header values, or None if there is none."""
    best: int | None = None
    for value in values:
        for item in value.split(b","):
            parts = item.split()
            if not parts:
                continue
            try:
                if len(parts) != 2:
                    raise ValueError("expected '<timestamp_ns> <deadline_ns>'")
                int(parts[0])
                deadline = int(parts[1])
                if deadline < 0:
                    raise ValueError("negative deadline")
            except ValueError as e:
                log.warn(
                    "ignoring malformed l5d-ctx-deadline value {value!r}: {reason}",
                    value=item.strip().decode("latin-1")[:100],
                    reason=str(e),
                )
                continue
            if best is None or deadline < best:
                best = deadline
    return best


def format_deadline(now_ns: int, deadline_ns: int) -> bytes:
    return b"%d %d" % (now_ns, deadline_ns)


class _TimedCall:
    """One call under the total timeout: the caller's Deferred and the next layer's."""

    __slots__ = ("inner", "outer", "deadline", "done", "_timer")

    def __init__(self, inner: Deferred[Any], deadline: float, timer: _TotalTimer) -> None:
        self.inner: Deferred[Any] | None = inner
        self.outer: Deferred[Any] | None = Deferred(self._cancel)
        self.deadline = deadline
        self.done = False
        self._timer = timer

    def _cancel(self, _outer: Deferred[Any]) -> None:
        if self.inner is not None:
            self.inner.cancel()

    def outcome(self, result: Any) -> None:
        outer = self.outer
        if self.done or outer is None or outer.called:
            body = getattr(result, "body", None)
            if body is not None:
                body.discard()
            return None  # swallow: the caller already has its answer
        self._settle()
        if isinstance(result, Failure):
            outer.errback(result)
        else:
            outer.callback(result)
        return None

    def expire(self) -> None:
        outer, inner = self.outer, self.inner
        self._settle()
        if inner is not None:
            inner.cancel()
        if outer is not None and not outer.called:
            outer.errback(self._timer.error())

    def _settle(self) -> None:
        # (no reference back to the caller's Deferred, whose canceller holds this call)
        self.done = True
        self.outer = self.inner = None
        self._timer.settled()


class _TotalTimer:
    """The calls one filter times with its ``totalTimeoutMs``, oldest first, under one timer.

    Every call gets the same timeout, so deadlines come in the order calls start: one
    reactor timer, for the oldest call still pending, replaces a ``callLater`` and a
    ``cancel`` per request.  Settled calls leave the queue when they reach its head, or
    all at once when they outnumber the pending ones (so the queue stays within twice the
    requests in flight).
    """

    __slots__ = ("_clock", "_timeout_s", "_queue", "_pending", "_call")

    def __init__(self, clock: Any, timeout_s: float) -> None:
        self._clock = clock
        self._timeout_s = timeout_s
        # made by the first call after an idle time, dropped when the last one settles
        # (an empty deque is ~600 bytes, and every routed name has a filter; issue 17)
        self._queue: deque[_TimedCall] | None = None
        self._pending = 0
        self._call: Any = None  # the reactor timer

    def error(self) -> MeshError:
        return RequestTimeout(
            f"exceeded {self._timeout_s * 1000:g} ms total timeout", timeout_s=self._timeout_s
        )

    def add(self, call: _TimedCall, now: float) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(call)
        self._pending += 1
        if self._call is None:
            self._call = self._clock.callLater(max(call.deadline - now, 0.0), self._fire)
        elif len(queue) > 64 and len(queue) > 2 * self._pending:
            self._queue = deque(c for c in queue if not c.done)

    def settled(self) -> None:
        self._pending -= 1
        if not self._pending:
            # idle: no timer left behind, no queue (the next call starts a fresh one)
            self._queue = None
            if self._call is not None:
                self._call.cancel()
                self._call = None

    def _fire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        while True:
            # (re-read: an expiry may settle the last call, dropping the queue, and a
            # callback may start a call with a fresh one)
            queue = self._queue
            if not queue:
                break
            head = queue[0]
            if head.done:
                queue.popleft()
                continue
            if head.deadline > now:
                break
            queue.popleft()
            head.expire()
        queue = self._queue
        if queue and self._call is None:
            self._call = self._clock.callLater(max(queue[0].deadline - now, 0.0), self._fire)


@functools.lru_cache(maxsize=1024)  # (from the configuration: a handful)
def _nanoseconds(seconds: float) -> int:
    """``seconds`` in integer nanoseconds, one int object per distinct value (past 2**30
    an int is an object of its own: 32 bytes per route's filter otherwise; issue 17)."""
    return int(seconds * _NS)


class DeadlineFilter(Filter[Any, Any]):
    __slots__ = ("_clock", "total_timeout_s", "_total_ns", "_total")

    def __init__(self, clock: Any, total_timeout_s: float | None = None) -> None:
        if total_timeout_s is not None and total_timeout_s <= 0:
            raise ValueError(f"totalTimeout must be positive, got {total_timeout_s}")
        self._clock = clock
        self.total_timeout_s = total_timeout_s
        self._total_ns = None if total_timeout_s is None else _nanoseconds(total_timeout_s)
        self._total = None if total_timeout_s is None else _TotalTimer(clock, total_timeout_s)

    def apply(self, request: Any, service: Service[Any, Any]) -> Deferred[Any]:
        headers = request.headers
        has_header = DEADLINE_HEADER in headers
        total_ns = self._total_ns
        if not has_header:
            if total_ns is None:
                return service(request)  # nothing to enforce: no clock read, no timer, no callback
            return self._apply_total(request, service, headers, total_ns)
        now_ns = int(self._clock.seconds() * _NS)
        deadline_ns = parse_deadlines(headers.get_all(DEADLINE_HEADER))
        from_total = False
        if total_ns is not None:
            total_deadline = now_ns + total_ns
            if deadline_ns is None or total_deadline < deadline_ns:
                deadline_ns = total_deadline
                from_total = True
        if deadline_ns is None:
            return service(request)
        remaining_ns = deadline_ns - now_ns
        if remaining_ns <= 0:
            d: Deferred[Any] = Deferred()
            d.errback(
                DeadlineExceeded(
                    f"deadline exceeded {-remaining_ns / 1e6:.1f} ms before the request could be sent",
                    deadline_ns=deadline_ns,
                )
            )
            return d
        headers.set(DEADLINE_HEADER, format_deadline(now_ns, deadline_ns))
        request.ctx[DEADLINE] = deadline_ns / _NS
        remaining_s = remaining_ns / _NS

        def error() -> MeshError:
            if from_total:
                return RequestTimeout(
                    f"exceeded {self.total_timeout_s * 1000:g} ms total timeout",  # type: ignore[operator]
                    timeout_s=self.total_timeout_s,
                )
            return DeadlineExceeded(
                f"exceeded the request's deadline ({remaining_s * 1000:.1f} ms were left)"
            )

        return call_with_timeout(service, request, remaining_s, self._clock, error)

    def _apply_total(
        self, request: Any, service: Service[Any, Any], headers: Any, total_ns: int
    ) -> Deferred[Any]:
        """The common case: no deadline came with the request, totalTimeoutMs applies.

        As ``call_with_timeout``, but timed by the filter's one queue (``_TotalTimer``)
        and without closures: measured ~7 us of the ~49 us a routed request cost in
        ``bench/router/cost.py`` before.
        """
        now = self._clock.seconds()
        now_ns = int(now * _NS)
        deadline_ns = now_ns + total_ns
        headers.add(DEADLINE_HEADER, b"%d %d" % (now_ns, deadline_ns))  # (it had none)
        deadline = deadline_ns / _NS
        request.ctx[DEADLINE] = deadline
        try:
            inner = service(request)
        except Exception as e:
            return fail(e)
        if inner.called:  # answered synchronously: nothing to time
            return inner
        timer = self._total
        assert timer is not None
        call = _TimedCall(inner, deadline, timer)
        outer = call.outer
        assert outer is not None
        timer.add(call, now)
        inner.addBoth(call.outcome)
        return outer
