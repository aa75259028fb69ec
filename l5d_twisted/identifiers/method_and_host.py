"""``io.l5d.methodAndHost``: ``/svc/<version>/<METHOD>/<host>[/<uri path>]``."""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request
from l5d_twisted.identifiers.base import Identified, Unidentified
from l5d_twisted.identifiers.path import path_segments
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.registry import IDENTIFIERS


@dataclass(frozen=True)
class MethodAndHostConfig:
    http_uri_in_dst: bool = knob(
        False, key="httpUriInDst", doc="append the request path to the name"
    )


class MethodAndHostIdentifier:
    def __init__(self, prefix: Path, uri_in_dst: bool) -> None:
        self.prefix = prefix
        self.uri_in_dst = uri_in_dst

    def identify(self, request: Request) -> Identified | Unidentified:
        version = request.version.decode("latin-1")
        method = request.method.decode("latin-1")
        segments = [version, method]
        host = request.host
        if host:
            segments.append(host.decode("latin-1").strip().lower())
        elif version != "1.0":
            return Unidentified("no Host header")
        if self.uri_in_dst:
            segments.extend(path_segments(request.path))
        try:
            path = self.prefix + Path(tuple(segments))
            Path.read(path.show())  # validates the segments' characters
        except PathError as e:
            return Unidentified(f"cannot name request: {e}")
        return Identified(path, request)


@IDENTIFIERS.register("io.l5d.methodAndHost", MethodAndHostConfig)
def make_method_and_host(
    config: MethodAndHostConfig, prefix: Path, ctx: PluginContext
) -> MethodAndHostIdentifier:
    return MethodAndHostIdentifier(prefix, config.http_uri_in_dst)
