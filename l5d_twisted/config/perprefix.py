"""``client:`` and ``service:`` blocks: one global set of params, or params per prefix.

``kind: io.l5d.global`` (the default) takes the params directly in the block.
``kind: io.l5d.static`` takes ``configs:``, a list of params each with a ``prefix``
pattern (see :mod:`l5d_twisted.config.prefix`).  ``params_for(path)`` starts from the
defaults and applies, in order, every config whose prefix matches (later ones win, key by
key: a config only overrides the keys it sets), substituting the prefix's captures into the
string values it sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from yaml.nodes import Node, SequenceNode

from l5d_twisted.config.decode import (
    INVALID,
    Decoder,
    Meta,
    register_type_decoder,
    unknown_kind_message,
)
from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.config.prefix import PrefixPattern, substitute
from l5d_twisted.config.schema import PluginSpec, yaml_key
from l5d_twisted.naming.path import Path

P = TypeVar("P")

GLOBAL = "io.l5d.global"
STATIC = "io.l5d.static"
KINDS = (GLOBAL, STATIC)


@dataclass(frozen=True)
class PrefixedParams(Generic[P]):
    """One entry: the params it sets (``given``, field names) for paths under ``prefix``."""

    prefix: PrefixPattern
    params: P
    given: frozenset[str]


def _resolve(defaults: P, configs: tuple[PrefixedParams[P], ...], path: Path) -> P:
    result = defaults
    for entry in configs:
        captures = entry.prefix.match(path)
        if captures is None:
            continue
        overrides = {name: _substituted(getattr(entry.params, name), captures) for name in entry.given}
        result = dataclasses.replace(result, **overrides)  # type: ignore[type-var]
    return result


def _substituted(value: Any, captures: Mapping[str, str]) -> Any:
    """``value`` with ``{capture}`` replaced in every string inside it."""
    if not captures:
        return value
    if isinstance(value, str):
        return substitute(value, captures)
    if isinstance(value, tuple):
        return tuple(_substituted(v, captures) for v in value)
    if isinstance(value, PluginSpec):
        return PluginSpec(value.kind, _substituted(value.config, captures))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _substituted(getattr(value, f.name), captures)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {k: _substituted(v, captures) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ClientConfig:
    """``client:``; ``params_for(bound_id)`` gives one bound name's :class:`ClientParams`."""

    kind: str = GLOBAL
    configs: tuple[PrefixedParams[ClientParams], ...] = ()

    def params_for(self, bound_id: Path) -> ClientParams:
        return _resolve(ClientParams(), self.configs, bound_id)

    def to_json(self) -> dict[str, Any]:
        return _block_json(self.kind, self.configs, ClientParams())


@dataclass(frozen=True)
class ServiceConfig:
    """``service:``; ``params_for(service_path)`` gives one logical name's :class:`ServiceParams`."""

    kind: str = GLOBAL
    configs: tuple[PrefixedParams[ServiceParams], ...] = ()

    def params_for(self, service_path: Path) -> ServiceParams:
        return _resolve(ServiceParams(), self.configs, service_path)

    def to_json(self) -> dict[str, Any]:
        return _block_json(self.kind, self.configs, ServiceParams())


def _block_json(kind: str, configs: tuple[PrefixedParams[Any], ...], defaults: Any) -> dict[str, Any]:
    from l5d_twisted.config.tojson import dataclass_json, given_json

    if kind == GLOBAL:
        # One block applies everywhere: show it whole, defaults included.
        params = configs[-1].params if configs else defaults
        return {"kind": GLOBAL, **dataclass_json(params)}
    return {
        "kind": STATIC,
        "configs": [{"prefix": entry.prefix.show(), **given_json(entry.params, entry.given)} for entry in configs],
    }


# -- decoding -----------------------------------------------------------------------------


def _decode_block(params_type: type, block_type: type) -> Any:
    def decode(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
        entries = decoder.mapping(node, where)
        if entries is INVALID:
            return INVALID
        kind = GLOBAL
        if "kind" in entries:
            kind_node = entries["kind"][1]
            kind = decoder.decode(str, kind_node, f"{where}.kind")
            if kind is INVALID:
                return INVALID
            if kind not in KINDS:
                return decoder.error(f"{where}.kind", kind_node, unknown_kind_message(where.rsplit(".", 1)[-1] or "config", kind, KINDS))
        if kind == GLOBAL:
            entry = _decode_entry(decoder, params_type, entries, node, where, frozenset({"kind"}), PrefixPattern.read("/"))
            return INVALID if entry is INVALID else block_type(GLOBAL, (entry,))
        return _decode_static(decoder, params_type, block_type, entries, node, where)

    return decode


def _decode_static(
    decoder: Decoder,
    params_type: type,
    block_type: type,
    entries: Mapping[str, tuple[Node, Node]],
    node: Node,
    where: str,
) -> Any:
    ok = True
    for key, (key_node, _v) in entries.items():
        if key not in ("kind", "configs"):
            hint = " (with io.l5d.static, params go in configs[] entries, each with a prefix)"
            decoder.error(f"{where}.{key}", key_node, f"unknown key {key!r}{hint}")
            ok = False
    if "configs" not in entries:
        decoder.error(where, node, "missing required key 'configs' (a list of params, each with a prefix)")
        return INVALID
    configs_node = entries["configs"][1]
    decoder.nodes[f"{where}.configs"] = configs_node
    if not isinstance(configs_node, SequenceNode):
        return decoder.expected(f"{where}.configs", configs_node, "a list")
    decoded = []
    for i, item in enumerate(configs_node.value):
        item_where = f"{where}.configs[{i}]"
        item_entries = decoder.mapping(item, item_where)
        if item_entries is INVALID:
            ok = False
            continue
        if "prefix" in item_entries:
            prefix = _decode_prefix(decoder, item_entries["prefix"][1], f"{item_where}.prefix")
        else:
            prefix = decoder.error(item_where, item, "missing required key 'prefix' (e.g. /svc/*, /#/io.l5d.fs/{service})")
        # Decode the params even under a bad prefix, to report their problems too.
        entry = _decode_entry(decoder, params_type, item_entries, item, item_where, frozenset({"prefix"}), prefix)
        if entry is INVALID or prefix is INVALID:
            ok = False
        else:
            decoded.append(entry)
    return block_type(STATIC, tuple(decoded)) if ok else INVALID


def _decode_prefix(decoder: Decoder, node: Node, where: str) -> Any:
    text = decoder.decode(str, node, where)
    if text is INVALID:
        return INVALID
    try:
        return PrefixPattern.read(text)
    except ValueError as e:
        return decoder.error(where, node, str(e))


def _decode_entry(
    decoder: Decoder,
    params_type: type,
    entries: Mapping[str, tuple[Node, Node]],
    node: Node,
    where: str,
    reserved: frozenset[str],
    prefix: Any,
) -> Any:
    params = decoder.decode_fields(params_type, entries, node, where, reserved)
    if params is INVALID or prefix is INVALID:
        return INVALID
    given = frozenset(f.name for f in dataclasses.fields(params_type) if yaml_key(f) in entries)
    return PrefixedParams(prefix, params, given)


register_type_decoder(ClientConfig, _decode_block(ClientParams, ClientConfig))
register_type_decoder(ServiceConfig, _decode_block(ServiceParams, ServiceConfig))
