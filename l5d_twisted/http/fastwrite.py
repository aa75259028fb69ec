"""Writing to a TCP transport without waiting for the next reactor turn.

Twisted's ``transport.write`` only queues: the bytes go out when the reactor next polls
the socket as writable, which costs two ``epoll_ctl`` calls and a poll cycle per write.
For a proxy answering small requests that doubles the per-request syscalls.  When the
transport has nothing queued, :func:`direct_writer` sends straight away with one
``send()`` and queues only what the kernel did not take, so ordering, backpressure
(``registerProducer``) and error handling stay Twisted's.  Any transport that is not a
plain TCP connection (TLS, tests' ``StringTransport``) just gets ``transport.write``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet import tcp

_PLAIN_TCP = (tcp.Server, tcp.Client)


def is_plain_tcp(transport: Any) -> bool:
    """True if :func:`direct_write` may write to ``transport`` (else: ``transport.write``)."""
    return type(transport) in _PLAIN_TCP and not getattr(transport, "TLS", False)


def direct_write(t: Any, data: bytes) -> None:
    """Send ``data`` at once if ``t`` (a plain TCP transport) has nothing queued, queue
    what the kernel did not take; otherwise Twisted's ``write``.  A pooled upstream
    connection calls it with its transport (it keeps no writer of its own: a closure per
    connection was ~450 bytes, i.e. per name; issue 17)."""
    if (
        t._tempDataLen
        or t.offset != len(t.dataBuffer)
        or not t.connected
        or t.disconnecting
        or t.TLS
    ):
        t.write(data)
        return
    try:
        sent = t.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        t.write(data)  # Twisted's own write path notices and reports the failure
        return
    if sent < len(data):
        t.write(data[sent:])


def direct_writer(transport: Any) -> Callable[[bytes], None]:
    """A write function for ``transport``: :func:`direct_write` bound to it for a plain
    TCP connection, ``transport.write`` for anything else."""
    if not is_plain_tcp(transport):
        write: Callable[[bytes], None] = transport.write
        return write
    return partial(direct_write, transport)


def set_no_delay(transport: Any) -> None:
    """Turn Nagle off: a streamed body's small writes must not wait for the peer's ACK
    (with delayed ACKs that is 40 ms per chunk); every write here is already a whole unit."""
    set_tcp_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_tcp_no_delay is not None:
        try:
            set_tcp_no_delay(True)
        except OSError:  # not a TCP socket after all
            pass
