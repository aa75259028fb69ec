"""Telemeter ``io.l5d.recentRequests``: the last few requests, shown at ``/requests``.

Config::

    telemetry:
    - kind: io.l5d.recentRequests
      sampleRate: 1.0   # fraction of requests kept (0..1)
      capacity: 10      # how many are kept (newest first)

The router calls :meth:`RecentRequests.record` (the telemeter's ``request_observer``) once
per finished request; recording is a random draw and, when sampled, one ``deque`` append.
"""

from __future__ import annotations

import collections
import random
from dataclasses import asdict, dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.telemeter import RequestObserver, TelemeterBase


@dataclass(frozen=True)
class RecentRequestsConfig:
    sample_rate: float = knob(1.0, minimum=0.0, maximum=1.0, doc="fraction of requests recorded")
    capacity: int = knob(10, minimum=1, maximum=10000, doc="number of recent requests kept")


@dataclass(frozen=True)
class RequestRecord:
    time: float  # seconds since the epoch (the reactor's clock)
    router: str
    method: str
    uri: str
    dst_path: str
    client_id: str
    status: int | None
    latency_ms: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class RecentRequests:
    def __init__(self, clock: Any, capacity: int = 10, sample_rate: float = 1.0, rng: random.Random | None = None) -> None:
        self.clock = clock
        self.capacity = capacity
        self.sample_rate = sample_rate
        self._rng = rng or random.Random()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=capacity)

    def record(
        self,
        *,
        router: str,
        method: str | bytes,
        uri: str | bytes,
        dst_path: str,
        client_id: str,
        status: int | None,
        latency_ms: float,
        error: str | None = None,
    ) -> None:
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return
        self._records.append(
            RequestRecord(
                time=self.clock.seconds(),
                router=router,
                method=_text(method),
                uri=_text(uri),
                dst_path=str(dst_path),
                client_id=str(client_id),
                status=status,
                latency_ms=round(float(latency_ms), 3),
                error=error,
            )
        )

    def records(self) -> list[RequestRecord]:
        """Newest first."""
        return list(reversed(self._records))

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records()]


class RecentRequestsTelemeter(TelemeterBase):
    def __init__(self, recent: RecentRequests) -> None:
        self.recent_requests = recent
        self.request_observer: RequestObserver | None = recent.record


@TELEMETERS.register("io.l5d.recentRequests", RecentRequestsConfig)
def make_recent_requests(config: RecentRequestsConfig, ctx: PluginContext) -> RecentRequestsTelemeter:
    return RecentRequestsTelemeter(RecentRequests(ctx.reactor, config.capacity, config.sample_rate, ctx.rng))
