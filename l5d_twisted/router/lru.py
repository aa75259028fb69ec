"""Eviction order for a bounded cache whose entries note their own last use, in O(1).

The router's route and client caches hold up to 10,000 entries each (``bindingCache``),
and names come from request data: a flood of new names means an eviction per request.
Finding the least recently used entry by a ``min()`` over all of them cost a scan per new
name (the mixed attack of issue 10 measured stalls of hundreds of ms once a GC pause
queued some up).

:class:`SecondChanceQueue` gives the near-LRU order of the CLOCK algorithm instead: keys
are queued with their last use when queued; the oldest queued key not used since is the
one to evict, and one used since goes to the back of the queue with its new last use (its
second chance).  Each key moves back at most once per use, so an eviction costs O(1)
amortised.  Entries keep recording their own use (one attribute write on the request
path); the queue reads it through ``last_used(key)`` only when it looks at a key.

Two rules bound the work of each single eviction, not only the average:

* a use within ``first_use_s`` of the key being queued is the request that made the entry
  (the router queues a route or client, then sends the request that asked for it), not a
  reuse.  Counted as one on a real clock (the two readings of the time differ by
  microseconds), it gave every entry a second chance: the first eviction from a full
  cache of 10,000 moved all 10,000 keys, in the route and in the client cache (18.9 ms
  of the reactor for the two under cProfile; bench/README.md "Sixth pass"); a cache that
  new names fill now moves no key at all;
* one eviction moves at most ``max_moves`` keys back: when more of the oldest were all
  used since, the next oldest goes although it was used (every candidate is then about
  as recent as the others, and the cache is busier than its size).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class SecondChanceQueue(Generic[K]):
    def __init__(
        self,
        last_used: Callable[[K], float],
        first_use_s: float = 0.0,
        max_moves: int = 32,
    ) -> None:
        self._last_used = last_used
        self._first_use_s = first_use_s
        self._max_moves = max_moves
        self._queue: OrderedDict[K, float] = OrderedDict()  # key -> its last use when queued

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, key: object) -> bool:
        return key in self._queue

    def add(self, key: K) -> None:
        """Queue ``key`` (a new entry) at the back."""
        self._queue[key] = self._last_used(key)

    def discard(self, key: K) -> None:
        self._queue.pop(key, None)

    def clear(self) -> None:
        self._queue.clear()

    def pop_oldest(self) -> K | None:
        """Take out and return the key to evict (``None`` when the queue is empty)."""
        queue = self._queue
        moves = self._max_moves
        while queue:
            key, queued_at = queue.popitem(last=False)
            used = self._last_used(key)
            if used > queued_at + self._first_use_s and moves:
                # used since it was queued: to the back, once
                queue[key] = used
                moves -= 1
                continue
            return key
        return None
