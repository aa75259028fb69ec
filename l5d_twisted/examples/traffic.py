"""Open-loop request generation at a fixed rate, on the reactor.

Request ``i`` is due at ``start + i / rps`` whether or not earlier ones have answered (an
open loop, like real users), and its latency is measured from that due time, so a stalled
server shows up as latency instead of as a politely slower generator ("coordinated
omission").  Above ``max_outstanding`` in-flight requests new ones are counted as
``dropped`` rather than piling up without bound.

Used by ``l5d-twisted demo --traffic RPS`` and by the benchmark's fixed-rate runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred

from l5d_twisted.examples.client import ClientResponse


@dataclass
class TrafficStats:
    sent: int = 0
    succeeded: int = 0  # 2xx
    failed: int = 0  # other statuses or no response
    dropped: int = 0  # not sent: too many outstanding
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(
        default_factory=dict
    )  # why calls got no response (first 20 kinds)
    latencies_s: list[float] = field(default_factory=list)  # from due time; only when recording
    service_times_s: list[float] = field(
        default_factory=list
    )  # from actual send; only when recording
    send_lags_s: list[float] = field(
        default_factory=list
    )  # send time - due time; only when recording

    @property
    def outstanding(self) -> int:
        return self.sent - self.succeeded - self.failed


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


class OpenLoopTraffic:
    """Calls ``send()`` ``rps`` times a second until :meth:`stop`.

    ``send`` returns a Deferred of a :class:`ClientResponse`; ``record_latencies`` keeps
    every latency (for benchmarks; the demo only counts).
    """

    def __init__(
        self,
        reactor: Any,
        send: Callable[[], Deferred[ClientResponse]],
        rps: float,
        max_outstanding: int = 2000,
        record_latencies: bool = False,
    ) -> None:
        if not rps > 0:
            raise ValueError(f"rate must be positive, got {rps}")
        self.reactor = reactor
        self.send = send
        self.rps = float(rps)
        self.max_outstanding = max_outstanding
        self.record_latencies = record_latencies
        self.stats = TrafficStats()
        self._start = 0.0
        self._due = 0  # requests due so far (sent or dropped)
        self._call: Any = None
        self._running = False

    def start(self) -> None:
        self._start = self.reactor.seconds()
        self._running = True
        self._tick()

    def stop(self) -> None:
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        if not self._running:
            return
        now = self.reactor.seconds()
        due_now = int((now - self._start) * self.rps) + 1
        while self._due < due_now:
            due_at = self._start + self._due / self.rps
            self._due += 1
            if self.stats.outstanding >= self.max_outstanding:
                self.stats.dropped += 1
                continue
            self.stats.sent += 1
            if self.record_latencies:
                self.stats.send_lags_s.append(now - due_at)
            d = self.send()
            d.addCallbacks(
                self._answered, self._errored, callbackArgs=(due_at, now), errbackArgs=(due_at, now)
            )
        next_at = self._start + self._due / self.rps
        self._call = self.reactor.callLater(max(0.0, next_at - self.reactor.seconds()), self._tick)

    def _record(self, due_at: float, sent_at: float) -> None:
        done = self.reactor.seconds()
        self.stats.latencies_s.append(done - due_at)
        self.stats.service_times_s.append(done - sent_at)

    def _answered(self, response: ClientResponse, due_at: float, sent_at: float) -> None:
        status = response.status
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        if self.record_latencies:
            self._record(due_at, sent_at)

    def _errored(self, failure: Any, due_at: float, sent_at: float) -> None:
        self.stats.failed += 1
        self.stats.statuses[0] = self.stats.statuses.get(0, 0) + 1
        reason = failure.getErrorMessage()[:200]
        if reason in self.stats.errors or len(self.stats.errors) < 20:
            self.stats.errors[reason] = self.stats.errors.get(reason, 0) + 1
        if self.record_latencies:
            self._record(due_at, sent_at)
