"""The model types whose YAML needs more than the generic field-by-field reading.

:data:`TYPE_DECODERS` is the one table of them, handed by the loader to the generic
:class:`~l5d_twisted.config.decode.Decoder` (nothing registers itself on import):

* a router (``RouterConfig``): its ``protocol`` is read first and handed, as an argument,
  to the reading of its servers, whose port defaults to that protocol's (http 4140); its
  ``identifier`` defaults to the protocol's too (``protocols.base.RouterProtocol``);
* a ``namers:`` entry (``NamerSpec``): a plugin block with an extra ``prefix`` key (default
  ``/<kind>``); ``prefix: /#/x`` is accepted as ``/x`` since dtabs always write ``/#/``;
* a dtab (``Dtab``): parsed by the naming package, an error reported at the YAML line of
  the offending rule;
* ``client:`` and ``service:`` blocks (``ClientConfig``, ``ServiceConfig``): one global set
  of params (``kind: io.l5d.global``, the default) or ``kind: io.l5d.static`` with
  ``configs:``, a list of params each with a ``prefix``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from l5d_twisted.config import linkerd1_keys
from l5d_twisted.config.decode import (
    INVALID,
    Decoder,
    Meta,
    TypeDecoder,
    TypeDecoders,
    unknown_kind_message,
)
from l5d_twisted.config.dtabs import excerpt, text_line
from l5d_twisted.config.errors import ConfigError
from l5d_twisted.config.model import (
    MAX_WORKERS,
    InterpreterConfig,
    NamerSpec,
    RouterConfig,
    ServerConfig,
    Workers,
    default_server_port,
    registered_protocol,
)
from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.config.perprefix import (
    GLOBAL,
    KINDS,
    STATIC,
    ClientConfig,
    PrefixedParams,
    ServiceConfig,
)
from l5d_twisted.config.prefix import PrefixPattern
from l5d_twisted.config.schema import PluginSpec, default_plugin, yaml_key
from l5d_twisted.naming.dtab import Dtab, DtabError
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import IDENTIFIERS, NAMERS, TRANSFORMERS

Entries = Mapping[str, tuple[Node, Node]]

# -- routers and their servers ------------------------------------------------------------


def decode_router(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    entries = decoder.mapping(node, where)
    if entries is INVALID:
        return INVALID
    protocol = router_protocol(decoder, entries, where)
    refused = linkerd1_keys.refused(f"protocol[{protocol}]")
    if refused is not None and registered_protocol(protocol) is None:
        # its other keys are that protocol's: reporting them as unknown would mislead
        return decoder.error(
            f"{where}.protocol",
            entries["protocol"][1],
            linkerd1_keys.refusal(f"protocol {protocol}", refused.note),
        )
    servers = decoder.with_type_decoders({ServerConfig: server_decoder(protocol)})
    found = registered_protocol(protocol)  # the protocol's default identifier
    defaults = (
        {"identifier": (default_plugin(IDENTIFIERS, found.default_identifier),)}
        if found is not None
        else None
    )
    return servers.decode_fields(RouterConfig, entries, node, where, defaults=defaults)


def router_protocol(decoder: Decoder, entries: Entries, where: str) -> str:
    """The protocol a router block names ("http" if none or unreadable: reported apart)."""
    if "protocol" in entries:
        value = decoder.scalar(entries["protocol"][1], f"{where}.protocol")
        if isinstance(value, str):
            return value
    return "http"


def server_decoder(protocol: str) -> TypeDecoder:
    """Reads a server of a ``protocol`` router: its port defaults to the protocol's."""
    port = default_server_port(protocol)

    def decode_server(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
        entries = decoder.mapping(node, where)
        if entries is INVALID:
            return INVALID
        return decoder.decode_fields(ServerConfig, entries, node, where, defaults={"port": port})

    return decode_server


# -- namers -------------------------------------------------------------------------------


def decode_namer(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    entries = decoder.mapping(node, where, "a mapping with a kind (namer plugin)")
    if entries is INVALID:
        return INVALID
    spec = decoder.decode_plugin(
        node,
        where,
        {"registry": NAMERS},
        reserved=frozenset({"prefix", "experimental", "transformers"}),
        entries=entries,
    )
    transformers: Any = ()
    if "transformers" in entries:
        # linkerd 1's generic namer key: transformers applied to this namer's bound names
        transformers = decoder.decode(
            tuple[PluginSpec, ...],
            entries["transformers"][1],
            f"{where}.transformers",
            {"registry": TRANSFORMERS},
        )
    # linkerd 1's opt-in to experimental namers: none here needs it, but it must be a bool
    experimental: Any = False
    if "experimental" in entries:
        experimental = decoder.decode(bool, entries["experimental"][1], f"{where}.experimental")
    prefix: Any = None
    if "prefix" in entries:
        prefix = decoder.decode(Path, entries["prefix"][1], f"{where}.prefix")
        if prefix is not INVALID and prefix.segments[:1] == ("#",):
            prefix = prefix.drop(1)
        if prefix is not INVALID and prefix.is_empty:
            prefix = decoder.error(
                f"{where}.prefix",
                entries["prefix"][1],
                "a namer prefix needs at least one segment, e.g. /io.l5d.fs",
            )
    if spec is INVALID or prefix is INVALID or transformers is INVALID or experimental is INVALID:
        return INVALID
    if prefix is None and getattr(type(spec.config), "PREFIX_REQUIRED", False):
        # a kind without a default prefix (linkerd 1's io.l5d.rewrite)
        return decoder.error(
            where, node, f"missing required key 'prefix' ({spec.kind} has no default prefix)"
        )
    return NamerSpec(
        spec.kind, prefix if prefix is not None else Path.of(spec.kind), spec.config, transformers
    )


# -- interpreters -------------------------------------------------------------------------


def _interpreter_kinds() -> tuple[str, ...]:
    """The interpreter kinds the schema accepts (a kind implemented is never refused)."""
    field = next(f for f in dataclasses.fields(InterpreterConfig) if f.name == "kind")
    return tuple(field.metadata.get("choices") or ())


def decode_interpreter(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    """``interpreter:``; a linkerd 1 interpreter kind not supported yet (namerd...) is
    refused by name, without its own keys reported as unknown."""
    entries = decoder.mapping(node, where)
    if entries is INVALID:
        return INVALID
    if "kind" in entries:
        kind = decoder.scalar(entries["kind"][1], f"{where}.kind")
        refused = linkerd1_keys.refused(f"interpreter[{kind}]") if isinstance(kind, str) else None
        if refused is not None and kind not in _interpreter_kinds():
            return decoder.error(
                f"{where}.kind",
                entries["kind"][1],
                linkerd1_keys.refusal(f"interpreter kind {kind}", refused.note),
            )
    config = decoder.decode_fields(InterpreterConfig, entries, node, where)
    if config is INVALID:
        return INVALID
    return _check_interpreter(decoder, config, entries, node, where)


_NAMERD_HTTP_KEYS = ("dst", "namespace", "retry", "tls")


def _check_interpreter(
    decoder: Decoder,
    config: InterpreterConfig,
    entries: Mapping[str, tuple[Node, Node]],
    node: Node,
    where: str,
) -> Any:
    """The keys of one kind only with that kind; io.l5d.namerd.http needs ``dst`` and,
    as in linkerd 1, ``experimental: true``."""
    if config.kind != "io.l5d.namerd.http":
        for key in _NAMERD_HTTP_KEYS:
            if key in entries:
                return decoder.error(
                    f"{where}.{key}",
                    entries[key][0],
                    f"{key} is a key of the io.l5d.namerd.http interpreter, not of {config.kind}",
                )
        return config
    if not config.experimental:
        return decoder.error(
            where,
            node,
            "the io.l5d.namerd.http interpreter is experimental (as in linkerd 1) and must be "
            "explicitly enabled by setting 'experimental: true'",
        )
    if config.dst is None:
        return decoder.error(
            where, node, "missing required key 'dst' (where namerd is, e.g. /$/inet/namerd/4180)"
        )
    if not config.namespace.strip():
        return decoder.error(f"{where}.namespace", entries["namespace"][1], "an empty namespace")
    if config.retry.base_seconds > config.retry.max_seconds:
        return decoder.error(
            f"{where}.retry", entries["retry"][1], "baseSeconds is larger than maxSeconds"
        )
    return config


# -- dtabs --------------------------------------------------------------------------------


def decode_dtab(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    text = decoder.decode(str, node, where)
    if text is INVALID:
        return INVALID
    try:
        return Dtab.read(text)
    except DtabError as e:
        message = f"invalid dtab: {e.problem} at {excerpt(text, e.offset)}"
        decoder.errors.append(
            ConfigError(where, text_line(node, e.offset), message, decoder.doc.source)
        )
        return INVALID
    except (ValueError, RecursionError) as e:  # the parser should only raise DtabError; be safe
        return decoder.error(where, node, f"invalid dtab: {e}")


# -- workers ------------------------------------------------------------------------------


def decode_workers(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    """``workers: N`` (1..MAX_WORKERS) or ``workers: auto``; a quoted number too (Helm)."""
    value = decoder.scalar(node, where)
    if value is INVALID and isinstance(node, ScalarNode):
        return INVALID  # unreadable scalar, already reported
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "auto":
            return Workers(None)
        if text.isdigit():
            value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WORKERS:
        return Workers(value)
    return decoder.expected(
        where, node, f"a number of worker processes 1-{MAX_WORKERS}, or auto (one per CPU)"
    )


# -- client: and service: blocks ----------------------------------------------------------


def block_decoder(params_type: type, block_type: type) -> TypeDecoder:
    """Reads a ``client:`` / ``service:`` block into ``block_type`` of ``params_type``."""

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
                return decoder.error(
                    f"{where}.kind",
                    kind_node,
                    unknown_kind_message(where.rsplit(".", 1)[-1] or "config", kind, KINDS),
                )
        if kind == GLOBAL:
            entry = _decode_entry(
                decoder,
                params_type,
                entries,
                node,
                where,
                frozenset({"kind"}),
                PrefixPattern.read("/"),
            )
            return INVALID if entry is INVALID else block_type(GLOBAL, (entry,))
        return _decode_static(decoder, params_type, block_type, entries, node, where)

    return decode


def _decode_static(
    decoder: Decoder,
    params_type: type,
    block_type: type,
    entries: Entries,
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
        decoder.error(
            where, node, "missing required key 'configs' (a list of params, each with a prefix)"
        )
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
            prefix = decoder.error(
                item_where,
                item,
                "missing required key 'prefix' (e.g. /svc/*, /#/io.l5d.fs/{service})",
            )
        # Decode the params even under a bad prefix, to report their problems too.
        entry = _decode_entry(
            decoder, params_type, item_entries, item, item_where, frozenset({"prefix"}), prefix
        )
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
    entries: Entries,
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


# -- the table ----------------------------------------------------------------------------

TYPE_DECODERS: TypeDecoders = {
    RouterConfig: decode_router,
    InterpreterConfig: decode_interpreter,
    NamerSpec: decode_namer,
    Dtab: decode_dtab,
    ClientConfig: block_decoder(ClientParams, ClientConfig),
    ServiceConfig: block_decoder(ServiceParams, ServiceConfig),
    Workers: decode_workers,
}
"""Type -> its own reading, for every model type the generic decoder cannot read alone
(a router's servers are read inside :func:`decode_router`, which knows the protocol)."""
