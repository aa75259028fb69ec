"""The config model: what ``l5d-twisted run CONFIG`` is made of.

Frozen dataclasses with snake_case attributes; YAML keys are their camelCase form.  The
defaults are linkerd 1's (see the reference); plugin blocks (``kind: ...``) are decoded
by the config class their kind registered.

Pure data: reading YAML is :mod:`l5d_twisted.config.decoders` (the types that need more
than the generic field-by-field reading) and :mod:`l5d_twisted.config.decode`; JSON is
:mod:`l5d_twisted.config.tojson`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from l5d_twisted.config.forwarded import ForwardedConfig
from l5d_twisted.config.perprefix import ClientConfig, ServiceConfig
from l5d_twisted.config.schema import PluginSpec, default_plugin, knob
from l5d_twisted.config.tls import ClientTlsConfig, ServerTlsConfig
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import IDENTIFIERS, PROTOCOLS, TELEMETERS, TRANSFORMERS

HTTP_PORT = 4140


def check_roll_policy(value: str) -> None:
    """``httpAccessLogRollPolicy``: util-logging's policies (``http.access_log``)."""
    from l5d_twisted.http.access_log import parse_roll_policy

    parse_roll_policy(value)


MAX_PORT = 65535  # ports may be 0: any free port (tests)


def registered_protocol(name: str) -> Any:
    """The registered protocol ``name`` (a ``protocols.base.RouterProtocol``) whose defaults a
    router of that protocol gets (server port, identifier); None if nobody registered it
    (``check_protocol`` refuses it)."""
    if name not in PROTOCOLS:
        return None
    plugin = PROTOCOLS.get(name)
    return plugin.factory(plugin.config_type())


def default_server_port(protocol: str) -> int:
    found = registered_protocol(protocol)
    return int(found.default_port) if found is not None else HTTP_PORT


def check_protocol(value: str) -> None:
    """A protocol some module of ``l5d_twisted.protocols`` registered (not h2, yet)."""
    if value not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {value!r}; known protocols: {', '.join(PROTOCOLS.kinds())}"
        )


def check_ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"expected an IP address such as 127.0.0.1 or 0.0.0.0, got {value!r}"
        ) from None


def check_path_regexes(values: tuple[str, ...]) -> None:
    """Every item a regular expression (Python's syntax, close to Java's for paths)."""
    for value in values:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"invalid regular expression {value!r}: {e}") from None


@dataclass(frozen=True)
class AdminSecurityConfig:
    """``admin.security``: linkerd 1's admin path categories, white- and blacklist
    (:mod:`l5d_twisted.admin.security`)."""

    ui_enabled: bool = knob(
        True, doc="serve the dashboard, the dtab playground and what they read (ui paths)"
    )
    control_enabled: bool = knob(True, doc="serve /admin/shutdown (control paths)")
    diagnostics_enabled: bool = knob(
        True, doc="serve every other path (ping, ready, metrics, state); the probes use them"
    )
    path_whitelist: tuple[str, ...] = knob(
        (),
        validator=check_path_regexes,
        doc="regexes of whole paths served although their category is disabled",
    )
    path_blacklist: tuple[str, ...] = knob(
        (),
        validator=check_path_regexes,
        doc="regexes of whole paths never served (404), whatever the rest says",
    )


@dataclass(frozen=True)
class AdminConfig:
    ip: str = knob("127.0.0.1", validator=check_ip, doc="address of the admin server")
    port: int = knob(
        9990, minimum=0, maximum=MAX_PORT, doc="admin port (dashboard, metrics, delegator)"
    )
    shutdown_grace_ms: int = knob(
        10_000, minimum=0, doc="how long a shutdown waits for requests to finish"
    )
    drain_period_ms: int = knob(
        0,
        minimum=0,
        doc=(
            "on SIGTERM or /admin/shutdown, keep accepting this long (GET /ready answers 503, "
            "responses carry Connection: close) before closing the listeners"
        ),
    )
    allow_shutdown: bool = knob(False, doc="accept POST /admin/shutdown")
    security: AdminSecurityConfig | None = knob(
        None, doc="which admin paths are served (default: all of them)"
    )
    tls: ServerTlsConfig | None = knob(
        None, doc="serve the admin interface over TLS (the keys of a server's tls)"
    )
    worker_threads: int = knob(
        2,
        minimum=1,
        maximum=64,
        doc="metrics renders (metrics.json, Prometheus text) worked on at once; more wait"
        " their turn, 100 at most (linkerd 1: the admin server's threads; here the reactor"
        " serves the admin, so the key bounds its renders)",
    )


@dataclass(frozen=True)
class SocketOptions:
    """linkerd 1's server ``socketOptions`` (its ``readTimeoutMs``/``writeTimeoutMs`` are not implemented)."""

    no_delay: bool = knob(True, doc="TCP_NODELAY on accepted connections")
    reuse_addr: bool = knob(True, doc="SO_REUSEADDR on the listening socket")
    reuse_port: bool = knob(
        False,
        doc=(
            "SO_REUSEPORT on the listening socket: several processes share the port "
            "(hand-over without refused connections)"
        ),
    )
    keep_alive: bool = knob(False, doc="SO_KEEPALIVE on accepted connections")


@dataclass(frozen=True)
class RequestDtabConfig:
    """Whether a server honours the dtab a client sends with its request (docs/security.md)."""

    enabled: bool = knob(
        True,
        doc="honour l5d-dtab and l5d-ctx-dtab from clients (false: both are removed on arrival)",
    )
    allow_addresses: bool = knob(
        False,
        doc="let a request dtab delegate to /$/inet, /$/io.buoyant.rinet and the host:port built-ins (else 403); "
        "the mesh's own ports and link-local metadata addresses stay refused either way",
    )


@dataclass(frozen=True)
class ServerConfig:
    port: int = knob(
        HTTP_PORT,
        minimum=0,
        maximum=MAX_PORT,
        doc="listening port (default: the router protocol's, http 4140)",
    )
    ip: str = knob("127.0.0.1", validator=check_ip, doc="listening address (0.0.0.0 for all)")
    clear_context: bool = knob(
        False,
        doc="drop inbound l5d-* fields (l5d-ctx-*, l5d-dtab, l5d-sample, ...): for untrusted clients",
    )
    request_dtab: RequestDtabConfig = knob(
        default_factory=RequestDtabConfig, doc="what a client's own dtab may do"
    )
    max_concurrent_requests: int | None = knob(
        None, minimum=1, doc="reject requests beyond this many in flight"
    )
    tls: ServerTlsConfig | None = knob(None, doc="terminate TLS")
    # not in linkerd 1; defaults and reasons in docs/security.md
    max_connections: int | None = knob(
        10_000,
        minimum=1,
        doc="connections open at once; more are closed at accept and counted as connections_refused (null = no cap)",
    )
    request_body_idle_timeout_ms: int = knob(
        30_000,
        minimum=1,
        doc="a request body with no data for this long is cut (408 if not answered yet)",
    )
    min_request_body_bytes_per_sec: int = knob(
        240,
        minimum=0,
        doc="a request body slower than this on average, after 5 s, is cut like an idle one (0 = off)",
    )
    socket_options: SocketOptions = knob(
        default_factory=SocketOptions,
        doc="TCP options of the listening socket and accepted connections",
    )
    add_forwarded_header: ForwardedConfig | None = knob(
        None,
        doc=(
            "add an RFC 7239 Forwarded element (by, for, host, proto) to every request "
            "({}: both labelers requestRandom)"
        ),
    )


@dataclass(frozen=True)
class NamerdRetryConfig:
    """``interpreter.retry`` of ``io.l5d.namerd.http``: reconnect backoff (linkerd 1's)."""

    base_seconds: float = knob(
        5.0, minimum=0.001, doc="first delay before reconnecting a failed namerd watch"
    )
    max_seconds: float = knob(600.0, minimum=0.001, doc="the delay doubles (jittered) up to this")


@dataclass(frozen=True)
class InterpreterConfig:
    kind: str = knob(
        "default",
        choices=("default", "io.l5d.namerd.http"),
        doc="default: binds in process with the dtab and namers; io.l5d.namerd.http: namerd binds",
    )
    transformers: tuple[PluginSpec, ...] = knob(
        default=(), registry=TRANSFORMERS, doc="applied to bound trees, in order"
    )
    experimental: bool = knob(
        False, doc="io.l5d.namerd.http: must be true (experimental in linkerd 1)"
    )
    dst: Path | None = knob(
        None,
        doc="io.l5d.namerd.http (required): where namerd's HTTP interface is, e.g. /$/inet/namerd/4180",
    )
    namespace: str = knob("default", doc="io.l5d.namerd.http: the namerd dtab to bind with")
    retry: NamerdRetryConfig = knob(
        default_factory=NamerdRetryConfig,
        doc="io.l5d.namerd.http: backoff between reconnects to namerd",
    )
    tls: ClientTlsConfig | None = knob(
        None, doc="io.l5d.namerd.http: TLS to namerd (the keys of a client's tls)"
    )


@dataclass(frozen=True)
class BindingCacheConfig:
    """A router's ``bindingCache``: linkerd 1's keys, larger defaults (issue 17: a node's
    proxy sees thousands of names; linkerd 1's defaults were 1,000 entries and 600 s)."""

    paths: int = knob(
        10_000,
        minimum=1,
        doc="most routes (a name and its request dtab) cached at once, the least recently used "
        "going first (linkerd 1: 1000; 10,000 here, so a node's proxy holds 10,000 active names)",
    )
    trees: int = knob(
        10_000,
        minimum=1,
        doc="accepted for linkerd 1 configs: bound trees are held by the routes (paths), not cached apart",
    )
    bounds: int = knob(
        10_000,
        minimum=1,
        doc="accepted for linkerd 1 configs: a bound name's layer is its client (clients), not cached apart",
    )
    clients: int = knob(
        10_000,
        minimum=1,
        doc="most clients (a bound name with its balancer and endpoints) cached at once, the least "
        "recently used going first (linkerd 1: 1000)",
    )
    idle_ttl_secs: int = knob(
        600,
        minimum=1,
        doc="routes and clients unused this long are closed with all they hold (namer watches, "
        "connections); their metric scopes expire after metricsExpiryTtlSecs (as linkerd 1: 600)",
    )


def _default_identifiers() -> tuple[PluginSpec, ...]:
    return (default_plugin(IDENTIFIERS, "io.l5d.header.token"),)


@dataclass(frozen=True)
class RouterConfig:
    protocol: str = knob(
        "http",
        validator=check_protocol,
        doc="the protocol served and spoken to endpoints (known: http)",
    )
    label: str = knob(
        "", doc="the router's name in metrics and the admin UI (default: the protocol)"
    )
    servers: tuple[ServerConfig, ...] = knob(
        default=(), min_items=1, doc="default: one on the protocol's port"
    )
    dtab: Dtab = knob(default_factory=Dtab.empty, doc="delegation table")
    dst_prefix: Path = knob(
        default_factory=lambda: Path.read("/svc"), doc="prefix of identified names"
    )
    identifier: tuple[PluginSpec, ...] = knob(
        default_factory=_default_identifiers,
        registry=IDENTIFIERS,
        default_kind="io.l5d.header.token",
        one_or_many=True,
        min_items=1,
        doc="tried in order until one names the request",
    )
    interpreter: InterpreterConfig = knob(default_factory=InterpreterConfig)
    client: ClientConfig = knob(default_factory=ClientConfig)
    service: ServiceConfig = knob(default_factory=ServiceConfig)
    binding_timeout_ms: int = knob(
        10_000, minimum=1, doc="fail requests whose name does not bind in time"
    )
    binding_cache: BindingCacheConfig = knob(
        default_factory=BindingCacheConfig,
        doc="sizes and idle time of the route and client caches (linkerd 1's keys)",
    )
    max_headers_kb: int = knob(8, minimum=1, maximum=1024, key="maxHeadersKB")
    max_initial_line_kb: int = knob(4, minimum=1, maximum=1024, key="maxInitialLineKB")
    max_request_kb: int = knob(
        5120, minimum=1, key="maxRequestKB", doc="largest buffered request body"
    )
    streaming_enabled: bool = knob(True)
    experimental: bool = knob(
        False,
        doc=(
            "linkerd 1's opt-in to experimental protocols and plugins on this router; "
            "l5d-twisted has none behind it, so the switch enables nothing (accepted so that "
            "linkerd 1 configs load)"
        ),
    )
    max_call_depth: int = knob(
        1000, minimum=1, doc="Via entries allowed before a request counts as a loop"
    )
    http_access_log: str | None = knob(
        None,
        doc=(
            "file of linkerd 1's access log lines, one per upstream response (relative: to the "
            "working directory); none if unset"
        ),
    )
    http_access_log_roll_policy: str = knob(
        "never",
        validator=check_roll_policy,
        doc="never, hourly, daily, weekly(n) (1 Sunday .. 7 Saturday) or a size like 3.megabytes",
    )
    http_access_log_append: bool = knob(
        True, doc="append to an existing access log (false: truncate it at start-up)"
    )
    http_access_log_rotate_count: int = knob(
        -1, minimum=-1, doc="rolled access log files kept (-1: all)"
    )
    compression_level: int = knob(
        -1,
        minimum=-1,
        maximum=9,
        doc=(
            "gzip of responses to clients that accept it: -1 textual content types at level 6, "
            "1-9 every response at that level, 0 never"
        ),
    )
    originator: bool = knob(
        False,
        doc=(
            "this router is the first hop of linker-to-linker requests: the gauge "
            "rt/<router>/originator is 1 (for deduplicating linker-to-linker stats)"
        ),
    )
    stream_after_content_length_kb: int | None = knob(
        None,
        minimum=0,
        key="streamAfterContentLengthKB",
        doc=(
            "bodies with a Content-Length up to this are buffered (a request can then be "
            "retried), larger and chunked ones streamed; requests capped by maxRequestKB; "
            "unset: 8 for requests, 64 for responses (linkerd 1: 5 for both)"
        ),
    )
    # telemetry.scope_limit.DEFAULT_MAX_METRIC_SCOPES (why 1,000 while bindingCache holds
    # 10,000 names: see that module)
    max_metric_scopes: int = knob(
        1000,
        minimum=0,
        doc=(
            "most service (and, apart, client) metric scopes live at once; new names beyond it "
            "share the scope `<overflow>`, counted by `rt:service_scope_overflow` and "
            "`rt:client_scope_overflow` (0 = no cap)"
        ),
    )

    def __post_init__(self) -> None:
        if self.stream_after_content_length_kb is not None and not self.streaming_enabled:
            raise ValueError(
                "streamingEnabled: false and streamAfterContentLengthKB conflict (linkerd 1 "
                "refuses both): set one"
            )
        if not self.label:
            object.__setattr__(self, "label", self.protocol)
        if not self.servers:
            port = default_server_port(self.protocol)
            object.__setattr__(self, "servers", (ServerConfig(port=port),))


@dataclass(frozen=True)
class NamerSpec:
    """A ``namers:`` entry; dtabs reach it as ``/#/<prefix>`` (prefix default ``/<kind>``)."""

    kind: str
    prefix: Path
    config: Any
    # linkerd 1's generic ``transformers`` key: applied, in order, to this namer's bound names
    transformers: tuple[PluginSpec, ...] = ()


@dataclass(frozen=True)
class Workers:
    """``workers: N | auto``: how many reactor processes serve the routers (docs/operations.md).

    ``count`` is ``None`` for ``auto``: the CPUs the container may use, found at start-up by
    :func:`l5d_twisted.workers.cpus.available_cpus`.
    """

    count: int | None = 1

    def show(self) -> str:
        return "auto" if self.count is None else str(self.count)


MAX_WORKERS = 256


@dataclass(frozen=True, kw_only=True)
class Config:
    admin: AdminConfig = knob(default_factory=AdminConfig)
    routers: tuple[RouterConfig, ...] = knob(min_items=1)
    namers: tuple[NamerSpec, ...] = knob(default=())
    telemetry: tuple[PluginSpec, ...] = knob(default=(), registry=TELEMETERS)
    workers: Workers = knob(
        default_factory=Workers,
        doc=(
            "reactor processes serving the routers, sharing each router port (SO_REUSEPORT) "
            "under one admin server; `auto`: the CPUs available (cgroup CPU limit, affinity), "
            "rounded up"
        ),
    )
    source_dir: str = knob(".", internal=True, doc="directory of the config file (relative paths)")
