"""Rendering a large exposition without stalling the reactor.

A scrape of a mesh with thousands of service and client scopes means hundreds of
thousands of metrics to read and format: done in one go on the reactor thread it froze
the proxy for seconds (issue 10: 1.8 s with 3,000 scopes, 5.9 s with 5,000 services and
their clients).  So exposition is written as a generator of small *steps* (tens of
metrics read, or hundreds to a few thousand lines formatted, per step; well under a
millisecond each) and run by a Twisted
:class:`~twisted.internet.task.Cooperator`, which runs steps for one time slice
(:data:`SLICE_S`) and then gives the reactor back until its next turn: the proxy keeps
serving between slices, and a scrape's cost is spread instead of paid at once.

Steps alone are not enough: what a render keeps alive must be cheap for the garbage
collector (a full collection of the whole heap, triggered by hundreds of thousands of
surviving tuples, was itself a 1 s stall), and large things must be freed a piece at a
time (see :mod:`.prometheus` and :mod:`.metrics_json`).

Why not a thread: a snapshot consistent enough to render from would have to be copied on
the reactor thread (measured: ~120 ms for 5,000 services with their clients, over the
50 ms target before any rendering), and rendering in a thread still holds the GIL in 5 ms
switches, competing with the proxy for the one core it effectively has.  The exposition is
therefore not an instant snapshot (neither is prometheus-client's own): each metric is
read once, when its step comes.

``reactor_cooperator(reactor)`` is the production scheduler; tests pass a cooperator on a
``task.Clock`` that runs one step per ``clock.advance`` (:func:`stepping_cooperator`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Cooperator

from l5d_twisted import heap

T = TypeVar("T")

# Steps run back to back for this long, then the reactor gets a turn.
SLICE_S = 0.01


def reactor_cooperator(reactor: Any, slice_s: float = SLICE_S) -> Cooperator:
    """A cooperator that runs steps for ``slice_s`` of wall time per reactor turn."""

    def slice_over() -> Callable[[], bool]:
        end = time.monotonic() + slice_s
        return lambda: time.monotonic() >= end

    return Cooperator(
        terminationPredicateFactory=slice_over, scheduler=lambda call: reactor.callLater(0, call)
    )


def stepping_cooperator(clock: Any, turn_s: float = 1.0) -> Cooperator:
    """One step per ``clock.advance(turn_s)``: for deterministic tests on a ``task.Clock``."""
    return Cooperator(
        terminationPredicateFactory=lambda: lambda: True,
        scheduler=lambda call: clock.callLater(turn_s, call),
    )


def run_steps(
    cooperator: Cooperator, steps: Iterator[object], result: Callable[[], T]
) -> Deferred[T]:
    """Run ``steps`` on ``cooperator``; fire with ``result()`` when they are done.

    Cancelling the Deferred stops the steps (a scraper that went away).
    """
    task = cooperator.cooperate(steps)
    cancelled = []

    def cancel(_: Deferred[T]) -> None:
        cancelled.append(True)  # the Deferred then fails with CancelledError
        try:
            task.stop()
        except Exception:  # already finished or stopped
            pass

    done: Deferred[T] = Deferred(cancel)

    def finished(_: object) -> None:
        if not done.called:  # not cancelled meanwhile
            try:
                value = result()
            except Exception:
                done.errback()
            else:
                done.callback(value)

    def failed(failure: Any) -> None:
        if not done.called and not cancelled:
            done.errback(failure)

    task.whenDone().addCallbacks(finished, failed)
    return done


# A renderer not asked to render for this long drops its caches (the lines and pieces it
# reuses, ~8.6 KB per scope at 5,000 scopes: 40+ MB): the scraper went away (issue 17).
# Ten minutes is twenty missed scrapes at Prometheus' usual 30 s, and the metrics' own
# idle expiry default; the next render after it makes them again (one uncached render).
CACHE_IDLE_S = 600.0


class IdleForget:
    """Calls ``forget()`` once ``idle_s`` pass on ``reactor`` without a :meth:`touch`.

    One ``callLater`` at a time, made by the first touch after a forget and moved on at
    most once per ``idle_s`` (a render costs an assignment, not a timer).  ``forget``
    returns False when it could not drop anything now (a render in progress): checked
    again ``idle_s`` later.
    """

    def __init__(
        self, reactor: Any, forget: Callable[[], bool], idle_s: float = CACHE_IDLE_S
    ) -> None:
        self.reactor = reactor
        self.idle_s = idle_s
        self._forget = forget
        self._last = 0.0
        self._call: Any = None

    def touch(self) -> None:
        self._last = self.reactor.seconds()
        if self._call is None:
            self._call = self.reactor.callLater(self.idle_s, self._check)

    def _check(self) -> None:
        self._call = None
        left = self._last + self.idle_s - self.reactor.seconds()
        if left > 1e-6:
            self._call = self.reactor.callLater(left, self._check)
        elif not self._forget():
            self._call = self.reactor.callLater(self.idle_s, self._check)

    def stop(self) -> None:
        """No more checks (the server stopped); the next touch starts them again."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()


# Bytes handed to the transport per turn when writing a rendered body.
WRITE_CHUNK = 64 * 1024

# A body at least this large was a render that allocated and freed MBs (lines, pieces,
# chunks): once it is written, the C heap's free pages go back to the system.  Without
# it, names.py at 2,000 names (1,000 scopes, a 3.9 MB exposition scraped every 2 s while
# every name expired) left the malloc heap at 34 MB mapped with 13-16 MB free in holes
# that the next round of names touched again (RSS +10-12 % after a second round).
TRIM_AFTER_BYTES = 1 << 20


class PiecesProducer:
    """Writes a body made of pieces to a twisted.web request as the socket drains.

    A pull producer: the transport asks for more when its buffer is empty, and each turn
    writes about :data:`WRITE_CHUNK` bytes.  Handing a 20 MB body to ``request.write`` at
    once would have the transport join it into one string on the reactor thread.
    """

    def __init__(self, request: Any, pieces: list[bytes], chunk: int = WRITE_CHUNK) -> None:
        self.request = request
        self.pieces = pieces
        self.chunk = chunk
        self.size = 0
        self._next = 0
        self._stopped = False

    def start(self) -> None:
        self.size = sum(len(p) for p in self.pieces)
        self.request.setHeader(b"content-length", str(self.size).encode())
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self._stopped:
            return
        batch: list[bytes] = []
        size = 0
        pieces = self.pieces
        while self._next < len(pieces) and size < self.chunk:
            batch.append(pieces[self._next])
            size += len(pieces[self._next])
            self._next += 1
        if batch:
            self.request.write(b"".join(batch))
        if self._next >= len(pieces) and not self._stopped:
            self._stopped = True
            self.request.unregisterProducer()
            self.request.finish()
            self.pieces = []
            if self.size >= TRIM_AFTER_BYTES:
                heap.trim()  # ~2 ms for a 30 MB heap, against 50+ ms for such a render

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self._stopped = True  # the connection went away


def write_pieces(request: Any, pieces: list[bytes]) -> None:
    """Answer ``request`` with the concatenation of ``pieces`` (see :class:`PiecesProducer`)."""
    if request.finished or getattr(request, "_disconnected", False):
        return
    PiecesProducer(request, pieces).start()
