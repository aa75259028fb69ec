"""Telemeter ``io.l5d.recentRequests``: the last few requests, shown at ``/requests``.

Config::

    telemetry:
    - kind: io.l5d.recentRequests
      sampleRate: 1.0   # fraction of requests kept (0..1)
      capacity: 10      # how many are kept (newest first)

The router calls :meth:`RecentRequests.observe` (the telemeter's ``request_observer``,
see :class:`~l5d_twisted.telemetry.telemeter.RequestObserver`) once per finished request;
:meth:`RecentRequests.record` takes the same facts as plain fields.  Recording is a random
draw and, when sampled, one ``deque`` append.
"""

from __future__ import annotations

import collections
import random
from dataclasses import asdict, dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import MeshError
from l5d_twisted.http.message import Request, Response
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
        router: str = "",
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

    def observe(self, request: Request, outcome: Response | BaseException, latency_ms: float) -> None:
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return
        dst = request.ctx.get("dst")
        if dst is None:
            dst = request.headers.get(b"l5d-dst-service", b"")
        client = request.headers.get(b"l5d-dst-client", b"") or b""
        if isinstance(outcome, Response):
            status: int | None = outcome.status
            error = None
            mesh_error = outcome.ctx.get("error")
            if mesh_error is not None:
                error = str(mesh_error)
        else:
            status = getattr(outcome, "status", None) if isinstance(outcome, MeshError) else None
            error = f"{type(outcome).__name__}: {outcome}"
        self._records.append(
            RequestRecord(
                time=self.clock.seconds(),
                router=str(request.ctx.get("router", "")),
                method=_text(request.method),
                uri=_text(request.uri),
                dst_path=_text(dst) if isinstance(dst, bytes) else str(dst),
                client_id=_text(client),
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
        self.request_observer: RequestObserver | None = recent.observe


@TELEMETERS.register("io.l5d.recentRequests", RecentRequestsConfig)
def make_recent_requests(config: RecentRequestsConfig, ctx: PluginContext) -> RecentRequestsTelemeter:
    return RecentRequestsTelemeter(RecentRequests(ctx.reactor, config.capacity, config.sample_rate, ctx.rng))
