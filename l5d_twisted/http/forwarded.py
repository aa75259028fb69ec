"""``servers[].addForwardedHeader``: an RFC 7239 ``Forwarded`` element on every request.

linkerd 1's ``AddForwardedHeader``: ``by=<label>;for=<label>`` then ``;host=<Host>`` when
the request names a host and ``;proto=<scheme>`` when its target is in absolute form.  The
labelers are linkerd 1's (``config.forwarded``): ``ip`` and ``ip:port`` in clear (an IPv6
address bracketed and quoted, ``ip:port`` quoted, an unspecified address ``unknown``),
``requestRandom`` (a new ``_`` + 6 letters and digits per request, RFC 7239 §6.3's advice),
``connectionRandom`` (one such label per connection), ``router`` (``_<router label>``) and
``static`` (``_<label>``).

The element is appended to what the request already carries: every ``Forwarded`` field the
client sent is joined, with the new element last, into one field (RFC 7239 §4; linkerd 1
added a second field line, which means the same).  Unlike linkerd 1, a ``host`` value that
is not a token (``web:8080``) is sent as a quoted string, as the RFC's grammar requires.

Installed by the http protocol around a server's stack only when the server asks for it.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import string
from collections.abc import Callable

from twisted.internet.defer import Deferred

from l5d_twisted.config.forwarded import ForwardedConfig, LabelerConfig
from l5d_twisted.http.message import Request, Response, split_target
from l5d_twisted.request_context import CONNECTION, Connection
from l5d_twisted.service import Filter, Service

_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 6
UNKNOWN = b"unknown"
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~" + (string.ascii_letters + string.digits).encode())

# an endpoint of a connection: the Connection and whether it is the server's end (by)
Labeler = Callable[[Connection | None, bool], bytes]


_UNSPECIFIED = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


def _address(connection: Connection | None, local: bool) -> tuple[str, int] | None:
    """(ip, port) of one end of the connection (Twisted's text form of the address); None if
    unknown or unspecified."""
    if connection is None:
        return None
    address = connection.local if local else connection.peer
    host = getattr(address, "host", None)
    if not host or host in _UNSPECIFIED:
        return None
    return str(host), int(getattr(address, "port", 0))


def _clear_ip(connection: Connection | None, local: bool) -> bytes:
    found = _address(connection, local)
    if found is None:
        return UNKNOWN
    ip, _port = found
    return ip.encode() if ":" not in ip else b'"[%s]"' % ip.encode()


def _clear_ip_port(connection: Connection | None, local: bool) -> bytes:
    found = _address(connection, local)
    if found is None:
        return UNKNOWN
    ip, port = found
    shown = ip if ":" not in ip else f"[{ip}]"
    return f'"{shown}:{port}"'.encode()


# Labels obfuscate, they are not secrets (linkerd 1 drew them from scala.util.Random): a
# generator seeded from the system's randomness, ~1 us a label instead of ~8 with secrets.
_RNG = random.Random(secrets.randbits(128))


def random_label(rng: random.Random = _RNG) -> bytes:
    return ("_" + "".join(rng.choices(_ALPHABET, k=_LENGTH))).encode()


def _request_random(connection: Connection | None, local: bool) -> bytes:
    if _address(connection, local) is None:
        return UNKNOWN
    return random_label()


class _ConnectionRandom:
    """One random-looking label per connection, with no state kept per connection: a keyed
    hash (a secret drawn at start-up) of the connection object's identity and both ends."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)

    def __call__(self, connection: Connection | None, local: bool) -> bytes:
        found = _address(connection, local)
        if found is None or connection is None:
            return UNKNOWN
        peer, local_end = connection.peer, connection.local
        seed = repr(
            (
                id(connection),
                getattr(peer, "host", ""),
                getattr(peer, "port", 0),
                local,
                getattr(local_end, "port", 0),
            )
        ).encode()
        digest = hashlib.blake2b(seed, key=self._key, digest_size=16).digest()
        return ("_" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:_LENGTH])).encode()


def _static(label: str) -> Labeler:
    value = (label if label.startswith("_") else "_" + label).encode()
    return lambda connection, local: value


def labeler(config: LabelerConfig, router_label: str) -> Labeler:
    kind = config.kind
    if kind == "ip":
        return _clear_ip
    if kind == "ip:port":
        return _clear_ip_port
    if kind == "connectionRandom":
        return _ConnectionRandom()
    if kind == "router":
        return _static(router_label)
    if kind == "static":
        assert config.label is not None  # LabelerConfig checks it
        return _static(config.label)
    return _request_random


def _quoted_if_needed(value: bytes) -> bytes:
    if value and all(c in _TOKEN for c in value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class ForwardedFilter(Filter[Request, Response]):
    def __init__(self, by: Labeler, for_: Labeler) -> None:
        self.by = by
        self.for_ = for_

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        connection = request.ctx.get(CONNECTION)
        element = b"by=%s;for=%s" % (self.by(connection, True), self.for_(connection, False))
        host = request.host
        if host:
            element += b";host=" + _quoted_if_needed(host)
        scheme_end = request.uri.find(b"://")
        if scheme_end > 0 and split_target(request.uri)[1] is not None:
            scheme = request.uri[:scheme_end].lower()
            if all(c in _TOKEN for c in scheme):
                element += b";proto=" + scheme
        headers = request.headers
        earlier = headers.remove(b"forwarded")
        headers.add(b"Forwarded", b", ".join([*earlier, element]) if earlier else element)
        return service(request)


def forwarded_filter(config: ForwardedConfig, router_label: str) -> ForwardedFilter:
    return ForwardedFilter(labeler(config.by, router_label), labeler(config.for_, router_label))
