"""Test doubles shared by the resilience and balancer tests (unique module name on purpose)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed

from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.service import Service, Status


class RecordingStats:
    """A StatsReceiver keeping everything in dicts keyed by '/'-joined names."""

    def __init__(self, prefix: tuple[str, ...] = (), root: RecordingStats | None = None) -> None:
        self.prefix = prefix
        self.root = root or self
        if root is None:
            self.counters: dict[str, int] = defaultdict(int)
            self.stats: dict[str, list[float]] = defaultdict(list)
            self.gauges: dict[str, Callable[[], float]] = {}

    def _key(self, name: tuple[str, ...]) -> str:
        return "/".join(self.prefix + name)

    def counter(self, *name: str) -> Any:
        root, key = self.root, self._key(name)

        class _C:
            def incr(self, n: int = 1) -> None:
                root.counters[key] += n

        return _C()

    def stat(self, *name: str) -> Any:
        root, key = self.root, self._key(name)

        class _S:
            def add(self, value: float) -> None:
                root.stats[key].append(value)

        return _S()

    def gauge(self, *name: str, fn: Callable[[], float]) -> Any:
        root, key = self.root, self._key(name)
        root.gauges[key] = fn

        class _G:
            def remove(self) -> None:
                root.gauges.pop(key, None)

        return _G()

    def scope(self, *name: str) -> RecordingStats:
        return RecordingStats(self.prefix + name, self.root)

    def gauge_value(self, key: str) -> float:
        return self.root.gauges[key]()


class FakeEndpoint(Service[Any, Any]):
    """An endpoint whose calls stay pending until the test answers them."""

    def __init__(self, name: str = "ep") -> None:
        self.name = name
        self.calls: list[tuple[Any, Deferred[Any]]] = []
        self.state = Status.OPEN
        self.closed = False

    def __call__(self, request: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((request, d))
        return d

    @property
    def status(self) -> Status:
        return Status.CLOSED if self.closed else self.state

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)

    def answer_all(self, value: Any = "ok") -> None:
        for _, d in self.calls:
            if not d.called:
                d.callback(value)

    @property
    def pending(self) -> int:
        return sum(1 for _, d in self.calls if not d.called)


class ScriptedService(Service[Any, Any]):
    """Answers each call with the next outcome of a script (a Response or an exception)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Deferred[Any]:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if callable(outcome) and not isinstance(outcome, Response):
            outcome = outcome()
        if isinstance(outcome, Deferred):
            return outcome
        if isinstance(outcome, BaseException):
            d: Deferred[Any] = Deferred()
            d.errback(outcome)
            return d
        return succeed(outcome)


class TrackedBody(BufferedBody):
    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.discarded = False

    def discard(self) -> None:
        self.discarded = True


class StreamBody:
    replayable = False
    length = None

    def discard(self) -> None:
        pass


def request(
    method: bytes = b"GET",
    uri: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: Any = None,
) -> Request:
    return Request(method, uri, Headers(headers or []), body)


def response(
    status: int = 200, headers: list[tuple[bytes, bytes]] | None = None, body: Any = None
) -> Response:
    return Response(status, Headers(headers or []), body)
