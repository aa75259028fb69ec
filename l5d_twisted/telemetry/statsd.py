"""Telemeter ``io.l5d.statsd``: the metrics tree sent to a StatsD server over UDP.

Config (linkerd 1's keys and defaults)::

    telemetry:
    - kind: io.l5d.statsd
      experimental: true        # required, as in linkerd 1
      prefix: linkerd           # before every name, with a dot
      hostname: 127.0.0.1
      port: 8125
      gaugeIntervalMs: 10000    # how often gauges are sent
      sampleRate: 0.01          # share of timing values sent (with |@rate)

**Names** are linkerd 1's: the tree name's segments joined with ``/``, every character
outside ``[/A-Za-z0-9]`` turned into ``_``, ``//`` into ``/``, then ``/`` into ``.``, after
``<prefix>.``; so ``rt/outgoing/service/svc/hello/requests`` is
``linkerd.rt.outgoing.service.svc.hello.requests``.

**What is sent.**  Counters as ``<name>:<n>|c``, histograms (latencies, sizes) as StatsD
timings ``<name>:<v>|ms|@<sampleRate>``, gauges as ``<name>:<v>|g`` every
``gaugeIntervalMs``.  linkerd 1 sent each counter increment and each histogram value the
moment it was recorded, keeping a ``sampleRate`` share of them.  Here recording stays a
plain attribute update (the proxy's hot path knows nothing of StatsD): every second
(:data:`SEND_PERIOD_S`) the telemeter reads the tree and sends what changed since its last
read.  Counters go as their exact increase, unsampled (linkerd 1's sampling lost counts of
rare events such as failures, which its own docs warned about; StatsD adds the increases up
the same).  Each value a histogram recorded since the last read is kept with probability
``sampleRate`` and sent as a timing, its value the histogram bucket's lower bound (within
~3 %, as every summary of the tree; exact for whole numbers up to 32), at most :data:`MAX_TIMINGS_PER_SEND` a read.

Lines are packed into datagrams of at most :data:`MAX_DATAGRAM` bytes.  The reads run in
small steps on the reactor (:mod:`.render`), so a large tree does not stall the proxy.
With ``workers:`` above 1 each worker sends its own counters and timings (StatsD adds them
up) and its own gauges (the last one received wins).
"""

from __future__ import annotations

import ipaddress
import math
import random
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Cooperator, LoopingCall
from twisted.logger import Logger

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.registry import TELEMETERS
from l5d_twisted.telemetry.histogram import Histogram, bucket_bounds
from l5d_twisted.telemetry.metrics import CounterMetric, GaugeMetric, MetricsTree, Name, tree_of
from l5d_twisted.telemetry.render import reactor_cooperator, run_steps
from l5d_twisted.telemetry.telemeter import TelemeterBase

log = Logger()

SEND_PERIOD_S = 1.0
MAX_DATAGRAM = 1432  # bytes: fits an Ethernet MTU with IP and UDP headers
MAX_TIMINGS_PER_SEND = 10_000
STEP_METRICS = 200  # metrics read per step

_INVALID = re.compile(r"[^/A-Za-z0-9]")


def _check_experimental(value: bool) -> None:
    if not value:
        raise ValueError(
            "io.l5d.statsd is experimental: set experimental: true to use it (as linkerd 1 asks)"
        )


@dataclass(frozen=True)
class StatsdConfig:
    experimental: bool = knob(
        False,
        doc="must be true: linkerd 1 marks this telemeter experimental",
    )
    prefix: str = knob("linkerd", doc="prepended to every name, followed by a dot")
    hostname: str = knob("127.0.0.1", doc="the StatsD server (an address or a DNS name)")
    port: int = knob(8125, minimum=1, maximum=65535, doc="the StatsD server's UDP port")
    gauge_interval_ms: int = knob(10_000, minimum=1, doc="how often gauges are sent")
    sample_rate: float = knob(
        0.01,
        minimum=0.0,
        maximum=1.0,
        doc="share of histogram values sent as timings (with |@rate); counters are sent "
        "exactly, as their increase every second (linkerd 1 sampled them too)",
    )

    def __post_init__(self) -> None:
        _check_experimental(self.experimental)


def statsd_name(name: Name, prefix: str = "") -> str:
    """linkerd 1's StatsD name of a tree name (``mkName`` in its StatsDStatsReceiver)."""
    text = _INVALID.sub("_", "/".join(name)).replace("//", "/").replace("/", ".")
    prefix = prefix.strip()
    return f"{prefix}.{text}" if prefix else text


def format_value(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(round(value, 6))


def timing_text(index: int) -> str:
    """A histogram bucket's value as a timing: its lower bound in whole units, as linkerd 1
    sent them (``toLong``), or with three decimals below 1 (linkerd 1 sent 0)."""
    low = bucket_bounds(index)[0]
    return str(int(low)) if low >= 1.0 else format_value(round(low, 3))


def binomial(rng: random.Random, n: int, p: float) -> int:
    """How many of ``n`` values a ``p`` sample keeps."""
    if p >= 1.0:
        return n
    if p <= 0.0 or n <= 0:
        return 0
    if n <= 256:
        return sum(1 for _ in range(n) if rng.random() < p)
    # Many values: the normal approximation (the count only sets how many lines go).
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    return max(0, min(n, round(rng.gauss(mean, sd))))


class _Sender(DatagramProtocol):
    def __init__(self) -> None:
        self.errors = 0

    def send(self, datagram: bytes, address: tuple[str, int]) -> None:
        transport: Any = self.transport  # an IUDPTransport (its stub misreads write)
        if transport is None:
            return
        try:
            transport.write(datagram, address)
        except OSError as e:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.warn("statsd send to {address} failed: {error}", address=address, error=e)


class StatsdTelemeter(TelemeterBase):
    """Reads the tree every second (counters, histograms) and every ``gaugeIntervalMs``."""

    def __init__(
        self,
        config: StatsdConfig,
        tree: MetricsTree,
        reactor: Any,
        rng: random.Random | None = None,
        cooperator: Cooperator | None = None,
    ) -> None:
        self.config = config
        self.tree = tree
        self.reactor = reactor
        self.rng = rng if rng is not None else random.Random()
        self.cooperator = cooperator if cooperator is not None else reactor_cooperator(reactor)
        self.sample_suffix = "" if config.sample_rate >= 1.0 else f"|@{config.sample_rate:g}"
        self._names: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        # What was last seen of each counter and histogram (forgotten with the metric).
        self._counts: weakref.WeakKeyDictionary[CounterMetric, int] = weakref.WeakKeyDictionary()
        self._buckets: weakref.WeakKeyDictionary[
            Histogram, tuple[dict[int, int], dict[int, int]]
        ] = weakref.WeakKeyDictionary()
        self._sender = _Sender()
        self._port: Any = None
        self._address: tuple[str, int] | None = None
        self._resolving = False
        self._resolve_failures = 0
        self._loops: list[LoopingCall] = []
        self._busy: dict[str, Deferred[Any]] = {}
        self.sent_datagrams = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._port is not None:
            return
        host = self.config.hostname
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        self._port = self.reactor.listenUDP(
            0, self._sender, interface="::" if ip is not None and ip.version == 6 else ""
        )
        if ip is not None:
            self._address = (str(ip), self.config.port)
        else:
            self._resolve()
        log.info(
            "sending metrics to StatsD at {host}:{port} as {prefix}",
            host=host,
            port=self.config.port,
            prefix=self.config.prefix,
        )
        for period, job in (
            (SEND_PERIOD_S, "changes"),
            (self.config.gauge_interval_ms / 1000.0, "gauges"),
        ):
            loop = LoopingCall(self._run, job)
            loop.clock = self.reactor
            loop.start(period, now=False)
            self._loops.append(loop)

    def _resolve(self) -> None:
        """Look the hostname up (once at a time; retried each send period until it
        resolves, the failure logged the first time and then every 60th)."""
        if self._resolving:
            return
        self._resolving = True
        d = self.reactor.resolve(self.config.hostname)

        def resolved(ip: str) -> None:
            self._resolving = False
            self._resolve_failures = 0
            self._address = (ip, self.config.port)

        def failed(f: Any) -> None:
            self._resolving = False
            if self._resolve_failures % 60 == 0:
                log.warn(
                    "statsd host {host} does not resolve ({error}); retrying",
                    host=self.config.hostname,
                    error=f.getErrorMessage(),
                )
            self._resolve_failures += 1

        d.addCallbacks(resolved, failed)

    def close(self) -> Any:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        for d in list(self._busy.values()):
            d.cancel()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None

    # -- one read of the tree -------------------------------------------------------------

    def _run(self, job: str) -> None:
        if job in self._busy:
            return  # the last read is still going
        if self._address is None:
            if self.config.hostname and self._port is not None:
                self._resolve()
            return
        lines: list[str] = []
        steps = self.gauge_steps(lines) if job == "gauges" else self.change_steps(lines)
        d = run_steps(self.cooperator, steps, lambda: lines)
        self._busy[job] = d

        def done(result: Any) -> None:
            self._busy.pop(job, None)
            if isinstance(result, list):
                self.send_lines(result)

        def failed(f: Any) -> None:
            self._busy.pop(job, None)
            if not f.check(CancelledError):
                log.failure("statsd read failed", f)

        d.addCallbacks(done, failed)

    def _name(self, name: Name, metric: object) -> str:
        found = self._names.get(metric)
        if found is None:
            found = self._names[metric] = statsd_name(name, self.config.prefix)
        return found

    def change_steps(self, lines: list[str]) -> Iterator[None]:
        """Counters' increases and histograms' new values since the last read."""
        timings = 0
        for i, (name, metric) in enumerate(self.tree.metrics()):
            if i % STEP_METRICS == STEP_METRICS - 1:
                yield None
            if isinstance(metric, CounterMetric):
                value = metric.value
                delta = value - self._counts.get(metric, 0)
                self._counts[metric] = value
                if delta > 0:
                    lines.append(f"{self._name(name, metric)}:{delta}|c")
            elif isinstance(metric, Histogram):
                for text, n in self._new_values(metric):
                    kept = binomial(self.rng, n, self.config.sample_rate)
                    kept = min(kept, MAX_TIMINGS_PER_SEND - timings)
                    if kept <= 0:
                        continue
                    timings += kept
                    line = f"{self._name(name, metric)}:{text}|ms{self.sample_suffix}"
                    lines.extend([line] * kept)

    def _new_values(self, histogram: Histogram) -> list[tuple[str, int]]:
        """(value, how many) recorded since the last read, by bucket."""
        cur = histogram._cur
        seen = self._buckets.get(histogram)
        new: dict[int, int] = {}
        if seen is None:
            # Not seen before: everything it holds is new (it was made after the last read;
            # a histogram older than its window only lost values nobody read).
            sources = [histogram._prev, cur] if histogram._prev is not cur else [cur]
            for source in sources:
                for index, n in source.items():
                    new[index] = new.get(index, 0) + n
        else:
            seen_dict, seen_counts = seen
            if seen_dict is cur:
                for index, n in cur.items():
                    d = n - seen_counts.get(index, 0)
                    if d > 0:
                        new[index] = d
            else:  # rotated since: the dict we read is now the previous period (or gone)
                if histogram._prev is seen_dict:
                    for index, n in seen_dict.items():
                        d = n - seen_counts.get(index, 0)
                        if d > 0:
                            new[index] = d
                for index, n in cur.items():
                    new[index] = new.get(index, 0) + n
        self._buckets[histogram] = (cur, dict(cur))
        return [(timing_text(index), n) for index, n in sorted(new.items())]

    def gauge_steps(self, lines: list[str]) -> Iterator[None]:
        for i, (name, metric) in enumerate(self.tree.metrics()):
            if i % STEP_METRICS == STEP_METRICS - 1:
                yield None
            if isinstance(metric, GaugeMetric):
                value = metric.read()
                if math.isnan(value) or math.isinf(value):
                    continue
                stat = self._name(name, metric)
                if value < 0:
                    # "<name>:-1|g" would be read as a change of -1: set 0 first.
                    lines.append(f"{stat}:0|g")
                lines.append(f"{stat}:{format_value(value)}|g")

    # -- sending ----------------------------------------------------------------------------

    def send_lines(self, lines: list[str]) -> None:
        address = self._address
        if address is None or not lines:
            return
        for datagram in pack(lines):
            self._sender.send(datagram, address)
            self.sent_datagrams += 1

    def read_now(self, job: str = "changes") -> list[str]:
        """One read at once, without sending (tests, and what a read would send)."""
        lines: list[str] = []
        steps = self.gauge_steps(lines) if job == "gauges" else self.change_steps(lines)
        for _ in steps:
            pass
        return lines


def pack(lines: list[str], limit: int = MAX_DATAGRAM) -> Iterator[bytes]:
    """Lines joined by newlines into datagrams of at most ``limit`` bytes (a longer line
    goes alone)."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode("utf-8")
        extra = len(data) + (1 if batch else 0)
        if batch and size + extra > limit:
            yield b"\n".join(batch)
            batch, size = [], 0
            extra = len(data)
        batch.append(data)
        size += extra
    if batch:
        yield b"\n".join(batch)


@TELEMETERS.register("io.l5d.statsd", StatsdConfig)
def make_statsd_telemeter(config: StatsdConfig, ctx: PluginContext) -> StatsdTelemeter:
    return StatsdTelemeter(config, tree_of(ctx.stats), ctx.reactor, rng=ctx.rng)
