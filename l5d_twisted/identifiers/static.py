"""``io.l5d.static``: every request goes to one fixed name."""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request
from l5d_twisted.identifiers.base import Identified
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import IDENTIFIERS


@dataclass(frozen=True)
class StaticIdentifierConfig:
    path: Path = knob(doc="the name every request is routed to (under dstPrefix)")


class StaticIdentifier:
    def __init__(self, path: Path) -> None:
        self.path = path

    def identify(self, request: Request) -> Identified:
        return Identified(self.path, request)


@IDENTIFIERS.register("io.l5d.static", StaticIdentifierConfig)
def make_static_identifier(
    config: StaticIdentifierConfig, prefix: Path, ctx: PluginContext
) -> StaticIdentifier:
    return StaticIdentifier(prefix + config.path)
