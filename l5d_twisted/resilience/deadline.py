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

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

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


class DeadlineFilter(Filter[Any, Any]):
    def __init__(self, clock: Any, total_timeout_s: float | None = None) -> None:
        if total_timeout_s is not None and total_timeout_s <= 0:
            raise ValueError(f"totalTimeout must be positive, got {total_timeout_s}")
        self._clock = clock
        self.total_timeout_s = total_timeout_s
        self._total_ns = None if total_timeout_s is None else int(total_timeout_s * _NS)

    def apply(self, request: Any, service: Service[Any, Any]) -> Deferred[Any]:
        headers = request.headers
        has_header = DEADLINE_HEADER in headers
        if not has_header and self._total_ns is None:
            return service(request)  # nothing to enforce: no clock read, no timer, no callback
        now_ns = int(self._clock.seconds() * _NS)
        deadline_ns = parse_deadlines(headers.get_all(DEADLINE_HEADER)) if has_header else None
        from_total = False
        if self._total_ns is not None:
            total_deadline = now_ns + self._total_ns
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
