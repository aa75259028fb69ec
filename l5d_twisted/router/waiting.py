"""Requests held until a binding settles, each for at most the binding timeout.

Both the service layer (the name's tree is still pending) and the client layer (the bound
name's addresses are still pending) hold requests this way: the first discovery answer
releases them all, and a request that waited ``bindingTimeoutMs`` fails with
``BindingTimeout`` instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from l5d_twisted.errors import BindingTimeout


class BindingWaiters:
    def __init__(self, reactor: Any, timeout_s: float, describe: Callable[[], str]) -> None:
        self._reactor = reactor
        self.timeout_s = timeout_s
        self._describe = describe  # e.g. "binding /svc/hello", for the timeout message
        self._waiters: list[Deferred[None]] = []

    def wait_then(self, retry: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Call ``retry()`` once released, or fail with BindingTimeout after the timeout."""
        # a caller that gives up (client gone, deadline) takes its timer and place with it
        waiter: Deferred[None] = Deferred(lambda w: self._forget(w, timer))
        self._waiters.append(waiter)
        timer = self._reactor.callLater(self.timeout_s, self._expire, waiter)

        def released(_: None) -> Deferred[Any]:
            if timer.active():
                timer.cancel()
            return retry()

        return waiter.addCallback(released)

    def release_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _forget(self, waiter: Deferred[None], timer: Any) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if timer.active():
            timer.cancel()

    def _expire(self, waiter: Deferred[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            waiter.errback(
                BindingTimeout(f"Timed out after {self.timeout_s:g}s {self._describe()}")
            )
