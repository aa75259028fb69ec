"""Resilience: deciding what failed, and what to do about it.

* ``classifier`` (contract) and ``classifiers``: which outcomes are successes, failures,
  retryable failures (``service.responseClassifier``).
* ``backoff``: ``constant`` and ``jittered`` delay streams (retries, failure accrual).
* ``budget``: :class:`RetryBudget`, the token bucket bounding retries and requeues.
* ``retries``: :class:`RetryFilter` (service layer), ``requeues``: :class:`RequeueFilter`
  (client layer, connection failures only).
* ``timeouts``: :class:`TimeoutFilter` (``requestAttemptTimeoutMs``); ``deadline``:
  :class:`DeadlineFilter` (``totalTimeoutMs`` and ``l5d-ctx-deadline``).
* ``accrual`` and ``accrual_policies``: :class:`FailureAccrualService` and the
  ``client.failureAccrual`` kinds; ``fail_fast``: ``client.failFast``.
"""
