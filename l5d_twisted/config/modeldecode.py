"""Model types whose YAML needs more than the generic field-by-field reading.

* A router's servers default to the router protocol's port (http 4140, h2 4142), so the
  router's ``protocol`` is read first and handed down to its servers.
* A ``namers:`` entry is a plugin block with an extra ``prefix`` key (default
  ``/<kind>``); ``prefix: /#/x`` is accepted as ``/x`` since dtabs always write ``/#/``.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node

from l5d_twisted.config.decode import INVALID, Decoder, Meta, register_type_decoder
from l5d_twisted.config.model import DEFAULT_SERVER_PORTS, NamerSpec, RouterConfig, ServerConfig
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import NAMERS

_PROTOCOL = "router protocol"  # key of Decoder.context


def _decode_router(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    entries = decoder.mapping(node, where)
    if entries is INVALID:
        return INVALID
    protocol = "http"
    if "protocol" in entries:
        value = decoder.scalar(entries["protocol"][1], f"{where}.protocol")
        if isinstance(value, str):
            protocol = value
    outer = decoder.context.get(_PROTOCOL)
    decoder.context[_PROTOCOL] = protocol
    try:
        return decoder.decode_fields(RouterConfig, entries, node, where)
    finally:
        decoder.context[_PROTOCOL] = outer


def _decode_server(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    entries = decoder.mapping(node, where)
    if entries is INVALID:
        return INVALID
    protocol = decoder.context.get(_PROTOCOL) or "http"
    port = DEFAULT_SERVER_PORTS.get(protocol, DEFAULT_SERVER_PORTS["http"])
    return decoder.decode_fields(ServerConfig, entries, node, where, defaults={"port": port})


def _decode_namer(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    entries = decoder.mapping(node, where, "a mapping with a kind (namer plugin)")
    if entries is INVALID:
        return INVALID
    spec = decoder.decode_plugin(
        node, where, {"registry": NAMERS}, reserved=frozenset({"prefix", "experimental"}), entries=entries
    )
    prefix: Any = None
    if "prefix" in entries:
        prefix = decoder.decode(Path, entries["prefix"][1], f"{where}.prefix")
        if prefix is not INVALID and prefix.segments[:1] == ("#",):
            prefix = prefix.drop(1)
        if prefix is not INVALID and prefix.is_empty:
            prefix = decoder.error(f"{where}.prefix", entries["prefix"][1], "a namer prefix needs at least one segment, e.g. /io.l5d.fs")
    if spec is INVALID or prefix is INVALID:
        return INVALID
    return NamerSpec(spec.kind, prefix if prefix is not None else Path.of(spec.kind), spec.config)


register_type_decoder(RouterConfig, _decode_router)
register_type_decoder(ServerConfig, _decode_server)
register_type_decoder(NamerSpec, _decode_namer)
