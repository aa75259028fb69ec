"""Which of the demo's ports are already taken: checked before anything starts.

A port is busy if something answers a connection there (another mesh, a dev server: the
demo would otherwise talk to it and believe its own mesh answered) or if it cannot be
bound the way Twisted's ``listenTCP`` binds (``SO_REUSEADDR``, so a socket in TIME_WAIT
from an earlier demo does not count).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPort:
    """One port the demo listens on: what uses it and the flag that moves it."""

    what: str  # "the outgoing router", "world-1", ...
    flag: str  # "--outgoing-port", ...
    ip: str
    port: int


def why_busy(ip: str, port: int, connect_timeout_s: float = 0.5) -> str | None:
    """Why ``ip:port`` cannot be listened on, or None if it is free."""
    try:
        with socket.create_connection((ip, port), timeout=connect_timeout_s):
            return "something already answers there"
    except OSError:
        pass
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def busy_port_errors(ports: list[DemoPort]) -> list[str]:
    """One line per busy port, naming its user and the flag that moves it."""
    errors = []
    for p in ports:
        reason = why_busy(p.ip, p.port)
        if reason is not None:
            errors.append(
                f"port {p.port} on {p.ip} ({p.what}) is in use: {reason}; "
                f"move it with {p.flag}{' P1,P2,...' if p.flag == '--world-ports' else ' PORT'}"
            )
    return errors
