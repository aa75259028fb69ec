from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from l5d_twisted.resilience.budget import RetryBudget


def withdraw_all(budget: RetryBudget, limit: int = 100000) -> int:
    n = 0
    while n < limit and budget.try_withdraw():
        n += 1
    return n


def test_reserve_is_min_retries_per_sec_times_ttl() -> None:
    budget = RetryBudget(min_retries_per_sec=5, percent_can_retry=0.0, ttl_secs=2, clock=Clock())
    assert budget.balance == 10
    assert withdraw_all(budget) == 10
    assert budget.balance == 0


def test_deposits_earn_percent() -> None:
    budget = RetryBudget(min_retries_per_sec=0, percent_can_retry=0.2, ttl_secs=10, clock=Clock())
    for _ in range(100):
        budget.deposit()
    assert budget.balance == 20
    assert withdraw_all(budget) == 20


def test_withdrawals_and_deposits_expire_after_ttl() -> None:
    clock = Clock()
    budget = RetryBudget(min_retries_per_sec=1, percent_can_retry=0.5, ttl_secs=10, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert withdraw_all(budget) == 15  # 10 reserve + 5 earned
    clock.advance(5)
    assert not budget.try_withdraw()
    clock.advance(5.01)  # everything from t=0 has expired: the reserve is whole again
    assert budget.balance == 10


def test_sustained_failure_bounded_to_percent_plus_min() -> None:
    """A fully failing service: retries per second <= percent * rps + minRetriesPerSec."""
    clock = Clock()
    budget = RetryBudget(min_retries_per_sec=10, percent_can_retry=0.2, ttl_secs=10, clock=clock)
    retries = 0
    seconds = 60
    for _ in range(seconds * 100):  # 100 requests/s
        budget.deposit()
        if budget.try_withdraw():
            retries += 1
        clock.advance(0.01)
    # over the long run: 20/s earned + the 100-token reserve refilled once per ttl
    assert retries <= seconds * (0.2 * 100 + 10) + 100
    assert retries >= seconds * 0.2 * 100


def test_zero_budget() -> None:
    budget = RetryBudget(min_retries_per_sec=0, percent_can_retry=0, ttl_secs=10, clock=Clock())
    budget.deposit()
    assert not budget.try_withdraw()
    assert budget.balance == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_retries_per_sec": -1},
        {"percent_can_retry": -0.1},
        {"percent_can_retry": 1001},
        {"ttl_secs": 0},
        {"ttl_secs": 61},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryBudget(clock=Clock(), **kwargs)
