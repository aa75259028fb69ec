"""``admin.workerThreads``: how many admin renders are worked on at once.

linkerd 1 served its admin interface on its own pool of ``workerThreads`` threads
(default 2), apart from the routers': however many admin requests came in, at most that
many were being worked on at once, so the admin's share of the process stayed bounded.
l5d-twisted serves the admin on the reactor thread that also routes, so a thread count
cannot mean anything here; what the key bounded can.  The admin work that costs is the
*renders*, made in small steps on a cooperator (``/admin/metrics.json``, the Prometheus
text and telemeter expositions: hundreds of thousands of metrics on a large mesh, and
the buffers they fill): at most ``workerThreads`` of them are in progress at once, the
next ones wait their turn in arrival order (a client that goes away while waiting leaves
the queue), and past :data:`MAX_WAITING` waiting ones a render is refused with a 503
rather than queued without end.  Cheap endpoints (``/admin/ping``, ``/ready``, the
pages and the small JSON documents) are answered at once, as before, so the probes never
wait behind a scrape.  A slot is freed when its render is done, before the body is
written out, so a slow reader does not hold one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore

from l5d_twisted.admin.http_error import HttpError

T = TypeVar("T")

DEFAULT_WORKER_THREADS = 2  # linkerd 1's default
MAX_WAITING = 100  # renders queued behind the running ones; more get a 503


class RenderSlots:
    """At most ``slots`` renders at once; up to ``max_waiting`` more wait in order."""

    def __init__(self, slots: int, max_waiting: int = MAX_WAITING) -> None:
        self._semaphore = DeferredSemaphore(slots)
        self.max_waiting = max_waiting

    @property
    def slots(self) -> int:
        return int(self._semaphore.limit)

    @property
    def running(self) -> int:
        return int(self._semaphore.limit - self._semaphore.tokens)

    @property
    def waiting(self) -> int:
        return len(self._semaphore.waiting)

    def run(self, start: Callable[[], Deferred[T]]) -> Deferred[T]:
        """``start()`` now if a slot is free, else once one is; its slot is freed when
        its Deferred fires.  Cancelling the result while it waits takes it out of the
        queue; once started, cancelling it cancels the render.  Raises
        :class:`HttpError` 503 when the queue is full."""
        if self._semaphore.tokens == 0 and self.waiting >= self.max_waiting:
            raise HttpError(
                503,
                f"admin server busy: {self.running} renders in progress and {self.waiting}"
                f" waiting (admin.workerThreads: {self.slots}); retry later\n",
            )
        return self._semaphore.run(start)
