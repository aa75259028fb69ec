"""Jittered exponential backoff for reconnecting to the Kubernetes API.

"Full jitter" (a random delay between ``base`` and the current ceiling) spreads the
reconnects of every mesh pod in a cluster after an API server restart, instead of having
them all retry in lockstep.
"""

from __future__ import annotations

import random


class JitteredBackoff:
    def __init__(
        self, rng: random.Random, base_s: float = 0.2, max_s: float = 30.0, factor: float = 2.0
    ) -> None:
        if not 0 < base_s <= max_s:
            raise ValueError("backoff needs 0 < base_s <= max_s")
        self._rng = rng
        self.base_s = base_s
        self.max_s = max_s
        self.factor = factor
        self._ceiling = base_s

    def next_delay(self) -> float:
        """The delay before the next attempt; each call raises the ceiling."""
        delay = self._rng.uniform(self.base_s, self._ceiling)
        self._ceiling = min(self.max_s, self._ceiling * self.factor)
        return delay

    def reset(self) -> None:
        """After a success: the next failure retries quickly again."""
        self._ceiling = self.base_s
