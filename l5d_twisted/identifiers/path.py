"""``io.l5d.path``: the first ``segments`` path segments name the destination.

With ``consume: true`` those segments are removed from the forwarded request's path
(``/users/42`` routed by ``/svc/users`` reaches the backend as ``/42``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request, split_target
from l5d_twisted.identifiers.base import Identified, Unidentified
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.registry import IDENTIFIERS


def path_segments(target: bytes) -> list[str]:
    """The non-empty, percent-decoded segments of a request path (query dropped)."""
    path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    return [unquote(s.decode("latin-1")) for s in path.split(b"/") if s]


@dataclass(frozen=True)
class PathIdentifierConfig:
    segments: int = knob(
        1, minimum=1, maximum=100, doc="how many leading path segments name the destination"
    )
    consume: bool = knob(False, doc="strip those segments from the forwarded path")


class PathIdentifier:
    def __init__(self, prefix: Path, segments: int, consume: bool) -> None:
        self.prefix = prefix
        self.segments = segments
        self.consume = consume

    def identify(self, request: Request) -> Identified | Unidentified:
        target = request.path
        segments = path_segments(target)
        if len(segments) < self.segments:
            return Unidentified(
                f"path {target.decode('latin-1')!r} has fewer than {self.segments} segments"
            )
        try:
            path = self.prefix + Path(tuple(segments[: self.segments]))
            Path.read(path.show())
        except PathError as e:
            return Unidentified(f"cannot name request: {e}")
        if self.consume:
            request.uri = _absolute_prefix(request.uri) + _strip_segments(target, self.segments)
        return Identified(path, request)


def _absolute_prefix(uri: bytes) -> bytes:
    """``http://hello`` of an absolute-form target (kept: it is the upstream Host when the
    request has no Host field, as HTTP/1.0 requests may not), else empty."""
    authority = split_target(uri)[1]
    if authority is None:
        return b""
    return uri[: uri.find(b"://") + 3] + authority


def _strip_segments(target: bytes, n: int) -> bytes:
    path, sep, query = target.partition(b"?")
    parts = path.split(b"/")
    kept: list[bytes] = []
    dropped = 0
    for part in parts:
        if part and dropped < n:
            dropped += 1
            continue
        kept.append(part)
    rest = b"/".join(p for p in kept if p)
    stripped = b"/" + rest
    if path.endswith(b"/") and rest:
        stripped += b"/"
    return stripped + (sep + query if sep else b"")


@IDENTIFIERS.register("io.l5d.path", PathIdentifierConfig)
def make_path_identifier(
    config: PathIdentifierConfig, prefix: Path, ctx: PluginContext
) -> PathIdentifier:
    return PathIdentifier(prefix, config.segments, config.consume)
