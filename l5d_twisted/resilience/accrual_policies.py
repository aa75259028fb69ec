"""The failure accrual policies of linkerd 1 (``client.failureAccrual.kind``).

Every policy has a ``backoff`` (default ``jittered`` 5 s..300 s): how long an endpoint stays
dead each time it is marked, the stream starting over when it revives.

* ``io.l5d.consecutiveFailures`` (``failures``, default 5): dead after that many failures
  in a row.
* ``io.l5d.successRate`` (``successRate``, ``requests``): an exponential moving average of
  successes over roughly the last ``requests`` outcomes; dead when it falls below
  ``successRate``, once at least ``requests`` outcomes were seen.  The average is not reset
  by a revival: a flapping endpoint is marked dead again at its next failure, while a
  healthy one climbs back with every success.
* ``io.l5d.successRateWindowed`` (``successRate``, ``window`` seconds): the success rate
  over the last ``window`` seconds (one-second buckets); dead when below ``successRate``,
  once the endpoint has been observed for a whole window.
* ``none``: never marks an endpoint dead.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from l5d_twisted.config.schema import PluginSpec, knob
from l5d_twisted.registry import BACKOFFS, FAILURE_ACCRUAL
from l5d_twisted.resilience.accrual import AccrualPolicy
from l5d_twisted.resilience.backoff import Backoff, DecorrelatedJitterBackoff, make_backoff

# linkerd 1's default failure accrual backoff: jittered between 5 s and 300 s
DEFAULT_BACKOFF = DecorrelatedJitterBackoff(5.0, 300.0)

# Policies are built per endpoint by a factory that only gets the config; their jitter
# comes from one shared generator seeded from the OS.
_RNG = random.Random()


class _BackoffPolicy:
    """The backoff stream every policy shares."""

    def __init__(self, backoff: Backoff, rng: random.Random | None) -> None:
        self._backoff = backoff
        self._rng = rng or _RNG
        # made at the first mark-dead (a generator is ~300 bytes, one per endpoint)
        self._delays: Iterator[float] | None = None

    def _next_delay(self) -> float:
        delays = self._delays
        if delays is None:
            delays = self._delays = self._backoff.delays(self._rng)
        return next(delays)

    def revived(self, now: float) -> None:
        self._delays = None  # the next mark-dead starts the backoff over


class ConsecutiveFailuresPolicy(_BackoffPolicy):
    def __init__(
        self,
        failures: int = 5,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff, rng)
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        self.failures = failures
        self._consecutive = 0

    def record_success(self, now: float) -> None:
        self._consecutive = 0

    def mark_dead_on_failure(self, now: float) -> float | None:
        self._consecutive += 1
        if self._consecutive >= self.failures:
            return self._next_delay()
        return None

    def revived(self, now: float) -> None:
        super().revived(now)
        self._consecutive = 0


class SuccessRatePolicy(_BackoffPolicy):
    def __init__(
        self,
        success_rate: float,
        requests: int,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff, rng)
        if not 0 <= success_rate <= 1:
            raise ValueError(f"successRate must be within [0, 1], got {success_rate}")
        if requests < 1:
            raise ValueError(f"requests must be >= 1, got {requests}")
        self.success_rate = success_rate
        self.requests = requests
        self._alpha = 1.0 / requests
        self._rate = 1.0
        self._seen = 0

    @property
    def rate(self) -> float:
        return self._rate

    def _record(self, outcome: float) -> None:
        self._seen += 1
        self._rate += self._alpha * (outcome - self._rate)

    def record_success(self, now: float) -> None:
        self._record(1.0)

    def mark_dead_on_failure(self, now: float) -> float | None:
        self._record(0.0)
        if self._seen >= self.requests and self._rate < self.success_rate:
            return self._next_delay()
        return None


class SuccessRateWindowedPolicy(_BackoffPolicy):
    def __init__(
        self,
        success_rate: float,
        window_s: float,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff, rng)
        if not 0 <= success_rate <= 1:
            raise ValueError(f"successRate must be within [0, 1], got {success_rate}")
        if window_s <= 0:
            raise ValueError(f"window must be positive, got {window_s}")
        self.success_rate = success_rate
        self.window_s = window_s
        self._buckets: deque[list[int]] = deque()  # [second, successes, total]
        self._successes = 0
        self._total = 0
        self._since: float | None = None

    def _record(self, now: float, success: int) -> None:
        if self._since is None:
            self._since = now
        second = int(now)
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - self.window_s:
            _, s, t = buckets.popleft()
            self._successes -= s
            self._total -= t
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
        buckets[-1][1] += success
        buckets[-1][2] += 1
        self._successes += success
        self._total += 1

    def rate(self) -> float:
        return self._successes / self._total if self._total else 1.0

    def record_success(self, now: float) -> None:
        self._record(now, 1)

    def mark_dead_on_failure(self, now: float) -> float | None:
        self._record(now, 0)
        assert self._since is not None
        if now - self._since >= self.window_s and self.rate() < self.success_rate:
            return self._next_delay()
        return None


class NoAccrualPolicy:
    def record_success(self, now: float) -> None:
        pass

    def mark_dead_on_failure(self, now: float) -> float | None:
        return None

    def revived(self, now: float) -> None:
        pass


def _backoff_knob() -> PluginSpec:
    return knob(
        registry=BACKOFFS,
        default_kind="jittered",
        doc="how long a dead endpoint stays dead (default jittered 5 s..300 s)",
    )


@dataclass(frozen=True)
class ConsecutiveFailuresConfig:
    failures: int = knob(5, minimum=1, doc="failures in a row that mark an endpoint dead")
    backoff: PluginSpec = _backoff_knob()


@dataclass(frozen=True)
class SuccessRateConfig:
    success_rate: float = knob(
        0.8, minimum=0.0, maximum=1.0, doc="mark dead below this success rate"
    )
    requests: int = knob(20, minimum=1, doc="outcomes the moving average spans")
    backoff: PluginSpec = _backoff_knob()


@dataclass(frozen=True)
class SuccessRateWindowedConfig:
    success_rate: float = knob(
        0.8, minimum=0.0, maximum=1.0, doc="mark dead below this success rate"
    )
    window: int = knob(30, minimum=1, doc="seconds the success rate is computed over")
    backoff: PluginSpec = _backoff_knob()


@dataclass(frozen=True)
class NoAccrualConfig:
    """``none`` takes no options."""


@FAILURE_ACCRUAL.register("io.l5d.consecutiveFailures", ConsecutiveFailuresConfig)
def consecutive_failures(config: ConsecutiveFailuresConfig | None = None) -> AccrualPolicy:
    config = config or ConsecutiveFailuresConfig()
    return ConsecutiveFailuresPolicy(config.failures, make_backoff(config.backoff, DEFAULT_BACKOFF))


@FAILURE_ACCRUAL.register("io.l5d.successRate", SuccessRateConfig)
def success_rate(config: SuccessRateConfig | None = None) -> AccrualPolicy:
    config = config or SuccessRateConfig()
    return SuccessRatePolicy(
        config.success_rate, config.requests, make_backoff(config.backoff, DEFAULT_BACKOFF)
    )


@FAILURE_ACCRUAL.register("io.l5d.successRateWindowed", SuccessRateWindowedConfig)
def success_rate_windowed(config: SuccessRateWindowedConfig | None = None) -> AccrualPolicy:
    config = config or SuccessRateWindowedConfig()
    return SuccessRateWindowedPolicy(
        config.success_rate, config.window, make_backoff(config.backoff, DEFAULT_BACKOFF)
    )


@FAILURE_ACCRUAL.register("none", NoAccrualConfig)
def no_accrual(config: NoAccrualConfig | None = None) -> AccrualPolicy:
    return NoAccrualPolicy()
