"""The timeout policy of a server connection: header read, idle, request body pace.

:class:`ConnectionTimeouts` keeps the times a connection's timeouts are measured from and
its one timer, and says what is overdue; the connection decides what to do about it
(``http.server``).  The rules:

* a request head not received within ``header_read_timeout_s`` of its first byte: 408;
* a request body with no byte for ``body_idle_timeout_s`` while it is being read, or
  slower on average than ``min_body_bytes_per_s`` once ``BODY_RATE_GRACE_S`` have passed:
  the body timed out.  The pace is measured from the last time we resumed reading (time
  the connection was paused by us is not the client's);
* a connection with nothing in flight idle for ``idle_timeout_s``: closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BODY_CHECK_INTERVAL_S = 1.0  # how often a connection reading a request body checks its pace
BODY_RATE_GRACE_S = 5.0  # the minimum body rate applies after this long (Kestrel's default grace)


def _ignore() -> None:
    """A closed connection's timer callback."""


class ConnectionTimeouts:
    """The timer and reference times of one connection (see the module doc)."""

    __slots__ = (
        "reactor",
        "seconds",
        "on_timer",
        "header_read_timeout_s",
        "idle_timeout_s",
        "body_idle_timeout_s",
        "min_body_bytes_per_s",
        "timer",
        "last_activity",
        "head_started",
        "body_window_start",
        "body_window_bytes",
    )

    def __init__(
        self,
        reactor: Any,
        on_timer: Callable[[], None],
        header_read_timeout_s: float,
        idle_timeout_s: float,
        body_idle_timeout_s: float,
        min_body_bytes_per_s: int,
    ) -> None:
        self.reactor = reactor
        self.seconds: Callable[[], float] = reactor.seconds
        self.on_timer = on_timer
        self.header_read_timeout_s = header_read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.body_idle_timeout_s = body_idle_timeout_s
        self.min_body_bytes_per_s = min_body_bytes_per_s
        self.timer: Any = None
        self.last_activity = 0.0  # the last read, or the end of the last response
        self.head_started = 0.0  # the read in which the request head being read began
        self.body_window_start = 0.0  # the request body's pace is measured from here
        self.body_window_bytes = 0  # body bytes read on the connection at that time

    def start(self) -> None:
        """The connection opened: its first request head is due."""
        self.last_activity = self.seconds()
        self.schedule(min(self.idle_timeout_s, self.header_read_timeout_s))

    def schedule(self, delay: float) -> None:
        self.timer = self.reactor.callLater(max(delay, 0.001), self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.on_timer()

    def cancel(self) -> None:
        timer = self.timer
        self.timer = None
        if timer is not None and timer.active():
            timer.cancel()

    def close(self) -> None:
        """The connection is gone: cancel the timer and drop the connection's callback
        (it holds the connection, which holds this: a reference cycle otherwise)."""
        self.cancel()
        self.on_timer = _ignore

    def restart_body_clock(self, body_bytes: int) -> None:
        """A request body is (again) being read: its pace starts over from now."""
        now = self.seconds()
        self.last_activity = now
        self.body_window_start = now
        self.body_window_bytes = body_bytes
        timer = self.timer
        if timer is not None and timer.getTime() > now + BODY_CHECK_INTERVAL_S:
            timer.cancel()
            self.schedule(BODY_CHECK_INTERVAL_S)

    def head_time_left(self, now: float) -> float:
        """Seconds until the request head being read is overdue (<= 0: it is)."""
        return self.header_read_timeout_s - (now - self.head_started)

    def idle_time_left(self, now: float) -> float:
        """Seconds until the connection has been idle too long (<= 0: it has)."""
        return self.idle_timeout_s - (now - self.last_activity)

    def body_too_slow(self, now: float, body_bytes: int) -> str | None:
        """Why the request body being read timed out (it stalled or trickles), or None."""
        if now - self.last_activity >= self.body_idle_timeout_s:
            return f"no request body data for {self.body_idle_timeout_s:g} s"
        elapsed = now - self.body_window_start
        rate = self.min_body_bytes_per_s
        if (
            not rate
            or elapsed < BODY_RATE_GRACE_S
            or body_bytes - self.body_window_bytes >= rate * elapsed
        ):
            return None
        return f"request body slower than {rate} bytes/s"
