"""``?watch=true``: a response that sends one line per change of a live value.

:class:`WatchStream` observes a ``Var`` of rendered lines and writes each new line to a
chunked response.  It is the response's producer: while the client does not read (the
transport paused it), only the latest line is kept, to be sent when it resumes.  A client
that reads slowly sees fewer intermediate values, never an unbounded buffer (namerd's
watches likewise deliver changes, not a log).  The observation ends when the client goes
away, so nothing stays watched for a client that is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from l5d_twisted.naming.var import Closable, Var

log = Logger()


@implementer(IPushProducer)
class WatchStream:
    def __init__(
        self, request: Any, lines: Var[bytes | None], on_end: Callable[[], None] = lambda: None
    ) -> None:
        self._request = request
        self._on_end = on_end
        self._paused = False
        self._pending: bytes | None = None
        self._last: bytes | None = None
        self._ended = False
        self._handle: Closable | None = None
        request.registerProducer(self, True)
        request.write(b"")  # the status line and headers now, before any change
        request.notifyFinish().addBoth(self._finished)
        try:
            self._handle = lines.observe(self._on_line)
        except Exception:
            log.failure("a watch could not start")
            self.end()
            raise
        if self._ended:  # the client went away while the first value was written
            self._handle.close()

    def _on_line(self, line: bytes | None) -> None:
        if line is None or line == self._last or self._ended:
            return
        self._last = line
        if self._paused:
            self._pending = line
            return
        self._write(line)

    # IPushProducer
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        line, self._pending = self._pending, None
        if line is not None and not self._ended:
            self._write(line)

    def _write(self, line: bytes) -> None:
        # called from inside a change (a dtab write): a response that cannot take it any
        # more ends this watch, never the write that caused the change
        try:
            self._request.write(line)
        except Exception:
            self.end()

    def stopProducing(self) -> None:
        self.end()

    def _finished(self, _: Any) -> None:
        self.end()

    def end(self) -> None:
        """Stop watching (the client went away, or the server stops)."""
        if self._ended:
            return
        self._ended = True
        self._pending = None
        if self._handle is not None:
            self._handle.close()
        self._on_end()
