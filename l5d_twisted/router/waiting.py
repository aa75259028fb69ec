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
    """``describe`` says what is awaited, for the timeout message: a function, or a
    ``(doing, what)`` pair read as ``f"{doing} {what.show()}"`` (a path or a name, shown
    only when a request times out: a routed name holds two of these; issue 17)."""

    __slots__ = ("_reactor", "timeout_s", "_describe", "_waiters")

    def __init__(
        self,
        reactor: Any,
        timeout_s: float,
        describe: Callable[[], str] | tuple[str, Any],
    ) -> None:
        self._reactor = reactor
        self.timeout_s = timeout_s
        self._describe = describe  # e.g. "binding /svc/hello", for the timeout message
        self._waiters: list[Deferred[None]] = _NONE  # a list of its own once one waits

    def wait_then(self, retry: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Call ``retry()`` once released, or fail with BindingTimeout after the timeout."""
        # a caller that gives up (client gone, deadline) takes its timer and place with it
        waiter: Deferred[None] = Deferred(lambda w: self._forget(w, timer))
        if self._waiters is _NONE:
            self._waiters = []
        self._waiters.append(waiter)
        timer = self._reactor.callLater(self.timeout_s, self._expire, waiter)

        def released(_: None) -> Deferred[Any]:
            if timer.active():
                timer.cancel()
            return retry()

        return waiter.addCallback(released)

    def release_all(self) -> None:
        waiters, self._waiters = self._waiters, _NONE
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
                BindingTimeout(f"Timed out after {self.timeout_s:g}s {self._description()}")
            )

    def _description(self) -> str:
        describe = self._describe
        if isinstance(describe, tuple):
            doing, what = describe
            return f"{doing} {what if isinstance(what, str) else what.show()}"
        return describe()


_NONE: list[Any] = []  # shared, never appended to: no waiters
