"""``io.l5d.header``: a header (default ``l5d-name``) holds a path, e.g. ``/hello``."""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request
from l5d_twisted.identifiers.base import Identified, Unidentified
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.registry import IDENTIFIERS


@dataclass(frozen=True)
class HeaderPathConfig:
    header: str = knob("l5d-name", doc="the header holding the destination path")


class HeaderPathIdentifier:
    def __init__(self, prefix: Path, header: str) -> None:
        self.prefix = prefix
        self.header = header.lower().encode("latin-1")

    def identify(self, request: Request) -> Identified | Unidentified:
        value = request.headers.get(self.header)
        if not value:
            return Unidentified(f"no {self.header.decode()} header")
        try:
            return Identified(self.prefix + Path.read(value.decode("latin-1")), request)
        except PathError as e:
            return Unidentified(f"bad {self.header.decode()} header: {e}")


@IDENTIFIERS.register("io.l5d.header", HeaderPathConfig)
def make_header_path(
    config: HeaderPathConfig, prefix: Path, ctx: PluginContext
) -> HeaderPathIdentifier:
    return HeaderPathIdentifier(prefix, config.header)
