"""``io.l5d.header.token`` (the default): one header's value is the name, ``/svc/<value>``.

With the default header, Host, a request in absolute form (``GET http://hello/``, what
``http_proxy`` clients send) is identified by the authority of its target, which RFC 9112
says takes precedence over the Host header.
"""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Request
from l5d_twisted.identifiers.base import Identified, Unidentified
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.registry import IDENTIFIERS


@dataclass(frozen=True)
class HeaderTokenConfig:
    header: str = knob("Host", doc="the header whose value names the destination")


class HeaderTokenIdentifier:
    def __init__(self, prefix: Path, header: str) -> None:
        self.prefix = prefix
        self.header = header.lower().encode("latin-1")
        self._is_host = self.header == b"host"
        # Names repeat: cache value -> path so the hot path does no parsing.
        self._cache: dict[bytes, Path] = {}

    def identify(self, request: Request) -> Identified | Unidentified:
        value = request.host if self._is_host else request.headers.get(self.header)
        if not value:
            return Unidentified(f"no {self.header.decode()} header")
        path = self._cache.get(value)
        if path is None:
            token = (
                value.decode("latin-1").strip().lower()
                if self._is_host
                else value.decode("latin-1").strip()
            )
            if not token:
                return Unidentified(f"empty {self.header.decode()} header")
            try:
                path = self.prefix + Path.read("/" + token.replace("/", "\\x2f"))
            except PathError as e:
                return Unidentified(f"bad {self.header.decode()} header value {token!r}: {e}")
            if len(self._cache) < 10_000:
                self._cache[value] = path
        return Identified(path, request)


@IDENTIFIERS.register("io.l5d.header.token", HeaderTokenConfig)
def make_header_token(
    config: HeaderTokenConfig, prefix: Path, ctx: PluginContext
) -> HeaderTokenIdentifier:
    return HeaderTokenIdentifier(prefix, config.header)
