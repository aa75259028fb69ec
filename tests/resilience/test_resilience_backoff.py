from __future__ import annotations

import itertools
import random

import pytest

from l5d_twisted.config.schema import PluginSpec
from l5d_twisted.registry import BACKOFFS
from l5d_twisted.resilience.backoff import (
    ConstantBackoffConfig,
    JitteredBackoffConfig,
    make_backoff,
)


def take(backoff, n: int, seed: int = 1) -> list[float]:  # type: ignore[no-untyped-def]
    return list(itertools.islice(backoff.delays(random.Random(seed)), n))


def test_constant() -> None:
    backoff = BACKOFFS.get("constant").factory(ConstantBackoffConfig(ms=250))
    assert take(backoff, 5) == [0.25] * 5


def test_constant_default_is_zero() -> None:
    backoff = BACKOFFS.get("constant").factory(ConstantBackoffConfig())
    assert take(backoff, 3) == [0.0, 0.0, 0.0]


def test_jittered_bounds_and_growth() -> None:
    backoff = BACKOFFS.get("jittered").factory(JitteredBackoffConfig(min_ms=100, max_ms=10000))
    delays = take(backoff, 200)
    assert delays[0] == 0.1
    assert all(0.1 <= d <= 10.0 for d in delays)
    # it grows: the later delays are, on average, far above the minimum
    assert sum(delays[50:]) / 150 > 1.0
    assert max(delays) == 10.0  # and reaches the cap


def test_jittered_each_stream_is_fresh_and_jitter_differs() -> None:
    backoff = BACKOFFS.get("jittered").factory(JitteredBackoffConfig(min_ms=100, max_ms=100000))
    rng = random.Random(7)
    a = list(itertools.islice(backoff.delays(rng), 6))
    b = list(itertools.islice(backoff.delays(rng), 6))
    assert a[0] == b[0] == 0.1
    assert a[1:] != b[1:]


def test_jittered_defaults_are_linkerds() -> None:
    backoff = BACKOFFS.get("jittered").factory(JitteredBackoffConfig())
    delays = take(backoff, 100)
    assert delays[0] == 5.0 and max(delays) <= 300.0


def test_jittered_rejects_max_below_min() -> None:
    with pytest.raises(ValueError, match="maxMs"):
        JitteredBackoffConfig(min_ms=10, max_ms=5)


def test_make_backoff_from_spec() -> None:
    default = BACKOFFS.get("constant").factory(ConstantBackoffConfig(ms=1))
    assert make_backoff(None, default) is default
    built = make_backoff(PluginSpec("constant", ConstantBackoffConfig(ms=30)), default)
    assert take(built, 1) == [0.03]
