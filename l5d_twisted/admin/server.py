"""The admin server (port 9990): dashboard, delegator, state and metrics endpoints.

``AdminServer(target, reactor).listen(ip, port)`` serves an :class:`~.target.AdminTarget`:

==============================  =========================================================
``/``                           dashboard (live charts and tables, static/index.html)
``/admin/dashboard.json``       the dashboard's figures (see dashboard_data)
``/delegator``                  dtab playground (static/delegator.html)
``/delegator.json``             ``?router=&path=&dtab=``: explanation of a path's binding
``/admin/routers.json``         routers with their dstPrefix and dtab (for the playground)
``/config.json``                the running config
``/client_state.json``          per router, each client's state and addresses
``/namer_state/<prefix>.json``  what a namer knows (``/namer_state/io.l5d.k8s.json``)
``/requests``, ``/requests.json``  recent requests (``io.l5d.recentRequests``)
``/admin/metrics.json``         flat metrics (``?pretty=1``, ``?q=<substring>``)
``/admin/metrics/prometheus``   Prometheus text (or a telemeter's own path)
``/admin/ping``                 ``pong`` (liveness)
``/ready``                      readiness: 200 ``ready``, 503 ``draining`` once a drain began
``/admin/shutdown``             POST only; 403 unless ``admin.allowShutdown``
==============================  =========================================================

``admin.security`` (:mod:`.security`) refuses paths by linkerd 1's categories and
white/blacklists before any of this, with linkerd 1's empty 404.  ``admin.tls`` (a
server's tls keys) serves all of it over TLS.  ``admin.workerThreads`` bounds the metrics renders in
progress at once (:mod:`.slots`).

Telemeters' ``admin_resources()`` are served at their paths.  Every handler's failure
becomes a short text error (never a traceback); unknown paths get a 404 listing the
endpoints.

Every response carries :data:`SECURITY_HEADERS`: a Content-Security-Policy allowing only
the admin server's own scripts, styles and fetches (the pages have no inline script or
style), ``X-Content-Type-Options: nosniff`` and no framing.  A request line longer than
twisted.web's 16 KiB limit gets a 414 with an explanation (twisted.web alone closes the
connection without a word); ``metrics.json`` refuses a ``q`` longer than
``MAX_QUERY_CHARS`` with a 400.  The metrics endpoints render in small steps between
which the reactor runs (see :mod:`l5d_twisted.telemetry.render`).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.server import Request as WebRequest

from l5d_twisted.admin.dashboard_data import WATCH_S, DashboardSampler, sampler_cooperator
from l5d_twisted.admin.delegator import explain
from l5d_twisted.admin.http_error import HttpError
from l5d_twisted.admin.requests_page import render_requests_page
from l5d_twisted.admin.security import AdminSecurity
from l5d_twisted.admin.slots import DEFAULT_WORKER_THREADS, RenderSlots
from l5d_twisted.admin.target import AdminTarget
from l5d_twisted.telemetry.metrics_json import MAX_QUERY_CHARS, MetricsJsonExposition
from l5d_twisted.telemetry.prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from l5d_twisted.telemetry.prometheus import PrometheusExposition
from l5d_twisted.telemetry.render import reactor_cooperator, run_steps, write_pieces
from l5d_twisted.telemetry.telemeter import admin_resources_of

log = Logger()

STATIC_DIR = FsPath(__file__).resolve().parent / "static"
PROMETHEUS_PATH = b"/admin/metrics/prometheus"

ENDPOINTS = (
    ("/", "dashboard"),
    ("/delegator", "dtab playground"),
    ("/delegator.json?router=&path=&dtab=", "explain how a path binds"),
    ("/config.json", "running config"),
    ("/client_state.json", "clients and their addresses"),
    ("/namer_state/<prefix>.json", "what a namer knows"),
    ("/requests", "recent requests (also /requests.json)"),
    ("/admin/metrics.json", "metrics (?pretty=1, ?q=substring)"),
    ("/admin/metrics/prometheus", "metrics in Prometheus format"),
    ("/admin/dashboard.json", "dashboard figures"),
    ("/admin/routers.json", "routers"),
    ("/admin/ping", "liveness"),
    ("/ready", "readiness (503 while draining)"),
    ("/admin/shutdown", "POST: drain and stop"),
)

Handler = Callable[[WebRequest], Any]

# On every admin response.  The pages load their scripts and styles from /static and
# fetch JSON from this server; the favicon is a data: URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def _arg(request: WebRequest, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    if not values:
        return None
    return values[0].decode("utf-8", "replace")


def _json_bytes(value: Any, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(value, indent=2, default=str).encode() + b"\n"
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def _send_json(request: WebRequest, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return _json_bytes(value, pretty=_arg(request, "pretty") not in (None, "", "0", "false"))


def _admin_config(target: Any) -> Any:
    """The ``admin:`` block of the target's config (None for targets without one)."""
    return getattr(getattr(target, "config", None), "admin", None)


class _AdminPort:
    """The listening port, which also stops the dashboard sampler when it stops."""

    def __init__(self, port: Any, on_stop: Callable[[], None]) -> None:
        self._port = port
        self._on_stop = on_stop

    def stopListening(self) -> Any:
        self._on_stop()
        return self._port.stopListening()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


class AdminServer:
    def __init__(
        self,
        target: AdminTarget,
        reactor: Any,
        sample_interval_s: float = 5.0,
        cooperator: Cooperator | None = None,
        security: AdminSecurity | None = None,
    ) -> None:
        self.target = target
        self.reactor = reactor
        # admin.security (linkerd 1's path categories and white/blacklists), else all served
        self.security = security or AdminSecurity.from_config(
            getattr(_admin_config(target), "security", None)
        )
        # admin.workerThreads: renders in progress at once (see admin.slots)
        self.render_slots = RenderSlots(
            getattr(_admin_config(target), "worker_threads", DEFAULT_WORKER_THREADS)
        )
        # Runs the metrics renders in steps between the reactor's other work.
        self.cooperator = cooperator if cooperator is not None else reactor_cooperator(reactor)
        self.sampler = DashboardSampler(
            target.metrics,
            reactor,
            router_labels=lambda: [r.label for r in target.routers],
            interval_s=sample_interval_s,
            routers=lambda: target.routers,  # their clients' endpoints, for the table
            # Samples in steps too, in shorter slices than a render with gaps between: a
            # sample is not waited for, and each slice delays every request in flight.
            cooperator=cooperator if cooperator is not None else sampler_cooperator(reactor),
            watch_s=WATCH_S,  # samples only while a dashboard is open (issue 17: idle CPU)
        )
        self._default_prometheus: PrometheusExposition | None = None
        self._metrics_json: MetricsJsonExposition | None = None
        self.site = _QuietSite(AdminResource(self))
        self.site.displayTracebacks = False
        self.routes: dict[bytes, Handler] = {
            b"/": self.dashboard,
            b"/index.html": self.dashboard,
            b"/admin": self.dashboard,
            b"/admin/": self.dashboard,
            b"/delegator": self.delegator_page,
            b"/delegator.json": self.delegator_json,
            b"/admin/routers.json": self.routers_json,
            b"/config.json": self.config_json,
            b"/client_state.json": self.client_state_json,
            b"/requests": self.requests_page,
            b"/requests.json": self.requests_json,
            b"/admin/metrics.json": self.metrics_json,
            b"/admin/dashboard.json": self.dashboard_json,
            b"/admin/ping": self.ping,
            b"/ready": self.ready,
            b"/admin/shutdown": self.shutdown,
            b"/favicon.ico": self.favicon,
        }

    def listen(self, ip: str, port: int) -> IListeningPort:
        listening = self.reactor.listenTCP(port, self.listening_factory(), interface=ip)
        self.sampler.start()
        log.info("admin server on {ip}:{port}", ip=ip, port=listening.getHost().port)
        return _AdminPort(listening, self._stop)  # type: ignore[return-value]

    def _stop(self) -> None:
        self.sampler.stop()
        # the render caches' idle timers (issue 17: dropped 10 minutes after the last render)
        for exposition in (self._default_prometheus, self._metrics_json):
            if exposition is not None and exposition.idle is not None:
                exposition.idle.stop()

    def listening_factory(self) -> Any:
        """What to listen with: the site, behind TLS when ``admin.tls`` is set (TLS
        modules imported only then; a bad certificate path fails the start)."""
        tls = getattr(_admin_config(self.target), "tls", None)
        if tls is None:
            return self.site
        from l5d_twisted.http.tls import server_tls, tls_server_factory

        return tls_server_factory(server_tls(tls), self.site, lambda: True)

    # -- dispatch ---------------------------------------------------------------------

    def handle(self, request: WebRequest) -> Any:
        path = request.path or b"/"
        method = request.method
        for name, value in SECURITY_HEADERS:
            request.setHeader(name, value)
        if self.security is not None and not self.security.allows(path.decode("latin-1")):
            request.setResponseCode(404)  # linkerd 1's answer to a refused path: empty
            return b""
        try:
            telemeter_resource = self._telemeter_resources().get(path)
            handler: Handler | None
            if telemeter_resource is not None:
                exposition = getattr(telemeter_resource, "exposition", None)
                if isinstance(exposition, PrometheusExposition):
                    # Rendered in steps on this server's cooperator, as /admin/metrics/prometheus.
                    handler = lambda request: self._prometheus(request, exposition)  # noqa: E731
                else:
                    handler = telemeter_resource.render
            else:
                handler = self.routes.get(path) or self._prefix_handler(path)
            if handler is None:
                raise HttpError(404, self._not_found_text(path))
            # Telemeters' resources too: twisted.web would raise for another method (a 500).
            if handler != self.shutdown and method not in (b"GET", b"HEAD"):
                request.setHeader(b"allow", b"GET, HEAD")
                raise HttpError(405, f"{method.decode('latin-1')} not allowed here; use GET\n")
            result = handler(request)
            if isinstance(result, Deferred):
                result.addCallbacks(
                    lambda body: self._finish(request, body), lambda f: self._fail(request, f)
                )
                return NOT_DONE_YET
            return result
        except HttpError as e:
            return self._error(request, e.status, e.message)
        except Exception:
            log.failure("admin {method} {path} failed", method=method, path=path)
            return self._error(request, 500, "internal error; see the mesh's log\n")

    def _prefix_handler(self, path: bytes) -> Handler | None:
        if path.startswith(b"/namer_state/"):
            return self.namer_state
        if path.startswith(b"/static/"):
            return self.static
        if path == PROMETHEUS_PATH:
            return self.prometheus
        return None

    def _telemeter_resources(self) -> dict[bytes, Any]:
        resources: dict[bytes, Any] = {}
        for telemeter in getattr(self.target, "telemeters", ()) or ():
            try:
                resources.update(admin_resources_of(telemeter))
            except Exception:
                log.failure("telemeter {t} admin_resources failed", t=telemeter)
        return resources

    def _not_found_text(self, path: bytes) -> str:
        lines = [f"no admin endpoint at {path.decode('latin-1')}; endpoints:"]
        lines += [f"  {p:38} {what}" for p, what in ENDPOINTS]
        for extra in sorted(self._telemeter_resources()):
            lines.append(f"  {extra.decode('latin-1'):38} (telemeter)")
        return "\n".join(lines) + "\n"

    def _error(self, request: WebRequest, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        wants_json = request.path is not None and request.path.endswith(b".json")
        if wants_json:
            request.setHeader(b"content-type", b"application/json")
            return _json_bytes({"error": message.strip()})
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return message.encode()

    def _finish(self, request: WebRequest, body: bytes | list[bytes]) -> None:
        # A list: a rendered body's pieces, written as the socket drains.
        write_pieces(request, body if isinstance(body, list) else [body])

    def _fail(self, request: WebRequest, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # the client went away mid-render: nobody to answer
        if failure.check(HttpError):
            e = failure.value
            body = self._error(request, e.status, e.message)  # type: ignore[union-attr]
        else:
            log.failure("admin {path} failed", failure, path=request.path)
            body = self._error(request, 500, "internal error; see the mesh's log\n")
        self._finish(request, body)

    # -- pages and static files ------------------------------------------------------

    def dashboard(self, request: WebRequest) -> bytes:
        return self._static_file(request, "index.html")

    def delegator_page(self, request: WebRequest) -> bytes:
        return self._static_file(request, "delegator.html")

    def static(self, request: WebRequest) -> bytes:
        name = (request.path or b"")[len(b"/static/") :].decode("utf-8", "replace")
        return self._static_file(request, name)

    def _static_file(self, request: WebRequest, name: str) -> bytes:
        # Only plain file names of the static folder: no traversal.
        if "/" in name or "\\" in name or name.startswith(".") or not (STATIC_DIR / name).is_file():
            raise HttpError(404, f"no static file {name!r}\n")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-cache")
        return (STATIC_DIR / name).read_bytes()

    # -- JSON endpoints ---------------------------------------------------------------

    def favicon(self, request: WebRequest) -> bytes:
        request.setResponseCode(204)  # browsers ask; there is none
        return b""

    def ping(self, request: WebRequest) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"pong"

    def ready(self, request: WebRequest) -> bytes:
        """Readiness: fails from the first moment of a drain, while the servers still answer."""
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"cache-control", b"no-store")
        if getattr(self.target, "draining", False):
            request.setResponseCode(503)
            return b"draining"
        return b"ready"

    def config_json(self, request: WebRequest) -> bytes:
        return _send_json(request, self.target.config_json())

    def routers_json(self, request: WebRequest) -> bytes:
        routers = [
            {"label": r.label, "dstPrefix": r.dst_prefix.show(), "dtab": r.dtab.show()}
            for r in self.target.routers
        ]
        return _send_json(request, routers)

    def client_state_json(self, request: WebRequest) -> bytes:
        state: dict[str, Any] = {}
        for router in self.target.routers:
            state[router.label] = router.client_state()
        return _send_json(request, state)

    def namer_state(self, request: WebRequest) -> bytes:
        raw = (request.path or b"")[len(b"/namer_state/") :].decode("utf-8", "replace")
        prefix = raw[: -len(".json")] if raw.endswith(".json") else raw
        namers = self.target.namers
        for candidate in (prefix, "/" + prefix.lstrip("/")):
            namer = namers.get(candidate)
            if namer is not None:
                return _send_json(request, namer.state())
        known = ", ".join(sorted(namers)) or "none configured"
        raise HttpError(404, f"no namer with prefix {prefix!r}; namers: {known}\n")

    def delegator_json(self, request: WebRequest) -> Deferred[bytes]:
        d = explain(
            list(self.target.routers),
            _arg(request, "router"),
            _arg(request, "path") or "",
            _arg(request, "dtab") or "",
        )
        return d.addCallback(lambda body: _send_json(request, body))

    def requests_json(self, request: WebRequest) -> bytes:
        recent = self._recent()
        return _send_json(request, recent.to_json() if recent is not None else [])

    def requests_page(self, request: WebRequest) -> bytes:
        recent = self._recent()
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return render_requests_page(recent.records() if recent is not None else None)

    def _recent(self) -> Any:
        recent = getattr(self.target, "recent_requests", None)
        if recent is None:
            return None
        # The mesh may hand over the telemeter rather than its RecentRequests.
        inner = getattr(recent, "recent_requests", None)
        return inner if inner is not None else recent

    def metrics_json(self, request: WebRequest) -> Deferred[list[bytes]]:
        query = _arg(request, "q")
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise HttpError(
                400,
                f"q is {len(query)} characters long; at most {MAX_QUERY_CHARS} (a substring of metric names)\n",
            )
        pretty = _arg(request, "pretty") not in (None, "", "0", "false")
        if self._metrics_json is None or self._metrics_json.tree is not self.target.metrics:
            self._metrics_json = MetricsJsonExposition(self.target.metrics, self.reactor)
        out: list[bytes] = []
        d = self._render(request, self._metrics_json.render_steps(out, query, pretty), out)
        request.setHeader(b"content-type", b"application/json")
        return d

    def prometheus(self, request: WebRequest) -> Deferred[list[bytes]]:
        if self._default_prometheus is None:
            self._default_prometheus = PrometheusExposition(
                self.target.metrics, reactor=self.reactor
            )
        return self._prometheus(request, self._default_prometheus)

    def _prometheus(
        self, request: WebRequest, exposition: PrometheusExposition
    ) -> Deferred[list[bytes]]:
        out: list[bytes] = []
        d = self._render(request, exposition.render_steps(out), out)
        request.setHeader(b"content-type", PROMETHEUS_CONTENT_TYPE.encode())
        return d

    def _render(self, request: WebRequest, steps: Any, out: list[bytes]) -> Deferred[list[bytes]]:
        # at most admin.workerThreads renders at once; the others wait their turn
        d = self.render_slots.run(lambda: run_steps(self.cooperator, steps, lambda: out))
        request.notifyFinish().addErrback(
            lambda _: d.cancel()
        )  # the client went away: stop rendering (or stop waiting)
        return d

    def dashboard_json(self, request: WebRequest) -> bytes:
        self.sampler.watch()
        return _send_json(request, self.sampler.to_json())

    def shutdown(self, request: WebRequest) -> bytes:
        if request.method != b"POST":
            request.setHeader(b"allow", b"POST")
            raise HttpError(405, "shutdown needs a POST\n")
        if not getattr(self.target, "allow_shutdown", False):
            raise HttpError(
                403, "shutdown via the admin server is disabled (admin.allowShutdown: false)\n"
            )
        grace_s = self._grace_s(request)
        log.info("shutdown requested via the admin server (grace {grace}s)", grace=grace_s)
        # After this response is written.
        self.reactor.callLater(0, self._shutdown, grace_s)
        request.setResponseCode(202)
        request.setHeader(b"content-type", b"text/plain")
        return b"shutting down\n"

    def _grace_s(self, request: WebRequest) -> float:
        given = _arg(request, "graceMs")
        if given:
            try:
                return max(0.0, float(given) / 1000.0)
            except ValueError:
                raise HttpError(
                    400, f"graceMs must be a number of milliseconds, not {given!r}\n"
                ) from None
        admin = getattr(getattr(self.target, "config", None), "admin", None)
        grace_ms = getattr(admin, "shutdown_grace_ms", 10000)
        return float(grace_ms) / 1000.0

    def _shutdown(self, grace_s: float) -> None:
        maybeDeferred(self.target.shutdown, grace_s).addErrback(
            lambda f: log.failure("shutdown failed", f)
        )


class _AdminChannel(http.HTTPChannel):
    """twisted.web's channel, answering an over-long request line instead of hanging up."""

    def lineLengthExceeded(self, line: bytes) -> None:
        body = (
            f"request line or header longer than {self.MAX_LENGTH} bytes "
            f"(a metrics.json q may have at most {MAX_QUERY_CHARS} characters)\n"
        ).encode()
        head = [
            b"HTTP/1.1 414 URI Too Long",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Length: " + str(len(body)).encode(),
            b"Connection: close",
        ]
        head += [name + b": " + value for name, value in SECURITY_HEADERS]
        transport: Any = self.transport
        transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        transport.loseConnection()


class _QuietSite(Site):
    """No access log: Prometheus scrapes and dashboard polls would flood the mesh's log."""

    protocol = _AdminChannel  # type: ignore[assignment]

    def log(self, request: http.Request) -> None:
        pass


class AdminResource(Resource):
    """twisted.web glue: every path goes to :meth:`AdminServer.handle`."""

    isLeaf = True

    def __init__(self, admin: AdminServer) -> None:
        super().__init__()
        self.admin = admin

    def render(self, request: WebRequest) -> Any:
        return self.admin.handle(request)
