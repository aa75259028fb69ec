"""The hello/world sample apps (linkerd 1's hello-world, as Twisted handlers).

* ``world`` answers ``world (<ip>)!``.
* ``hello`` answers ``Hello (<ip>) `` followed by the body of its GET to ``target`` made
  through the proxy in ``http_proxy``, copying every inbound ``l5d-ctx-*`` header (deadline,
  trace) onto that call so the mesh sees one request tree.  If the call fails, 502.

``<ip>`` is the label the app was given: ``POD_IP`` in Kubernetes, else the ``ip:port`` it
listens on (see :func:`l5d_twisted.examples.runner.ip_label`).

Both have the knobs of :mod:`l5d_twisted.examples.knobs` (an added delay before answering,
a fraction of answers turned into 500s) and the control paths ``GET /health``,
``POST /setLatency``, ``POST /setFailureRate`` (which ignore the knobs).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from l5d_twisted.examples.appserver import AppRequest, AppResponse
from l5d_twisted.examples.client import ClientError, ClientResponse, HttpClient
from l5d_twisted.examples.knobs import KnobError, Knobs, parse_failure_rate, parse_latency_ms

log = Logger()

CTX_PREFIX = b"l5d-ctx-"


def _fmt(value: float) -> str:
    return f"{value:g}"


class SampleApp:
    """Control paths and knobs around an app's own answer (:meth:`answer`)."""

    name = "app"

    def __init__(self, reactor: Any, ip_label: str, knobs: Knobs) -> None:
        self.reactor = reactor
        self.ip_label = ip_label
        self.knobs = knobs
        self._control = {
            b"/health": self._health,
            b"/setLatency": self._set_latency,
            b"/setFailureRate": self._set_failure_rate,
        }

    def set_label(self, ip_label: str) -> None:
        """Report ``ip_label`` from now on (known once the app listens)."""
        self.ip_label = ip_label

    def __call__(self, request: AppRequest) -> AppResponse | Deferred[AppResponse]:
        control = self._control.get(request.path)
        if control is not None:
            return control(request)
        delay = self.knobs.delay_s
        if delay > 0:
            later: Deferred[Any] = task.deferLater(self.reactor, delay, self._knobbed, request)
            return later
        return self._knobbed(request)

    def _knobbed(self, request: AppRequest) -> AppResponse | Deferred[AppResponse]:
        if self.knobs.should_fail():
            reason = (
                f"{self.name} ({self.ip_label}) failed on purpose "
                f"(failure rate {_fmt(self.knobs.failure_rate)})\n"
            )
            return AppResponse(500, reason.encode())
        return self.answer(request)

    def answer(self, request: AppRequest) -> AppResponse | Deferred[AppResponse]:
        raise NotImplementedError

    # -- control paths ------------------------------------------------------------------
    def _health(self, request: AppRequest) -> AppResponse:
        return AppResponse(200, b"ok\n")

    def _set_latency(self, request: AppRequest) -> AppResponse:
        if request.method != b"POST":
            return self._current_or_405(request, self.knobs.latency_ms)
        try:
            self.knobs.latency_ms = parse_latency_ms(request.body)
        except KnobError as e:
            return AppResponse(400, f"{e}\n".encode())
        log.info("latency set to {latency_ms} ms", latency_ms=self.knobs.latency_ms)
        return AppResponse(200, f"{_fmt(self.knobs.latency_ms)}\n".encode())

    def _set_failure_rate(self, request: AppRequest) -> AppResponse:
        if request.method != b"POST":
            return self._current_or_405(request, self.knobs.failure_rate)
        try:
            self.knobs.failure_rate = parse_failure_rate(request.body)
        except KnobError as e:
            return AppResponse(400, f"{e}\n".encode())
        log.info("failure rate set to {failure_rate}", failure_rate=self.knobs.failure_rate)
        return AppResponse(200, f"{_fmt(self.knobs.failure_rate)}\n".encode())

    def _current_or_405(self, request: AppRequest, value: float) -> AppResponse:
        if request.method in (b"GET", b"HEAD"):
            return AppResponse(200, f"{_fmt(value)}\n".encode())
        return AppResponse(
            405, b"use POST with the new value as the body\n", [(b"Allow", b"GET, POST")]
        )


class WorldApp(SampleApp):
    name = "world"

    def __init__(self, reactor: Any, ip_label: str, knobs: Knobs) -> None:
        super().__init__(reactor, ip_label, knobs)
        self._body = f"world ({ip_label})!".encode()

    def set_label(self, ip_label: str) -> None:
        super().set_label(ip_label)
        self._body = f"world ({ip_label})!".encode()

    def answer(self, request: AppRequest) -> AppResponse:
        return AppResponse(200, self._body)


class HelloApp(SampleApp):
    name = "hello"

    def __init__(
        self, reactor: Any, ip_label: str, knobs: Knobs, client: HttpClient, target: str
    ) -> None:
        super().__init__(reactor, ip_label, knobs)
        self.client = client
        self.target = target
        self._prefix = f"Hello ({ip_label}) ".encode()

    def set_label(self, ip_label: str) -> None:
        super().set_label(ip_label)
        self._prefix = f"Hello ({ip_label}) ".encode()

    def answer(self, request: AppRequest) -> Deferred[AppResponse]:
        headers = [(k, v) for k, v in request.headers if k.lower().startswith(CTX_PREFIX)]
        d = self.client.get(self.target, headers)
        return d.addCallbacks(self._world_answered, self._world_failed)

    def _world_answered(self, response: ClientResponse) -> AppResponse:
        if 200 <= response.status < 300:
            return AppResponse(200, self._prefix + response.body)
        first_line = response.body.split(b"\n", 1)[0][:200]
        return AppResponse(
            502,
            b"hello: %s answered %d: %s\n" % (self.target.encode(), response.status, first_line),
        )

    def _world_failed(self, failure: Any) -> AppResponse:
        failure.trap(ClientError)
        log.warn(
            "call to {target} failed: {error}", target=self.target, error=failure.getErrorMessage()
        )
        return AppResponse(
            502, f"hello: cannot reach {self.target}: {failure.getErrorMessage()}\n".encode()
        )
