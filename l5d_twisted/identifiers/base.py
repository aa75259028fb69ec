"""The contract identifiers meet.

An identifier turns a request into a logical name under the router's ``dstPrefix``
(``/svc/hello``).  ``identify`` is synchronous, on the hot path: keep it to header
lookups and string work.  Registered factory:
``factory(config, prefix: Path, ctx: PluginContext) -> Identifier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from l5d_twisted.http.message import Request
from l5d_twisted.naming.path import Path


@dataclass(frozen=True, slots=True)
class Identified:
    """The destination, and the request to send (an identifier may rewrite it)."""

    path: Path
    request: Request


@dataclass(frozen=True, slots=True)
class Unidentified:
    reason: str


class Identifier(Protocol):
    def identify(self, request: Request) -> Identified | Unidentified: ...
