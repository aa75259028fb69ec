"""``servers[].addForwardedHeader``: linkerd 1's RFC 7239 ``Forwarded`` header config.

``addForwardedHeader: {}`` turns it on with both labelers ``requestRandom``; absent (the
default, as RFC 7239 asks) no header is added.  The header itself is
:mod:`l5d_twisted.http.forwarded`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from l5d_twisted.config.schema import knob

LABELERS = ("ip", "ip:port", "connectionRandom", "requestRandom", "router", "static")

# RFC 7239 obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
_OBFUSCATED = re.compile(r"_?[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LabelerConfig:
    """How one endpoint of the connection is named in the header (linkerd 1's labelers)."""

    kind: str = knob(
        "requestRandom",
        choices=LABELERS,
        doc=(
            'ip (192.0.2.1, "[2001:db8::1]"), ip:port (quoted), connectionRandom / '
            "requestRandom (an obfuscated _xxxxxx per connection / per request), router "
            "(_<router label>) or static (_<label>)"
        ),
    )
    label: str | None = knob(None, doc="static: the label (sent obfuscated: _<label>)")

    def __post_init__(self) -> None:
        if self.kind == "static":
            if not self.label:
                raise ValueError("a static labeler needs a label")
            if not _OBFUSCATED.fullmatch(self.label):
                raise ValueError(
                    f"a static label is letters, digits, '.', '_' and '-' (RFC 7239 obfnode), "
                    f"got {self.label!r}"
                )


@dataclass(frozen=True)
class ForwardedConfig:
    by: LabelerConfig = knob(
        default_factory=LabelerConfig, doc="labels the server's address (the proxy)"
    )
    for_: LabelerConfig = knob(
        default_factory=LabelerConfig, key="for", doc="labels the client's address"
    )
