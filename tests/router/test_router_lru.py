"""The near-LRU eviction order the route and client caches share (router/lru.py), on a task.Clock."""

from __future__ import annotations

from typing import Any

from test_router_routing import CONFIG, Harness, cached, ok
from twisted.internet.task import Clock

from l5d_twisted.router.lru import SecondChanceQueue


class Entry:
    """A cache entry that notes its own last use, as BindingService and BoundClient do."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.last_used = clock.seconds()

    def use(self) -> None:
        self.last_used = self.clock.seconds()


class Cache:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        self.reads = 0
        self.queue: SecondChanceQueue[str] = SecondChanceQueue(self._last_used)

    def _last_used(self, key: str) -> float:
        self.reads += 1
        return self.entries[key].last_used

    def put(self, key: str) -> None:
        self.clock.advance(1)
        self.entries[key] = Entry(self.clock)
        self.queue.add(key)

    def use(self, key: str) -> None:
        self.clock.advance(1)
        self.entries[key].use()

    def evict(self) -> str | None:
        key = self.queue.pop_oldest()
        if key is not None:
            del self.entries[key]
        return key


def test_the_oldest_unused_key_goes_first() -> None:
    cache = Cache(Clock())
    for key in "abcd":
        cache.put(key)
    cache.use("a")
    cache.use("c")
    assert [cache.evict() for _ in range(4)] == ["b", "d", "a", "c"]
    assert cache.evict() is None and len(cache.queue) == 0


def test_a_key_used_since_it_was_queued_gets_a_second_chance_per_use() -> None:
    cache = Cache(Clock())
    for key in "abc":
        cache.put(key)
    cache.use("a")
    assert cache.evict() == "b"  # a went to the back with its new last use
    cache.use("c")
    assert cache.evict() == "a"  # a was not used again: its second chance is spent
    assert cache.evict() == "c"


def test_discarded_keys_leave_the_order() -> None:
    cache = Cache(Clock())
    for key in "abc":
        cache.put(key)
    cache.queue.discard("a")
    cache.queue.discard("zzz")  # not queued: nothing happens
    assert "a" not in cache.queue and "b" in cache.queue
    assert cache.evict() == "b"
    cache.queue.clear()
    assert cache.queue.pop_oldest() is None


def test_an_eviction_reads_each_key_at_most_once_per_use() -> None:
    """Amortised O(1): never a scan of every key per eviction."""
    cache = Cache(Clock())
    for i in range(1000):
        cache.put(f"k{i}")
    for i in range(0, 1000, 2):
        cache.use(f"k{i}")
    cache.reads = 0
    evicted = []
    for i in range(200):
        evicted.append(cache.evict())
        cache.put(f"new{i}")
    # 500 keys used once each move back once; each eviction reads its victim once.
    assert cache.reads <= 500 + 200, cache.reads
    assert evicted[:200] == [f"k{i}" for i in range(1, 400, 2)], (
        "the unused ones go first, oldest first"
    )


class _CountingDict(dict[Any, Any]):
    lookups = 0

    def __getitem__(self, key: Any) -> Any:
        _CountingDict.lookups += 1
        return super().__getitem__(key)


def test_a_new_bound_name_in_a_full_client_cache_evicts_without_scanning_every_client() -> None:
    # The client cache found the least recently used client by a min() over all of them
    # (up to 1,000) per new bound name: a scan per request under a flood of new names.
    h = Harness(cached(CONFIG, clients=300))
    for i in range(400):
        h.namer.set(f"n{i}", f"127.0.0.1:{2000 + i}")
    for i in range(300):
        h.clock.advance(1)
        ok(h.call(f"n{i}"))
    for i in range(0, 300, 2):  # used again: these stay, the others go first
        h.clock.advance(1)
        ok(h.call(f"n{i}"))
    counting = _CountingDict(h.router._clients)
    h.router._clients = counting
    _CountingDict.lookups = 0
    for i in range(300, 400):
        h.clock.advance(1)
        ok(h.call(f"n{i}"))
    assert _CountingDict.lookups <= 100 * 3 + 300, _CountingDict.lookups  # was 300 per new name
    kept = set(h.router.client_state())
    assert len(kept) == 300
    assert all(f"/#/mem/n{i}" in kept for i in range(0, 200, 2)), "recently used clients are kept"
    assert not any(f"/#/mem/n{i}" in kept for i in range(1, 200, 2)), "unused ones went first"


def test_the_use_that_made_an_entry_is_not_a_reuse() -> None:
    """On a real clock the request that made an entry reads the time again microseconds
    after it was queued: that is no second chance, else the first eviction from a full
    cache moved every key."""
    clock = Clock()
    entries: dict[str, float] = {}
    queue: SecondChanceQueue[str] = SecondChanceQueue(entries.__getitem__, first_use_s=0.1)
    for i in range(1000):
        clock.advance(1)
        entries[f"k{i}"] = clock.seconds()
        queue.add(f"k{i}")
        entries[f"k{i}"] = clock.seconds() + 0.000_05  # its own request, just after
    assert [queue.pop_oldest() for _ in range(3)] == ["k0", "k1", "k2"]  # no key moved
    assert len(queue) == 997
    entries["k3"] = clock.seconds()  # a real reuse, later
    assert queue.pop_oldest() == "k4"  # k3 went to the back


def test_one_eviction_moves_a_bounded_number_of_keys() -> None:
    """Every key used since it was queued: the eviction still looks at max_moves + 1 keys,
    not at all of them, and takes the next oldest."""
    clock = Clock()
    entries: dict[str, float] = {}
    reads = []

    def last_used(key: str) -> float:
        reads.append(key)
        return entries[key]

    queue: SecondChanceQueue[str] = SecondChanceQueue(last_used, max_moves=32)
    for i in range(10_000):
        entries[f"k{i}"] = clock.seconds()
        queue.add(f"k{i}")
    clock.advance(5)
    for key in entries:
        entries[key] = clock.seconds()  # every one used again
    reads.clear()
    assert queue.pop_oldest() == "k32"
    assert len(reads) == 33
    assert len(queue) == 9_999
    # the 32 moved went to the back: the next eviction starts after them
    reads.clear()
    assert queue.pop_oldest() == "k65"
    assert len(reads) == 33
