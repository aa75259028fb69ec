"""The contract response classifiers meet.

A classifier decides, for one request and its outcome (a ``Response`` or the exception it
failed with), whether it succeeded and whether a failure may be retried.  Stats count
success/failure by it, failure accrual feeds on it, retries act on it.  Registered
factory: ``factory(config) -> ResponseClassifier``.
"""

from __future__ import annotations

import enum
from typing import Protocol

from l5d_twisted.http.message import Request, Response


class ResponseClass(enum.Enum):
    SUCCESS = "success"
    RETRYABLE_FAILURE = "retryable_failure"
    NON_RETRYABLE_FAILURE = "non_retryable_failure"

    @property
    def is_success(self) -> bool:
        return self is ResponseClass.SUCCESS


class ResponseClassifier(Protocol):
    def classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass: ...
