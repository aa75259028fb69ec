"""Socket options on a connected transport (client ``socketOptions``)."""

from __future__ import annotations

from typing import Any


def socket_of(transport: Any) -> Any:
    """The socket under a transport: a TLS transport wraps the TCP one (``.transport``), whose
    handle is the socket; None if there is none."""
    for _ in range(4):  # TLS over TCP is two levels
        if transport is None:
            return None
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if hasattr(handle, "setsockopt"):
            return handle
        transport = getattr(transport, "transport", None)
    return None


def set_socket_options(transport: Any, options: tuple[tuple[int, int, int], ...]) -> None:
    """``setsockopt(level, option, value)`` for each triple on the transport's socket."""
    sock = socket_of(transport)
    if sock is None:
        return
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass  # not a TCP socket after all
