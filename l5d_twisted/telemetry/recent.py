"""Telemeter ``io.l5d.recentRequests``: the last few requests, shown at ``/requests``.

Config::

    telemetry:
    - kind: io.l5d.recentRequests
      sampleRate: 1.0   # fraction of requests kept (0..1)
      capacity: 10      # how many are kept (newest first)

The telemeter inserts a module ``recentRequests`` after the ``stats`` role of every
server stack (a :class:`~l5d_twisted.router.stacks.StackEdit`, so no core file knows this
plugin); it calls :meth:`RecentRequests.observe` once per finished request.
:meth:`RecentRequests.record` takes the same facts as plain fields.  Recording is a random
draw and, when sampled, one callback and one ``deque`` append.  A record names the
endpoint (``ip:port``) that answered: the address failure accrual put in the request's
context (:data:`~l5d_twisted.resilience.accrual.ENDPOINT`) when it sent the (last)
attempt; empty when no endpoint was reached (unroutable, no hosts).
"""

from __future__ import annotations

import collections
import random
from dataclasses import asdict, dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.errors import MeshError
from l5d_twisted.http.message import Request, Response
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.request_context import DST, ERROR, ROUTER
from l5d_twisted.resilience.accrual import ENDPOINT
from l5d_twisted.router.stacks import StackEdit, StackParams
from l5d_twisted.service import Filter, Module, Params, Service
from l5d_twisted.telemetry.telemeter import TelemeterBase


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
    endpoint: str = ""  # "ip:port" that answered ("" when none was reached)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class RecentRequests:
    def __init__(
        self,
        clock: Any,
        capacity: int = 10,
        sample_rate: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
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
        endpoint: str = "",
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
                endpoint=endpoint,
            )
        )

    def sampled(self) -> bool:
        """Whether to record the next request (a draw against ``sample_rate``)."""
        return self.sample_rate >= 1.0 or self._rng.random() < self.sample_rate

    def observe(
        self, request: Request, outcome: Response | BaseException, latency_ms: float
    ) -> None:
        if self.sampled():
            self.add(request, outcome, latency_ms)

    def add(self, request: Request, outcome: Response | BaseException, latency_ms: float) -> None:
        """Record one finished request (already sampled)."""
        dst: Any = request.ctx.get(DST)
        if dst is None:
            dst = request.headers.get(b"l5d-dst-service", b"")
        client = request.headers.get(b"l5d-dst-client", b"") or b""
        if isinstance(outcome, Response):
            status: int | None = outcome.status
            error = None
            mesh_error = outcome.ctx.get(ERROR)
            if mesh_error is not None:
                error = str(mesh_error)
        else:
            status = getattr(outcome, "status", None) if isinstance(outcome, MeshError) else None
            error = f"{type(outcome).__name__}: {outcome}"
        self._records.append(
            RequestRecord(
                time=self.clock.seconds(),
                router=request.ctx.get(ROUTER, ""),
                method=_text(request.method),
                uri=_text(request.uri),
                dst_path=_text(dst) if isinstance(dst, bytes) else str(dst),
                client_id=_text(client),
                status=status,
                latency_ms=round(float(latency_ms), 3),
                error=error,
                endpoint=request.ctx.get(ENDPOINT, ""),
            )
        )

    def records(self) -> list[RequestRecord]:
        """Newest first."""
        return list(reversed(self._records))

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records()]


class RecentRequestsFilter(Filter[Request, Response]):
    """Records sampled requests with their outcome and latency (in the server stack)."""

    def __init__(self, recent: RecentRequests, clock: Any) -> None:
        self.recent = recent
        self._clock = clock

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        if not self.recent.sampled():
            return service(request)
        start = self._clock.seconds()
        try:
            d = service(request)
        except Exception as e:
            d = fail(e)
        d.addBoth(self._done, request, start)
        return d

    def _done(self, result: Any, request: Request, start: float) -> Any:
        outcome: Response | BaseException = result
        if isinstance(result, Failure):
            outcome = result.value if result.value is not None else Exception("unknown failure")
        try:
            self.recent.add(request, outcome, (self._clock.seconds() - start) * 1000.0)
        except Exception:  # recording must never cost the request
            pass
        return result


class RecentRequestsTelemeter(TelemeterBase):
    def __init__(self, recent: RecentRequests) -> None:
        self.recent_requests = recent
        self.stack_edits = (
            StackEdit(
                "server",
                Module("recentRequests", self._module, "the last requests, for /requests"),
                after="stats",
            ),
        )

    def _module(
        self, params: Params, next_: Service[Request, Response]
    ) -> Service[Request, Response]:
        return RecentRequestsFilter(self.recent_requests, params[StackParams.REACTOR]).and_then(
            next_
        )


@TELEMETERS.register("io.l5d.recentRequests", RecentRequestsConfig)
def make_recent_requests(
    config: RecentRequestsConfig, ctx: PluginContext
) -> RecentRequestsTelemeter:
    return RecentRequestsTelemeter(
        RecentRequests(ctx.reactor, config.capacity, config.sample_rate, ctx.rng)
    )
