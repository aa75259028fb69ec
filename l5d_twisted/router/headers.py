"""The l5d-* headers a router reads and writes, and Via.

Read: ``l5d-dtab`` (a client's override, removed before forwarding), ``l5d-ctx-dtab``
(an override propagated from upstream), ``Via`` (to count hops and stop routing loops).
Written: ``l5d-dst-service``, ``l5d-dst-client``, ``l5d-reqid``, ``l5d-ctx-dtab`` (the
effective override, so the next hop applies it too) and ``Via: 1.1 linkerd`` both ways
(linkerd's exact token, so mixed meshes count hops alike).
"""

from __future__ import annotations

import random

from l5d_twisted.errors import BadDtabHeader, CallDepthExceeded
from l5d_twisted.http.message import Headers
from l5d_twisted.naming.dtab import Dtab, DtabError
from l5d_twisted.naming.path import Path

DTAB = b"l5d-dtab"
CTX_DTAB = b"l5d-ctx-dtab"
DST_SERVICE = b"l5d-dst-service"
DST_CLIENT = b"l5d-dst-client"
REQID = b"l5d-reqid"
CTX_TRACE = b"l5d-ctx-trace"
VIA = b"via"
VIA_VALUE = b"1.1 linkerd"

NO_DTAB = Dtab.empty()  # returned as is when a request has no override (checked by identity)


def call_depth(headers: Headers) -> int:
    """How many proxies this request went through, counted from its Via entries."""
    depth = 0
    for value in headers.get_all(VIA):
        depth += value.count(b",") + 1
    return depth


def check_call_depth(headers: Headers, max_depth: int) -> None:
    depth = call_depth(headers)
    if depth > max_depth:
        raise CallDepthExceeded(f"Maximum call depth exceeded: {depth} Via entries (max {max_depth}); is there a routing loop?")


def local_dtab(headers: Headers) -> Dtab:
    """The request's override dtab: l5d-ctx-dtab, then l5d-dtab (later rules win).

    Removes ``l5d-dtab`` (it is re-sent as ``l5d-ctx-dtab``); raises ``BadDtabHeader``.
    """
    ctx_values = headers.get_all(CTX_DTAB)
    values = headers.remove(DTAB) if DTAB in headers else []
    if not ctx_values and not values:
        return NO_DTAB
    dtab = NO_DTAB
    for name, group in ((CTX_DTAB, ctx_values), (DTAB, values)):
        for value in group:
            try:
                dtab = dtab + Dtab.read(value.decode("latin-1"))
            except (DtabError, UnicodeDecodeError) as e:
                raise BadDtabHeader(f"Invalid {name.decode()} header: {e}") from None
    if ctx_values or values:
        if dtab != NO_DTAB:
            headers.set(CTX_DTAB, dtab.show().encode("latin-1"))
        else:
            headers.remove(CTX_DTAB)
    return dtab


def dst_service(path: Path) -> bytes:
    """The ``l5d-dst-service`` value for a logical name."""
    return path.show().encode("latin-1", "replace")


def request_id(headers: Headers, rng: random.Random) -> bytes:
    """Reuse an upstream l5d-reqid, else make a new 64-bit id."""
    existing = headers.get(REQID)
    if existing:
        return existing
    return new_request_id(rng)


def new_request_id(rng: random.Random) -> bytes:
    """A new 64-bit request id, as 16 hex digits."""
    return b"%016x" % rng.getrandbits(64)
