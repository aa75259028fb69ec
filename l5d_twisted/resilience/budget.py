"""Retry budgets: retries may add at most a fixed fraction of load (Finagle's token bucket).

Every request deposits ``percent_can_retry`` of a token; every retry withdraws one whole
token.  On top of the deposits there is a constant reserve of ``min_retries_per_sec *
ttl_secs`` tokens, so a service with little traffic can still retry a little.  Deposits
and withdrawals both expire after ``ttl_secs`` (they are kept in a sliding window of ten
slices), so the reserve refills and old traffic stops paying for new retries.

With the defaults (10/s, 20 %, 10 s) a fully failing service sees at most 1.2x its offered
load plus 10 retries per second.

Tokens are counted in thousandths (integers) so that sums never drift.
"""

from __future__ import annotations

from typing import Any

_SCALE = 1000  # one retry == 1000 units
_SLICES = 10


class _BudgetPolicy:
    """A budget's settings and the units derived from them: immutable, one per distinct
    setting, shared by every budget built with it (issue 17: a route and a client have a
    budget each, and these were 3 slots and 2-3 number objects of each)."""

    __slots__ = (
        "min_retries_per_sec",
        "percent_can_retry",
        "ttl_secs",
        "deposit_units",
        "reserve_units",
        "slice_s",
    )

    def __init__(self, min_retries_per_sec: float, percent_can_retry: float, ttl_secs: float):
        self.min_retries_per_sec = min_retries_per_sec
        self.percent_can_retry = percent_can_retry
        self.ttl_secs = ttl_secs
        self.deposit_units = int(round(percent_can_retry * _SCALE))
        self.reserve_units = int(round(min_retries_per_sec * ttl_secs * _SCALE))
        self.slice_s = ttl_secs / _SLICES


_POLICIES: dict[tuple[float, float, float], _BudgetPolicy] = {}


class RetryBudget:
    """A windowed token bucket; ``deposit()`` per request, ``try_withdraw()`` per retry."""

    __slots__ = (
        "_clock",
        "_policy",
        "_deposit_units",
        "_slices",
        "_window_sum",
        "_current_until",
        # a weak reference lets the metrics tree hold the ``retries/budget`` gauge by its
        # owner: one registration object, gone with the budget (a route's or a client's)
        "__weakref__",
    )

    def __init__(
        self,
        min_retries_per_sec: float = 10,
        percent_can_retry: float = 0.2,
        ttl_secs: float = 10,
        clock: Any = None,
    ) -> None:
        if min_retries_per_sec < 0:
            raise ValueError(f"minRetriesPerSec must be >= 0, got {min_retries_per_sec}")
        if not 0 <= percent_can_retry <= 1000:
            raise ValueError(f"percentCanRetry must be within [0, 1000], got {percent_can_retry}")
        if not 1 <= ttl_secs <= 60:
            raise ValueError(f"ttlSecs must be within [1, 60], got {ttl_secs}")
        if clock is None:
            from twisted.internet import reactor as clock  # the real clock, outside tests
        self._clock = clock
        key = (min_retries_per_sec, percent_can_retry, ttl_secs)
        policy = _POLICIES.get(key)
        if policy is None:
            policy = _POLICIES[key] = _BudgetPolicy(*key)
        self._policy = policy
        # (also here: read on every request; the shared int, so no object of its own)
        self._deposit_units = policy.deposit_units
        # (slice number, units deposited minus withdrawn during that slice); a list, not a
        # deque: at most _SLICES entries, and an empty deque costs 600 bytes, a good part of
        # what each routed name held (issue 17: a route and a client have a budget each)
        # flat: [number, units, number, units, ...], oldest first (a list per slice was
        # two more blocks per budget)
        self._slices: list[int] = []
        self._window_sum = 0
        self._current_until = float("-inf")  # end of the newest slice (clock seconds)

    @property
    def min_retries_per_sec(self) -> float:
        return self._policy.min_retries_per_sec

    @property
    def percent_can_retry(self) -> float:
        return self._policy.percent_can_retry

    @property
    def ttl_secs(self) -> float:
        return self._policy.ttl_secs

    def _current_slice(self) -> None:
        """Make the newest slice the current one (dropping those out of the window)."""
        now = self._clock.seconds()
        if now < self._current_until:  # the common case: still in the newest slice
            return
        slice_s = self._policy.slice_s
        number = int(now // slice_s)
        self._current_until = (number + 1) * slice_s
        slices = self._slices
        oldest_kept = number - _SLICES + 1
        while slices and slices[0] < oldest_kept:
            self._window_sum -= slices[1]
            del slices[:2]
        if slices and slices[-2] == number:
            return
        slices.append(number)
        slices.append(0)

    def _add(self, units: int) -> None:
        self._current_slice()
        self._slices[-1] += units
        self._window_sum += units

    def deposit(self) -> None:
        """Record one request (earns ``percent_can_retry`` of a retry)."""
        if self._deposit_units:
            self._add(self._deposit_units)

    def try_withdraw(self) -> bool:
        """Take one retry from the budget if there is one."""
        self._current_slice()
        if self._window_sum + self._policy.reserve_units >= _SCALE:
            self._add(-_SCALE)
            return True
        return False

    def balance_gauge(self) -> float:
        """The ``retries/budget`` gauge's function (a bound method: no closure per name)."""
        return float(self.balance)

    @property
    def balance(self) -> int:
        """Whole retries available now (the ``retries/budget`` gauge)."""
        self._current_slice()
        return max(0, (self._window_sum + self._policy.reserve_units) // _SCALE)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(min_retries_per_sec={self.min_retries_per_sec}, "
            f"percent_can_retry={self.percent_can_retry}, ttl_secs={self.ttl_secs})"
        )
