"""Protocol ``http``: HTTP/1.1 and 1.0 (``routers[].protocol: http``, the default).

Serves with :func:`l5d_twisted.http.server.serve_http`, reaches endpoints with
:class:`l5d_twisted.http.client.EndpointClient` over a keep-alive
:class:`~l5d_twisted.http.pool.ConnectionPool` (the HTTP/1 session pool), and builds its
routers from :data:`~l5d_twisted.router.stacks.DEFAULT_STACKS`.  What here comes from the
config: the router's ``maxHeadersKB``, ``maxInitialLineKB``, ``maxRequestKB`` and
``streamingEnabled``, each server's limits, socket options and TLS, and each client's
``hostConnectionPool``.

The HTTP server, client and pool are imported when first used, not with this module: the
config loader reads the protocol's defaults (port, identifier, classifier) before
``l5d-twisted run`` imports the reactor, and those modules import Twisted's TCP support,
with TLS if it is installed (``l5d_twisted.tls_imports`` leaves TLS out when no config asks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l5d_twisted.config.model import RouterConfig, ServerConfig
from l5d_twisted.config.params import ClientParams
from l5d_twisted.http.message import Request, Response
from l5d_twisted.protocols.base import Listening, NoConfig, RouterAddOns, RouterProtocol
from l5d_twisted.registry import PROTOCOLS
from l5d_twisted.router.stacks import DEFAULT_STACKS
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver

if TYPE_CHECKING:
    from l5d_twisted.http.client import HttpClientProtocol
    from l5d_twisted.http.pool import ConnectionPool, PoolSettings
    from l5d_twisted.http.server import ServerSettings
    from l5d_twisted.protocols.session import SessionPool


def buffered_request_kb(router: RouterConfig) -> int:
    """The largest request body (by Content-Length) buffered instead of streamed."""
    from l5d_twisted.http.server import ServerSettings

    if not router.streaming_enabled:
        return router.max_request_kb
    stream_after = router.stream_after_content_length_kb
    if stream_after is None:
        return ServerSettings.max_buffered_body_kb
    return min(stream_after, router.max_request_kb)


def buffered_response_kb(router: RouterConfig) -> int:
    """The largest response body (by Content-Length) buffered instead of streamed."""
    from l5d_twisted.http.pool import PoolSettings

    stream_after = router.stream_after_content_length_kb
    if stream_after is None:
        return PoolSettings.max_buffered_response_kb
    return stream_after


def server_settings(router: RouterConfig, server: ServerConfig) -> ServerSettings:
    from l5d_twisted.http.server import ServerSettings

    tls = None
    if server.tls is not None:
        from l5d_twisted.http.tls import server_tls

        tls = server_tls(server.tls)
    return ServerSettings(
        # streamingEnabled: false buffers whole request bodies up to maxRequestKB (so
        # they can be retried); streaming buffers only small ones (the retry buffer).
        max_buffered_body_kb=buffered_request_kb(router),
        max_headers_kb=router.max_headers_kb,
        max_initial_line_kb=router.max_initial_line_kb,
        max_concurrent_requests=server.max_concurrent_requests,
        clear_context=server.clear_context,
        request_dtab=server.request_dtab.enabled,
        request_dtab_addresses=server.request_dtab.allow_addresses,
        no_delay=server.socket_options.no_delay,
        keep_alive=server.socket_options.keep_alive,
        reuse_addr=server.socket_options.reuse_addr,
        reuse_port=server.socket_options.reuse_port,
        tls=tls,
        max_connections=server.max_connections,
        body_idle_timeout_s=server.request_body_idle_timeout_ms / 1000.0,
        min_body_bytes_per_s=server.min_request_body_bytes_per_sec,
    )


def serve(
    reactor: Any,
    router: RouterConfig,
    server: ServerConfig,
    service: Service[Request, Response],
    stats: StatsReceiver,
) -> Listening:
    from l5d_twisted.http.server import serve_http

    if server.add_forwarded_header is not None:
        from l5d_twisted.http.forwarded import forwarded_filter

        service = forwarded_filter(server.add_forwarded_header, router.label).and_then(service)
    if router.compression_level != 0:
        from l5d_twisted.http.compression import CompressionFilter

        service = CompressionFilter(router.compression_level).and_then(service)
    return serve_http(
        reactor, server.ip, server.port, service, server_settings(router, server), stats
    )


def client_socket_options(options: Any) -> tuple[tuple[int, int, int], ...]:
    """client ``socketOptions`` as setsockopt triples (TCP_NODELAY is on unless refused)."""
    import socket

    out = [(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(options.reuse_addr))]
    if not options.no_delay:
        out.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 0))
    if options.reuse_port:
        out.append((socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
    if options.keep_alive:
        out.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    return tuple(out)


def pool_settings(router: RouterConfig, client: ClientParams) -> PoolSettings:
    from l5d_twisted.http.pool import PoolSettings

    pool = client.host_connection_pool
    settings = PoolSettings(
        min_size=pool.min_size,
        max_size=pool.max_size,
        idle_time_s=pool.idle_time_ms / 1000.0,
        max_waiters=pool.max_waiters,
        max_idle_per_client=pool.max_idle_per_client,  # (settings are built per client)
        # linkerd 1's maxHeadersKB / maxInitialLineKB bound both codecs: responses too
        max_headers_kb=router.max_headers_kb,
        max_initial_line_kb=router.max_initial_line_kb,
        socket_options=client_socket_options(client.socket_options),
        max_buffered_response_kb=buffered_response_kb(router),
    )
    if settings.idle_budget is not None:
        return settings  # its idle budget is this client's own
    # otherwise immutable: every client with the same settings shares one object (one per
    # client was ~150 bytes, per name; issue 17).  Keyed by value, so the table holds one
    # entry per distinct client configuration.
    return _SHARED_POOL_SETTINGS.setdefault(settings, settings)


_SHARED_POOL_SETTINGS: dict[PoolSettings, PoolSettings] = {}


def _meets_the_session_seam(
    pool: ConnectionPool[HttpClientProtocol],
) -> SessionPool[HttpClientProtocol]:
    return pool  # mypy checks that the HTTP/1 pool and its connections meet the seam


def endpoint_client(
    reactor: Any,
    address: Any,
    settings: Any,
    stats: StatsReceiver,
    /,
    *,
    connect_timeout_s: float = 1.0,
    tls: Any = None,
) -> Service[Request, Response]:
    """An :class:`~l5d_twisted.http.client.EndpointClient` (imported on first use)."""
    from l5d_twisted.http.client import EndpointClient

    return EndpointClient(
        reactor, address, settings, stats, connect_timeout_s=connect_timeout_s, tls=tls
    )


def router_addons(reactor: Any, router: RouterConfig) -> RouterAddOns:
    """What the router's http keys add to its stacks: ``httpAccessLog`` (only when set)."""
    from l5d_twisted.http.access_log import access_log_edit, open_access_log

    edits = []
    closers = []
    access_log = open_access_log(router)
    if access_log is not None:
        edits.append(access_log_edit(access_log))
        closers.append(access_log.close)
    return RouterAddOns(tuple(edits), tuple(closers))


HTTP = RouterProtocol(
    name="http",
    serve=serve,
    endpoint_factory=endpoint_client,
    client_settings=pool_settings,
    stacks=DEFAULT_STACKS,
    default_port=4140,
    default_identifier="io.l5d.header.token",
    default_classifier="io.l5d.http.nonRetryable5XX",
    router_addons=router_addons,
)


@PROTOCOLS.register("http", NoConfig)
def http_protocol(config: NoConfig) -> RouterProtocol:
    return HTTP
