"""Telemeter ``io.l5d.tracelog``: every request's trace annotations in the log (linkerd 1's
keys)::

    telemetry:
    - kind: io.l5d.tracelog
      sampleRate: 0.2     # share of traces logged (default 1.0)
      level: INFO         # the level of their log events (default INFO)

linkerd 1 logged each trace record (Finagle's ``Record``: trace id, time, annotation) its
tracer saw.  l5d-twisted has no tracer yet, so this telemeter makes the records the mesh
does know, with Finagle's annotation names, as structured ``twisted.logger`` events
(namespace ``io.l5d.tracelog``; one JSON line each with ``l5d-twisted run``):

* a **server span** per request (a module after the server layer's ``stats``): ``sr``
  (server receive) with ``http.method``, ``http.uri``, ``router``, ``client.addr``, then
  ``ss`` (server send) with ``http.status`` (or ``error``), ``namer.path`` (the logical
  name), ``dst.id`` (the bound name) and ``duration_ms``;
* a **client span** per attempt on an endpoint (a module at the top of the endpoint layer):
  ``cs`` (client send) with ``server.addr``, then ``cr`` (client receive) with
  ``http.status`` (or ``error``) and ``duration_ms``.

Every event carries ``trace_id``, ``span_id`` and ``parent_id`` (16 hex digits, or 32 for a
128-bit trace id).  When the request came with linkerd 1's ``l5d-ctx-trace`` header (which
the mesh forwards unchanged), the server span is that span: its trace id, span id, parent
and sampling flag; otherwise the trace id is the request's ``l5d-reqid`` (what linkerd 1
set it to) or a new one, which becomes the forwarded ``l5d-reqid``.  A client span is a
new span, a child of the server span (kept in the request context under
:data:`~l5d_twisted.request_context.TRACE`).

**Sampling** as linkerd 1: a trace whose ``l5d-ctx-trace`` flags say sampled or not is
logged or not; otherwise ``sampleRate`` decides by the trace id (Finagle's sampler), so a
trace is logged whole or not at all.  **level** takes linkerd 1's names: ``ALL``,
``TRACE`` and ``DEBUG`` log at debug, ``INFO`` at info, ``WARNING`` at warn, ``ERROR`` at
error, ``CRITICAL`` and ``FATAL`` at critical, ``OFF`` logs nothing.  As in linkerd 1 the
events show only if the log level (``l5d-twisted run --log-level``) lets them through.
"""

from __future__ import annotations

import base64
import binascii
import random
import struct
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request, Response
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.request_context import CONNECTION, DST, ROUTER, TRACE
from l5d_twisted.router.stacks import StackEdit, StackParams
from l5d_twisted.service import Filter, Module, Params, Service
from l5d_twisted.telemetry.telemeter import TelemeterBase

log = Logger(namespace="io.l5d.tracelog")

CTX_TRACE = b"l5d-ctx-trace"
REQID = b"l5d-reqid"
DST_CLIENT = b"l5d-dst-client"

# Finagle's trace flags
_SAMPLING_KNOWN = 1 << 1
_SAMPLED = 1 << 2

# linkerd 1 (TwitterServer) level -> twisted.logger level; None: OFF
LEVELS: dict[str, LogLevel | None] = {
    "ALL": LogLevel.debug,
    "TRACE": LogLevel.debug,
    "DEBUG": LogLevel.debug,
    "INFO": LogLevel.info,
    "WARNING": LogLevel.warn,
    "ERROR": LogLevel.error,
    "CRITICAL": LogLevel.critical,
    "FATAL": LogLevel.critical,
    "OFF": None,
}

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class TracelogConfig:
    sample_rate: float = knob(
        1.0, minimum=0.0, maximum=1.0, doc="share of traces logged (decided per trace id)"
    )
    level: str = knob(
        "INFO",
        choices=tuple(LEVELS),
        doc="log level of the trace events (linkerd 1's names; OFF logs none)",
    )


@dataclass(frozen=True)
class Span:
    """One span's ids (Finagle's TraceId); ``sampled`` None: not decided upstream."""

    trace_id: int
    span_id: int
    parent_id: int
    sampled: bool | None = None
    trace_id_high: int = 0

    def ids(self) -> dict[str, str]:
        trace = f"{self.trace_id:016x}"
        if self.trace_id_high:
            trace = f"{self.trace_id_high:016x}{trace}"
        return {
            "trace_id": trace,
            "span_id": f"{self.span_id:016x}",
            "parent_id": f"{self.parent_id:016x}",
        }

    def child(self, span_id: int) -> Span:
        return Span(self.trace_id, span_id, self.span_id, self.sampled, self.trace_id_high)


def decode_ctx_trace(value: bytes) -> Span | None:
    """linkerd 1's ``l5d-ctx-trace``: base64 of span id, parent id, trace id and flags (8
    bytes each, big-endian), and the trace id's high 64 bits in 40-byte ones; None if it is
    not one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) not in (32, 40):
        return None
    span_id, parent_id, trace_id, flags = struct.unpack(">QQQQ", raw[:32])
    high = struct.unpack(">Q", raw[32:])[0] if len(raw) == 40 else 0
    sampled = bool(flags & _SAMPLED) if flags & _SAMPLING_KNOWN else None
    return Span(trace_id, span_id, parent_id, sampled, high)


def sampled_by_rate(trace_id: int, rate: float) -> bool:
    """Finagle's ``Sampler``: the same answer for every span of a trace."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    salt = 0x5F3759DF  # any constant: spreads sequential ids
    return abs((trace_id ^ salt) & _MASK64) % 10_000 < rate * 10_000


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


class Tracelog:
    """Makes spans and logs their annotations."""

    def __init__(self, config: TracelogConfig, clock: Any, rng: random.Random) -> None:
        self.config = config
        self.level = LEVELS[config.level]
        self.clock = clock
        self.rng = rng

    def new_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def server_span(self, request: Request) -> Span:
        header = request.headers.get(CTX_TRACE)
        if header:
            found = decode_ctx_trace(header)
            if found is not None:
                return found
        reqid = request.headers.get(REQID)
        trace_id = 0
        if reqid:
            try:
                trace_id = int(reqid, 16) & _MASK64
            except ValueError:
                trace_id = 0
        if not trace_id:
            trace_id = self.new_id()
        return Span(trace_id, trace_id, trace_id)  # a root span, as Finagle makes them

    def sampled(self, span: Span) -> bool:
        if self.level is None:
            return False
        if span.sampled is not None:
            return span.sampled
        return sampled_by_rate(span.trace_id, self.config.sample_rate)

    def emit(self, span: Span, annotation: str, **values: Any) -> None:
        assert self.level is not None
        log.emit(
            self.level,
            "trace {trace_id}.{span_id}<:{parent_id} {annotation}",
            annotation=annotation,
            timestamp=self.clock.seconds(),
            **span.ids(),
            **values,
        )


def _peer_text(peer: Any) -> str:
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None and port is not None else ""


def _outcome(result: Any) -> dict[str, Any]:
    if isinstance(result, Failure):
        error = result.value
        return {"error": f"{type(error).__name__}: {error}"}
    if isinstance(result, Response):
        return {"http.status": result.status}
    return {}


class ServerSpanFilter(Filter[Request, Response]):
    def __init__(self, tracelog: Tracelog) -> None:
        self.tracelog = tracelog

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        tracelog = self.tracelog
        span = tracelog.server_span(request)
        request.ctx[TRACE] = span
        if not request.headers.get(REQID):
            # the router forwards an l5d-reqid it finds: the trace id, as in linkerd 1
            request.headers.add(REQID, b"%016x" % span.trace_id)
        if not tracelog.sampled(span):
            return service(request)
        connection = request.ctx.get(CONNECTION)
        peer = getattr(connection, "peer", None) if connection is not None else None
        tracelog.emit(
            span,
            "sr",
            **{
                "http.method": _text(request.method),
                "http.uri": _text(request.uri),
                "router": request.ctx.get(ROUTER, ""),
                "client.addr": _peer_text(peer),
            },
        )
        start = tracelog.clock.seconds()
        try:
            d = service(request)
        except Exception as e:
            d = fail(e)

        def done(result: Any) -> Any:
            try:
                dst = request.ctx.get(DST)
                tracelog.emit(
                    span,
                    "ss",
                    **_outcome(result),
                    **{
                        "namer.path": dst.show() if dst is not None else "",
                        "dst.id": _text(request.headers.get(DST_CLIENT)),
                        "router": request.ctx.get(ROUTER, ""),
                        "duration_ms": round((tracelog.clock.seconds() - start) * 1000.0, 3),
                    },
                )
            except Exception:  # logging must never cost the request
                pass
            return result

        d.addBoth(done)
        return d


class ClientSpanFilter(Filter[Request, Response]):
    def __init__(self, tracelog: Tracelog, address: str) -> None:
        self.tracelog = tracelog
        self.address = address

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        tracelog = self.tracelog
        parent = request.ctx.get(TRACE)
        if not isinstance(parent, Span):
            parent = tracelog.server_span(request)
        if not tracelog.sampled(parent):
            return service(request)
        span = parent.child(tracelog.new_id())
        tracelog.emit(
            span,
            "cs",
            **{
                "server.addr": self.address,
                "http.method": _text(request.method),
                "http.uri": _text(request.uri),
            },
        )
        start = tracelog.clock.seconds()
        try:
            d = service(request)
        except Exception as e:
            d = fail(e)

        def done(result: Any) -> Any:
            try:
                tracelog.emit(
                    span,
                    "cr",
                    **_outcome(result),
                    **{
                        "server.addr": self.address,
                        "duration_ms": round((tracelog.clock.seconds() - start) * 1000.0, 3),
                    },
                )
            except Exception:  # logging must never cost the request
                pass
            return result

        d.addBoth(done)
        return d


class TracelogTelemeter(TelemeterBase):
    def __init__(self, tracelog: Tracelog) -> None:
        self.tracelog = tracelog
        self.stack_edits = (
            StackEdit(
                "server",
                Module("tracelog", self._server, "io.l5d.tracelog: the server span"),
                after="stats",
            ),
            StackEdit(
                "endpoint",
                Module("tracelog", self._client, "io.l5d.tracelog: a client span per attempt"),
                before="failureAccrual",
            ),
        )

    def _server(
        self, params: Params, next_: Service[Request, Response]
    ) -> Service[Request, Response]:
        return ServerSpanFilter(self.tracelog).and_then(next_)

    def _client(
        self, params: Params, next_: Service[Request, Response]
    ) -> Service[Request, Response]:
        address = params[StackParams.ADDRESS]
        shown = f"{address.host}:{address.port}" if address is not None else ""
        return ClientSpanFilter(self.tracelog, shown).and_then(next_)


@TELEMETERS.register("io.l5d.tracelog", TracelogConfig)
def make_tracelog(config: TracelogConfig, ctx: PluginContext) -> TracelogTelemeter:
    return TracelogTelemeter(Tracelog(config, ctx.reactor, ctx.rng))
