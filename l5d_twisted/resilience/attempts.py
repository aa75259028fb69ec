"""One request's repeated attempts, shared by retries and requeues.

:class:`AttemptLoop` sends attempts one after another and hands each outcome to its
subclass, which either asks for another attempt (``_send_again``) or settles ``result``
(``_settle``).  An attempt that fails synchronously and asks for another loops here instead
of recursing: a dead endpoint can fail hundreds of attempts within one call stack.
Cancelling ``result`` cancels the attempt in flight; an outcome arriving after that is
dropped (a response body discarded, so its upstream connection is not left paused).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from l5d_twisted.http.message import Response
from l5d_twisted.service import Service


class AttemptLoop:
    __slots__ = ("service", "result", "current", "_in_send", "_again", "_cancelled")

    def __init__(self, service: Service[Any, Any]) -> None:
        self.service = service
        self.result: Deferred[Any] = Deferred(self._cancel)
        self.current: Deferred[Any] | None = None
        self._in_send = False
        self._again = False
        self._cancelled = False

    # -- for subclasses --------------------------------------------------------------

    def _next_request(self) -> Any:
        """The request the next attempt sends."""
        raise NotImplementedError

    def _on_outcome(self, outcome: Any) -> None:
        """An attempt's outcome (a response or a Failure): ``_send_again`` or ``_settle``."""
        raise NotImplementedError

    def _send_again(self) -> None:
        if self._in_send:
            self._again = True  # the attempt failed synchronously: the loop below sends
            return
        while True:
            self._again = False
            self._in_send = True
            try:
                d = self.service(self._next_request())
            except Exception as e:
                d = fail(e)
            self.current = d
            d.addBoth(self._outcome)
            self._in_send = False
            if not self._again:
                return

    def _settle(self, outcome: Any) -> None:
        if isinstance(outcome, Failure):
            self.result.errback(outcome)
        else:
            self.result.callback(outcome)

    def _cancel(self, _: Deferred[Any]) -> None:
        self._cancelled = True
        current = self.current
        if current is not None:
            current.cancel()

    # -- internals -------------------------------------------------------------------

    def _outcome(self, outcome: Any) -> None:
        self.current = None
        if self._cancelled:
            discard(outcome)
            return None
        self._on_outcome(outcome)
        return None


def discard(outcome: Any) -> None:
    """Drop an outcome nobody will read: a response's body is told so."""
    if isinstance(outcome, Response):
        outcome.body.discard()
