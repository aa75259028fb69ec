"""Backoffs: how long to wait between retries, or how long failure accrual keeps an
endpoint dead (``backoff: {kind: constant, ms}`` / ``{kind: jittered, minMs, maxMs}``).

A :class:`Backoff` is a recipe; ``backoff.delays(rng)`` starts a fresh, endless stream of
delays in seconds, so every retried request (or every endpoint) walks its own stream.

``jittered`` is *decorrelated jitter* (as in Finagle's ``Backoff.decorrelatedJittered``
and the AWS architecture blog): the first delay is ``minMs``; each next delay is drawn
uniformly from ``[minMs, 3 * previous]`` and capped at ``maxMs``.  Delays grow roughly
exponentially on average while two clients that failed together spread apart at once.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from l5d_twisted.config.schema import knob
from l5d_twisted.registry import BACKOFFS


class Backoff(Protocol):
    def delays(self, rng: random.Random) -> Iterator[float]:
        """A fresh endless stream of delays in seconds."""
        ...


class ConstantBackoff:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"backoff must not be negative, got {seconds}")
        self.seconds = seconds

    def delays(self, rng: random.Random) -> Iterator[float]:
        return itertools.repeat(self.seconds)

    def __repr__(self) -> str:
        return f"ConstantBackoff({self.seconds}s)"


class DecorrelatedJitterBackoff:
    __slots__ = ("min_s", "max_s")

    def __init__(self, min_s: float, max_s: float) -> None:
        if min_s < 0 or max_s < min_s:
            raise ValueError(f"jittered backoff needs 0 <= min <= max, got min={min_s} max={max_s}")
        self.min_s = min_s
        self.max_s = max_s

    def delays(self, rng: random.Random) -> Iterator[float]:
        lo, hi = self.min_s, self.max_s
        delay = lo
        while True:
            yield delay
            delay = min(hi, rng.uniform(lo, max(lo, delay * 3)))

    def __repr__(self) -> str:
        return f"DecorrelatedJitterBackoff({self.min_s}s..{self.max_s}s)"


@dataclass(frozen=True)
class ConstantBackoffConfig:
    ms: int = knob(0, minimum=0, doc="the delay, in milliseconds")


@dataclass(frozen=True)
class JitteredBackoffConfig:
    min_ms: int = knob(5000, minimum=0, doc="the first and smallest delay, in milliseconds")
    max_ms: int = knob(300000, minimum=0, doc="the largest delay, in milliseconds")

    def __post_init__(self) -> None:
        if self.max_ms < self.min_ms:
            raise ValueError(f"maxMs ({self.max_ms}) must not be less than minMs ({self.min_ms})")


# A backoff is an immutable recipe: one per configuration, shared by every route and
# endpoint built from it (one each was an object and its floats, 64-96 bytes per name and
# per endpoint; issue 17).  Keyed by the (frozen) configuration: one entry per distinct one.
_SHARED: dict[object, Backoff] = {}


@BACKOFFS.register("constant", ConstantBackoffConfig)
def constant_backoff(config: ConstantBackoffConfig | None = None) -> Backoff:
    config = config or ConstantBackoffConfig()
    backoff = _SHARED.get(config)
    if backoff is None:
        backoff = _SHARED[config] = ConstantBackoff(config.ms / 1000.0)
    return backoff


@BACKOFFS.register("jittered", JitteredBackoffConfig)
def jittered_backoff(config: JitteredBackoffConfig | None = None) -> Backoff:
    config = config or JitteredBackoffConfig()
    backoff = _SHARED.get(config)
    if backoff is None:
        backoff = _SHARED[config] = DecorrelatedJitterBackoff(
            config.min_ms / 1000.0, config.max_ms / 1000.0
        )
    return backoff


def make_backoff(spec: object | None, default: Backoff) -> Backoff:
    """Build a backoff from a ``PluginSpec`` (or ``None`` -> ``default``)."""
    if spec is None:
        return default
    kind = getattr(spec, "kind", None)
    if kind is None:
        raise ValueError(f"not a backoff spec: {spec!r}")
    plugin = BACKOFFS.get(kind)
    backoff: Backoff = plugin.factory(getattr(spec, "config", None))
    return backoff
