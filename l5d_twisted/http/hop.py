"""Hop-by-hop header fields (RFC 9110 §7.6.1, RFC 9112).

A proxy must not forward the fields that describe one connection: ``Connection`` and every
field it names, ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``,
``Transfer-Encoding`` and ``Upgrade``; ``Proxy-Authorization`` is meant for the proxy
itself.  Framing (``Content-Length``/``Transfer-Encoding``) is carried by the body object
instead and re-written by whoever writes the message.
"""

from __future__ import annotations

from l5d_twisted.http.message import Headers

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

NOT_WRITTEN = HOP_BY_HOP | {b"content-length"}
"""Fields a writer never copies from a message: it adds its own framing and connection fields."""

# What a parser removes from a message while collecting its fields; the framing is kept
# in the body instead.  ``expect`` is answered by the server itself (see server module).
DROPPED_ON_PARSE = NOT_WRITTEN | {b"expect"}


_PLAIN_CONNECTION_VALUES = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close"})


def names_other_fields(values: list[bytes]) -> bool:
    """Whether ``Connection`` names fields to remove (beyond its usual options); cheap."""
    for value in values:  # noqa: SIM110 (a plain loop is cheaper than any() here)
        if value not in _PLAIN_CONNECTION_VALUES:
            return True
    return False


def connection_tokens(values: list[bytes]) -> set[bytes]:
    """The lowercase tokens of one or more ``Connection`` field values."""
    tokens: set[bytes] = set()
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens


def strip_nominated(headers: Headers, tokens: set[bytes]) -> None:
    """Remove the fields ``Connection`` named (other than the standard options)."""
    names = tokens - {b"close", b"keep-alive", b"upgrade"}
    if names:
        headers.remove_if(names.__contains__)


def strip_hop_by_hop(headers: Headers) -> None:
    """Remove every hop-by-hop field, including those named by ``Connection``."""
    tokens = connection_tokens(headers.get_all(b"connection"))
    headers.remove_if(lambda name: name in HOP_BY_HOP or name in tokens)
