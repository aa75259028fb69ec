"""The parameters of one client (per bound name) and one service (per logical name).

These are the blocks users write under ``client:`` and ``service:`` (globally, or per
prefix with ``io.l5d.static``, see :mod:`l5d_twisted.config.perprefix`).  Defaults are
linkerd 1's.
"""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import PluginSpec, knob
from l5d_twisted.config.tls import ClientTlsConfig
from l5d_twisted.registry import BACKOFFS, BALANCERS, CLASSIFIERS, FAILURE_ACCRUAL


@dataclass(frozen=True)
class PoolConfig:
    """``hostConnectionPool``: connections kept per endpoint address."""

    min_size: int = knob(0, minimum=0, doc="connections kept open even when idle")
    max_size: int | None = knob(
        None, minimum=1, doc="most connections per endpoint (no limit by default)"
    )
    idle_time_ms: int = knob(
        10_000,
        minimum=0,
        doc="close connections idle this long (above minSize); linkerd 1's default is no limit"
        " (Finagle's pool idleTime), kept here at 10 s so that idle sockets to endpoints"
        " no longer used go away",
    )
    max_waiters: int | None = knob(
        None, minimum=0, doc="requests that may wait for a connection when maxSize is reached"
    )
    max_idle_per_client: int | None = knob(
        None,
        minimum=1,
        doc="idle connections kept over all the endpoints of one client (not in linkerd 1):"
        " past it the connection idle the longest is closed, whatever its endpoint and"
        " minSize; bounds the sockets p2c/ewma keep warm to 1,000 endpoints, at the price"
        " of a connect for each request that then finds none idle (aperture keeps few"
        " sockets without it); no limit by default",
    )

    def __post_init__(self) -> None:
        if self.max_size is not None and self.min_size > self.max_size:
            raise ValueError(f"minSize ({self.min_size}) is larger than maxSize ({self.max_size})")


@dataclass(frozen=True)
class BudgetConfig:
    """``retries.budget`` and ``client.requeueBudget``: retries (or requeues) allowed on top
    of the original requests, Finagle's RetryBudget (linkerd 1's defaults)."""

    min_retries_per_sec: int = knob(10, minimum=0, doc="retries always allowed per second")
    percent_can_retry: float = knob(
        0.2, minimum=0.0, maximum=1000.0, doc="extra retries as a fraction of requests"
    )
    ttl_secs: int = knob(10, minimum=1, maximum=60, doc="window over which requests are counted")


@dataclass(frozen=True)
class ClientSocketOptions:
    """linkerd 1's client ``socketOptions`` on every connection to an endpoint (set once
    connected; its ``readTimeoutMs``/``writeTimeoutMs``/``backlog`` are not implemented)."""

    no_delay: bool = knob(True, doc="TCP_NODELAY (false: Nagle's algorithm on)")
    reuse_addr: bool = knob(
        True, doc="SO_REUSEADDR (set after connect: Linux gives it no effect on a connected socket)"
    )
    reuse_port: bool = knob(
        False,
        doc="SO_REUSEPORT (set after connect: Linux gives it no effect on a connected socket)",
    )
    keep_alive: bool = knob(False, doc="SO_KEEPALIVE: TCP keep-alive probes on idle connections")


@dataclass(frozen=True)
class ClientParams:
    """How to talk to one bound name (``/#/io.l5d.fs/world``): balancing, accrual, pools."""

    load_balancer: PluginSpec = knob(
        registry=BALANCERS, default_kind="p2c", doc="how to pick an endpoint"
    )
    failure_accrual: PluginSpec = knob(
        registry=FAILURE_ACCRUAL,
        default_kind="io.l5d.consecutiveFailures",
        doc="when to stop sending to a failing endpoint",
    )
    request_attempt_timeout_ms: int | None = knob(
        None, minimum=1, doc="timeout of each attempt (retries get their own)"
    )
    connect_timeout_ms: int = knob(1000, minimum=1, doc="TCP connect timeout")
    host_connection_pool: PoolConfig = knob(
        default_factory=PoolConfig, doc="connections per endpoint"
    )
    fail_fast: bool = knob(False, doc="mark an endpoint down at its first connection failure")
    tls: ClientTlsConfig | None = knob(None, doc="originate TLS to the endpoints")
    requeue_budget: BudgetConfig = knob(
        default_factory=BudgetConfig,
        doc="budget of requeues: re-sends, through the balancer, of requests that failed to "
        "reach an endpoint (connection failures), per client",
    )
    socket_options: ClientSocketOptions = knob(
        default_factory=ClientSocketOptions, doc="TCP options of the connections to endpoints"
    )


@dataclass(frozen=True)
class RetriesConfig:
    budget: BudgetConfig = knob(default_factory=BudgetConfig)
    backoff: PluginSpec = knob(
        registry=BACKOFFS, default_kind="constant", doc="wait before each retry"
    )


@dataclass(frozen=True)
class ServiceParams:
    """How to treat requests to one logical name (``/svc/hello``): retries, timeouts."""

    retries: RetriesConfig = knob(default_factory=RetriesConfig)
    total_timeout_ms: int | None = knob(
        15_000,
        minimum=1,
        doc=(
            "bound on the time to the response head, retries included "
            "(default 15 s, Envoy's route timeout; linkerd 1 had none; null = none)"
        ),
    )
    response_classifier: PluginSpec = knob(
        registry=CLASSIFIERS,
        default_kind="io.l5d.http.nonRetryable5XX",
        doc="which responses succeed, which may be retried",
    )
