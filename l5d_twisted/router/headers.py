"""The l5d-* headers a router reads and writes, and Via.

Read: ``l5d-dtab`` (a client's override, removed before forwarding), ``l5d-ctx-dtab``
(an override propagated from upstream), ``Via`` (to count hops and stop routing loops),
``l5d-loop`` (the loop markers of the routers the request passed).
Written: ``l5d-dst-service``, ``l5d-dst-client``, ``l5d-reqid``, ``l5d-ctx-dtab`` (the
effective override, so the next hop applies it too), ``Via: 1.1 linkerd`` both ways
(linkerd's exact token, so mixed meshes count hops alike) and ``l5d-loop``.

Loops: counting Via (linkerd 1's ``maxCallDepth``) stops a loop only after it has held a
connection and a request at every hop (a loop through the proxy itself ran 445 hops before
the headers outgrew the limit).  Each router also adds its loop marker, its random id and a
hash of the name it routes, to ``l5d-loop``; a request that comes back to the same router
for the same name is refused at its second visit.  Outgoing then incoming on one node are
two routers (two ids), and an app that copies every header into a call for another name
carries a different name, so neither trips it.  Apps do not copy ``l5d-loop`` (it is not
``l5d-ctx-*``), and ``clearContext`` keeps it.
"""

from __future__ import annotations

import random

from l5d_twisted.errors import BadDtabHeader, CallDepthExceeded, RoutingLoop
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
LOOP = b"l5d-loop"
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
        raise CallDepthExceeded(
            f"Maximum call depth exceeded: {depth} Via entries (max {max_depth}); is there a routing loop?"
        )


def loop_marker(router_id: bytes, dst: bytes) -> bytes:
    """A router's loop marker for one name: ``<router id>.<8 hex digits of the name's hash>``."""
    return b"%s.%08x" % (router_id, hash(dst) & 0xFFFFFFFF)


def check_loop(headers: Headers, marker: bytes) -> None:
    """Raise ``RoutingLoop`` if the request already passed this router for this name."""
    for value in headers.get_all(LOOP):
        if marker in value:
            raise RoutingLoop(
                f"Routing loop: this request already passed this router ({marker.decode('ascii')}) for the same name"
            )


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
