"""When to look at a cached layer again for idle expiry, so the sweep visits only those due.

The router's idle sweep used to walk every route and client every ``TTL/10``: at 10,000
names 20,000 checks and a 25-50 ms stall per sweep (every 3 s with a 30 s TTL, ~1 % of a
core while idle), however few names were about to expire.  :class:`ExpiryWheel` files each
key under the time it could first expire (its last use + TTL), in buckets of the sweep
interval; a sweep takes only the buckets that have come, and a key used since is filed
again under its new time.  A key in use is looked at about once per TTL, an idle one once.

Keys are filed when their layer is made and after each look; a key evicted by the cache
bound and made again is filed anew, and its earlier filing is skipped when its bucket comes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ExpiryWheel(Generic[K]):
    __slots__ = ("granularity_s", "origin_s", "_buckets", "_filed")

    def __init__(self, granularity_s: float, origin_s: float = 0.0) -> None:
        """Buckets of ``granularity_s`` from ``origin_s``: with the sweep's interval and
        start time, a key is taken by the first sweep at or after its due time."""
        self.granularity_s = granularity_s
        self.origin_s = origin_s
        self._buckets: dict[int, list[K]] = {}
        # key -> the list of its bucket (shared by the bucket's keys: no int per key); a key
        # found in another bucket's list was filed again since (a stale filing)
        self._filed: dict[K, list[K]] = {}

    def __len__(self) -> int:
        return len(self._filed)

    def file(self, key: K, due_s: float) -> None:
        """Look at ``key`` again at the first sweep at or after ``due_s``."""
        bucket = math.ceil((due_s - self.origin_s) / self.granularity_s - 1e-9)
        keys = self._buckets.get(bucket)
        if keys is None:
            keys = self._buckets[bucket] = []
        keys.append(key)
        self._filed[key] = keys

    def take_due(self, now_s: float) -> list[K]:
        """The keys due by ``now_s``, no longer filed (file them again to keep them)."""
        last = math.floor((now_s - self.origin_s) / self.granularity_s + 1e-9)
        due = sorted(b for b in self._buckets if b <= last)
        out: list[K] = []
        filed = self._filed
        for bucket in due:
            keys = self._buckets.pop(bucket)
            for key in keys:
                if filed.get(key) is keys:
                    del filed[key]
                    out.append(key)
        return out

    def discard(self, key: K) -> None:
        self._filed.pop(key, None)  # (its bucket entry is skipped when it comes)

    def clear(self) -> None:
        self._buckets.clear()
        self._filed.clear()
