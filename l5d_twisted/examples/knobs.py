"""The sample apps' fault-injection knobs: added latency and a failure rate.

Set from the command line and changed at run time with ``POST /setLatency`` (body: ms)
and ``POST /setFailureRate`` (body: a fraction 0..1).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


class KnobError(ValueError):
    """A knob value that cannot be used; the message says what is expected."""


def parse_latency_ms(text: str | bytes) -> float:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        value = float(raw.strip())
    except ValueError:
        raise KnobError(f"latency must be a number of milliseconds, got {raw.strip()!r}") from None
    if not math.isfinite(value) or value < 0 or value > 3_600_000:
        raise KnobError(f"latency must be between 0 and 3600000 ms, got {raw.strip()}")
    return value


def parse_failure_rate(text: str | bytes) -> float:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        value = float(raw.strip())
    except ValueError:
        raise KnobError(
            f"failure rate must be a number between 0 and 1, got {raw.strip()!r}"
        ) from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise KnobError(f"failure rate must be between 0 and 1, got {raw.strip()}")
    return value


@dataclass
class Knobs:
    latency_ms: float = 0.0
    failure_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def should_fail(self) -> bool:
        rate = self.failure_rate
        return rate > 0.0 and (rate >= 1.0 or self.rng.random() < rate)

    @property
    def delay_s(self) -> float:
        return self.latency_ms / 1000.0
