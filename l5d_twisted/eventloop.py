"""The reactor ``l5d-twisted run`` runs on: Twisted's epoll reactor, one wrapper lighter.

Twisted's ``EPollReactor.doPoll`` dispatches every ready socket through
``twisted.python.log.callWithLogger``, which builds a legacy log context (the
``system`` prefix of ``twisted.python.log`` messages) around the read or write: context
dicts and four Python frames per event, 2-4 us here, and a proxied request is at least
two read events (the client's request, the backend's response). l5d-twisted's logs come
from ``twisted.logger`` and never show that prefix (``logs._SKIP``), so the installed
reactor's poll calls ``_doReadOrWrite`` directly; that method still catches and logs
whatever a read or write raises, as before.

:func:`install` installs it where epoll exists (Linux) and no reactor is installed yet;
anywhere else Twisted's default stays.  ``L5D_REACTOR=twisted`` keeps Twisted's own
everywhere (to compare, or should a Twisted upgrade change ``doPoll``).
"""

from __future__ import annotations

import errno
import os
import sys
from functools import partial
from typing import Any


def lean_do_poll(reactor: Any, timeout: float | None) -> None:
    """``EPollReactor.doPoll`` without ``log.callWithLogger`` around each event."""
    if timeout is None:
        timeout = -1  # wait indefinitely
    selectables = reactor._selectables
    try:
        # (as Twisted: at most one event per tracked descriptor)
        events = reactor._poller.poll(timeout, len(selectables))
    except OSError as err:
        if err.errno == errno.EINTR:
            return
        raise
    do_read_or_write = reactor._doReadOrWrite
    for fd, event in events:
        selectable = selectables.get(fd)
        if selectable is not None:
            do_read_or_write(selectable, fd, event)


def install() -> bool:
    """Install the lean epoll reactor if possible; True if it is now the reactor."""
    if os.environ.get("L5D_REACTOR") == "twisted" or "twisted.internet.reactor" in sys.modules:
        return False  # asked not to, or a reactor is installed already: leave it
    try:
        from twisted.internet import epollreactor
    except ImportError:  # no epoll (not Linux)
        return False
    from twisted.internet import main

    reactor_class: Any = epollreactor.EPollReactor
    reactor: Any = reactor_class()
    # (the loop calls doIteration; Twisted's class makes it an alias of doPoll)
    reactor.doPoll = reactor.doIteration = partial(lean_do_poll, reactor)
    install_reactor: Any = main.installReactor
    install_reactor(reactor)
    return True
