"""The generic decoder: YAML nodes -> frozen dataclasses, driven by their fields.

Every field's type says how to read its node (ints, floats, bools, strings, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]``, nested dataclasses, :class:`Path`, plugin blocks); its
:func:`~l5d_twisted.config.schema.knob` metadata adds bounds, choices and registries.  Types
that need their own reading (the dtab, namer entries, per-prefix client/service blocks) are
decoded by the functions of a table handed to the :class:`Decoder` (the model's table is
:data:`l5d_twisted.config.decoders.TYPE_DECODERS`); this module knows no model type.

The decoder never stops at a problem: it records a :class:`ConfigError` (key path + line),
returns :data:`INVALID` for that value and carries on with the siblings, so one run reports
every problem of the file.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from l5d_twisted.config import linkerd1_keys
from l5d_twisted.config.errors import ConfigError
from l5d_twisted.config.schema import PluginSpec, yaml_key
from l5d_twisted.config.yamldoc import MERGE_TAG, STR_TAG, Document, describe, is_null, line_of
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.registry import Registry


class _Invalid:
    """The value of something that failed to decode (its error is already recorded)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

# Field metadata as knob() stores it; plain dataclass fields have none of it.
Meta = Mapping[str, Any]
NO_META: Meta = {}

TypeDecoder = Callable[["Decoder", Node, str, Meta], Any]
"""``decode(decoder, node, where, meta)``: a type's own reading (INVALID if it fails)."""
TypeDecoders = Mapping[Any, TypeDecoder]

# Walking arbitrary YAML into Python values (``Any`` fields) is bounded: aliases can make a
# small file describe an exponentially large value.
_MAX_PLAIN_NODES = 100_000
# No setting needs more; larger ints would overflow timers and C APIs downstream.
_MAX_INT = 2**63 - 1


class _Budget:
    """What is left of the plain-value allowance (shared by a decoder and its scoped copies)."""

    def __init__(self, left: int) -> None:
        self.left = left


class Decoder:
    """Decodes one document, collecting errors and the node of every key path.

    ``type_decoders`` maps a type to its own reading; every other type is read from its
    annotation.  :meth:`with_type_decoders` gives a decoder for a part of the document that
    reads some types differently (a router's servers default to the router protocol's port).
    """

    def __init__(self, doc: Document, type_decoders: TypeDecoders | None = None) -> None:
        self.doc = doc
        self.type_decoders: TypeDecoders = dict(type_decoders or {})
        self.errors: list[ConfigError] = []
        self.nodes: dict[str, Node] = {}
        # Every value that decoded, by key path: cross-field checks still run on the parts
        # of a config that are fine when other parts are not.
        self.values: dict[str, Any] = {}
        # Key path of each plugin block -> its pattern in linkerd1_keys (``namer[io.l5d.fs]``),
        # so a linkerd 1 key of that kind is refused by name.
        self.plugin_patterns: dict[str, str] = {}
        self._budget = _Budget(_MAX_PLAIN_NODES)

    def with_type_decoders(self, overrides: TypeDecoders) -> Decoder:
        """A decoder recording into this one's errors, nodes and values, reading the types
        of ``overrides`` with their functions (and every other type as this one does)."""
        scoped = copy.copy(self)
        scoped.type_decoders = {**self.type_decoders, **overrides}
        return scoped

    # -- errors ---------------------------------------------------------------------------

    def error(self, where: str, node: Node | None, message: str) -> Any:
        self.errors.append(ConfigError(where, line_of(node), message, self.doc.source))
        return INVALID

    def expected(self, where: str, node: Node, what: str) -> Any:
        return self.error(where, node, f"expected {what}, got {describe(self.doc, node)}")

    def line(self, where: str) -> int | None:
        """The line of the value at key path ``where`` (or of its closest parent)."""
        while True:
            node = self.nodes.get(where)
            if node is not None:
                return line_of(node)
            if not where:
                return None
            cut = max(where.rfind("."), where.rfind("["))
            where = where[:cut] if cut > 0 else ""

    # -- entry point ----------------------------------------------------------------------

    def decode(self, tp: Any, node: Node, where: str, meta: Meta = NO_META) -> Any:
        """Decode ``node`` as ``tp``; INVALID (with errors recorded) if it does not fit."""
        self.nodes[where] = node
        try:
            value = self._decode(tp, node, where, meta)
        except RecursionError:
            return self.error(where, node, "nested too deeply")
        if value is INVALID:
            return INVALID
        value = self._check_meta(value, node, where, meta)
        if value is not INVALID:
            self.values[where] = value
        return value

    def _decode(self, tp: Any, node: Node, where: str, meta: Meta) -> Any:
        custom = self.type_decoders.get(tp)
        if custom is not None:
            return custom(self, node, where, meta)
        origin = typing.get_origin(tp)
        if origin in (types.UnionType, typing.Union):
            return self._decode_union(tp, node, where, meta)
        if origin is typing.Literal:
            return self._decode_literal(typing.get_args(tp), node, where)
        if origin in (tuple, list) or origin in (Sequence, typing.Sequence):
            return self._decode_sequence(tp, origin, node, where, meta)
        if origin in (dict, Mapping, typing.Mapping):
            return self._decode_dict(tp, node, where)
        if tp is Any or tp is object:
            return self.plain(node, where)
        if tp is bool:
            return self._decode_bool(node, where)
        if tp is int:
            return self._decode_int(node, where, meta)
        if tp is float:
            return self._decode_float(node, where, meta)
        if tp is str:
            return self._decode_str(node, where)
        if tp is Path:
            return self.decode_path(node, where)
        if tp is PluginSpec:
            return self.decode_plugin(node, where, meta)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.decode_dataclass(tp, node, where)
        return self.error(
            where, node, f"cannot read config values of type {tp!r} (a bug in its schema)"
        )

    # -- scalars --------------------------------------------------------------------------

    def scalar(self, node: Node, where: str) -> Any:
        """The Python value of a scalar node, or INVALID (mapping/list/bad scalar)."""
        if not isinstance(node, ScalarNode):
            return INVALID
        try:
            return self.doc.scalar(node)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as e:
            return self.error(where, node, f"unreadable value: {_first_line(e)}")

    def _decode_bool(self, node: Node, where: str) -> Any:
        value = self.scalar(node, where)
        if isinstance(value, bool):
            return value
        # Templating tools (Helm) often quote what they render.
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if value is INVALID and isinstance(node, ScalarNode):
            return INVALID  # unreadable scalar, already reported
        return self.expected(where, node, "true or false")

    def _decode_int(self, node: Node, where: str, meta: Meta) -> Any:
        value = self.scalar(node, where)
        if value is INVALID and isinstance(node, ScalarNode):
            return INVALID
        if isinstance(value, str) and _is_decimal(value):
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return self.expected(where, node, "an integer" + _range_text(meta))
        if not _in_range(value, meta) or abs(value) > _MAX_INT:
            return self.expected(where, node, "an integer" + _range_text(meta))
        return value

    def _decode_float(self, node: Node, where: str, meta: Meta) -> Any:
        value = self.scalar(node, where)
        if value is INVALID and isinstance(node, ScalarNode):
            return INVALID
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                pass
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            return self.expected(where, node, "a number" + _range_text(meta))
        if not _in_range(value, meta):
            return self.expected(where, node, "a number" + _range_text(meta))
        return float(value)

    def _decode_str(self, node: Node, where: str) -> Any:
        if not isinstance(node, ScalarNode) or is_null(node):
            return self.expected(where, node, "a string")
        if node.tag == STR_TAG:
            return str(node.value)
        value = self.scalar(node, where)
        if value is INVALID:
            return INVALID
        if isinstance(value, bool):
            return self.expected(where, node, "a string (quote it if you mean the word)")
        # Numbers, dates...: keep exactly what was written (``namespace: 2024`` is a name).
        return str(node.value)

    def _decode_literal(self, choices: tuple[Any, ...], node: Node, where: str) -> Any:
        value = self.scalar(node, where)
        if value in choices and not (
            isinstance(value, bool) and not any(isinstance(c, bool) for c in choices)
        ):
            return value
        return self.error(
            where, node, f"expected one of {_choices_text(choices)}, got {describe(self.doc, node)}"
        )

    def decode_path(self, node: Node, where: str) -> Any:
        text = self._decode_str(node, where)
        if text is INVALID:
            return INVALID
        try:
            return Path.read(text)
        except PathError as e:
            return self.error(where, node, f"invalid path: {e}")

    # -- containers -----------------------------------------------------------------------

    def _decode_union(self, tp: Any, node: Node, where: str, meta: Meta) -> Any:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(tp))
        if is_null(node):
            if allows_none:
                return None
            return self.expected(where, node, "a value")
        if len(args) == 1:
            return self._decode(args[0], node, where, meta)
        # Several alternatives: take the first that decodes cleanly.
        for arg in args:
            trial = Decoder(self.doc, self.type_decoders)
            value = trial._decode(arg, node, where, meta)
            if value is not INVALID:
                self.nodes.update(trial.nodes)
                return value
        names = " or ".join(getattr(a, "__name__", str(a)) for a in args)
        return self.expected(where, node, names)

    def _decode_sequence(self, tp: Any, origin: Any, node: Node, where: str, meta: Meta) -> Any:
        args = typing.get_args(tp)
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            return self._decode_fixed_tuple(args, node, where)
        item_type = args[0] if args else Any
        if isinstance(node, SequenceNode):
            items = [(f"{where}[{i}]", child) for i, child in enumerate(node.value)]
        elif meta.get("one_or_many") and not is_null(node):
            items = [(f"{where}[0]", node)]
        elif is_null(node):
            items = []
        else:
            return self.expected(where, node, "a list")
        min_items = meta.get("min_items")
        if min_items is not None and len(items) < min_items:
            return self.error(
                where, node, f"needs at least {min_items} item{'s' if min_items != 1 else ''}"
            )
        item_meta = {
            k: v for k, v in meta.items() if k not in ("min_items", "one_or_many", "validator")
        }
        values = [
            self.decode(item_type, child, item_where, item_meta) for item_where, child in items
        ]
        if any(v is INVALID for v in values):
            return INVALID
        return list(values) if origin is list else tuple(values)

    def _decode_fixed_tuple(self, args: tuple[Any, ...], node: Node, where: str) -> Any:
        if not isinstance(node, SequenceNode) or len(node.value) != len(args):
            return self.expected(where, node, f"a list of {len(args)} items")
        values = [
            self.decode(a, child, f"{where}[{i}]")
            for i, (a, child) in enumerate(zip(args, node.value))
        ]
        return INVALID if any(v is INVALID for v in values) else tuple(values)

    def _decode_dict(self, tp: Any, node: Node, where: str) -> Any:
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        entries = self.mapping(node, where)
        if entries is INVALID:
            return INVALID
        out = {}
        for key, (_key_node, value_node) in entries.items():
            out[key] = self.decode(value_type, value_node, f"{where}.{key}")
        if any(v is INVALID for v in out.values()):
            return INVALID
        return out

    def mapping(self, node: Node, where: str, what: str = "a mapping") -> Any:
        """``{key: (key node, value node)}`` of a mapping node; a null node is empty.

        Keys must be strings and appear once.
        """
        if is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            return self.expected(where, node, what)
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != MERGE_TAG)
        try:
            self.doc.flatten_merges(node)
        except (yaml.YAMLError, RecursionError) as e:
            return self.error(where, node, f"bad merge key: {_first_line(e)}")
        # Merged-in entries come first; written keys override them (YAML merge semantics),
        # but a key written twice is a mistake.
        merged_count = len(node.value) - explicit
        out: dict[str, tuple[Node, Node, bool]] = {}
        ok = True
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode) or is_null(key_node):
                self.error(
                    where, key_node, f"keys must be names, got {describe(self.doc, key_node)}"
                )
                ok = False
                continue
            key = str(key_node.value)
            if key in out and index >= merged_count and out[key][2]:
                first = out[key][0]
                self.error(
                    _join(where, key),
                    key_node,
                    f"duplicate key {key!r} (first on line {line_of(first)})",
                )
                ok = False
                continue
            out[key] = (key_node, value_node, index >= merged_count)
        return {k: (kn, vn) for k, (kn, vn, _written) in out.items()} if ok else INVALID

    # -- dataclasses ----------------------------------------------------------------------

    def decode_dataclass(
        self, cls: type, node: Node, where: str, reserved: frozenset[str] = frozenset()
    ) -> Any:
        entries = self.mapping(node, where)
        if entries is INVALID:
            return INVALID
        return self.decode_fields(cls, entries, node, where, reserved)

    def decode_fields(
        self,
        cls: type,
        entries: Mapping[str, tuple[Node, Node]],
        node: Node,
        where: str,
        reserved: frozenset[str] = frozenset(),
        defaults: Mapping[str, Any] | None = None,
    ) -> Any:
        """Build ``cls`` from ``entries``; keys in ``reserved`` belong to the caller.

        ``defaults`` replaces field defaults (e.g. a server's port depends on the router's
        protocol).
        """
        hints = type_hints(cls)
        if hints is INVALID:
            return self.error(
                where, node, f"the schema of {cls.__name__} cannot be read (a bug in its module)"
            )
        fields = [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]
        by_key = {yaml_key(f): f for f in fields}
        ok = True
        for key, (key_node, value_node) in entries.items():
            if key not in by_key and key not in reserved:
                if self.linkerd1_default(where, key, value_node):
                    continue  # a linkerd 1 key set to its default, which is what happens
                self.error(
                    _join(where, key),
                    key_node,
                    self.unknown_key(where, key, list(by_key) + sorted(reserved)),
                )
                ok = False
        values: dict[str, Any] = {}
        for f in fields:
            key = yaml_key(f)
            if key in entries:
                key_node, value_node = entries[key]
                value = self.decode(hints[f.name], value_node, _join(where, key), f.metadata)
                if value is INVALID:
                    ok = False
                else:
                    values[f.name] = value
            elif defaults is not None and f.name in defaults:
                values[f.name] = defaults[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.error(where, node, f"missing required key {key!r}")
                ok = False
        if not ok:
            return INVALID
        try:
            return cls(**values)
        except (ValueError, TypeError) as e:
            return self.error(where, node, _first_line(e))

    # -- linkerd 1 keys this project refuses by name -------------------------------------

    def pattern(self, where: str) -> str:
        """The :mod:`~l5d_twisted.config.linkerd1_keys` pattern of key path ``where``."""
        at = where
        while at:
            found = self.plugin_patterns.get(at)
            if found is not None:
                return found + linkerd1_keys.pattern_of(where[len(at) :])
            cut = max(at.rfind("."), at.rfind("["))
            at = at[:cut] if cut > 0 else ""
        return linkerd1_keys.pattern_of(where)

    def linkerd1_default(self, where: str, key: str, node: Node) -> bool:
        """Whether ``key`` is a linkerd 1 key not supported yet, set to linkerd 1's default
        (``enableProbation: false``): accepted, as nothing differs."""
        refused = linkerd1_keys.refused(_join(self.pattern(where), key))
        if refused is None or not refused.defaults or not isinstance(node, ScalarNode):
            return False
        try:
            value = self.doc.scalar(node)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError):
            return False
        return linkerd1_keys.is_default(refused, value)

    def unknown_key(self, where: str, key: str, known: Sequence[str]) -> str:
        """Why ``key`` is refused at ``where``: a linkerd 1 key not supported yet (named as
        such), else an unknown key."""
        refused = linkerd1_keys.refused(_join(self.pattern(where), key))
        if refused is not None:
            return linkerd1_keys.refusal(_shorten(key), refused.note)
        return unknown_key_message(key, known)

    # -- plugins --------------------------------------------------------------------------

    def decode_plugin(
        self,
        node: Node,
        where: str,
        meta: Meta,
        reserved: frozenset[str] = frozenset(),
        entries: Mapping[str, tuple[Node, Node]] | None = None,
    ) -> Any:
        """A ``{kind: ..., <that kind's keys>}`` block -> :class:`PluginSpec`."""
        registry: Registry[Any] | None = meta.get("registry")
        if registry is None:
            return self.error(where, node, "plugin field without a registry (a bug in its schema)")
        if entries is None:
            if isinstance(node, ScalarNode) and node.tag == STR_TAG and node.value in registry:
                return self.expected(where, node, f"a mapping like {{kind: {node.value}}}")
            entries = self.mapping(
                node, where, f"a mapping with a kind ({registry.category} plugin)"
            )
            if entries is INVALID:
                return INVALID
        kind = self.plugin_kind(registry, meta.get("default_kind"), entries, node, where)
        if kind is INVALID:
            return INVALID
        self.plugin_patterns[where] = f"{registry.category}[{kind}]"
        config_type = registry.get(kind).config_type
        reserved = reserved | {"kind"}
        if dataclasses.is_dataclass(config_type) and isinstance(config_type, type):
            config = self.decode_fields(config_type, entries, node, where, reserved)
        else:
            # A plugin without a schema gets its keys as plain values.
            config = {
                key: self.plain(v, _join(where, key))
                for key, (_k, v) in entries.items()
                if key not in reserved
            }
        if config is INVALID:
            return INVALID
        return PluginSpec(kind, config)

    def plugin_kind(
        self,
        registry: Registry[Any],
        default_kind: str | None,
        entries: Mapping[str, tuple[Node, Node]],
        node: Node,
        where: str,
    ) -> Any:
        """The registered kind a plugin block names (or its default), else an error."""
        known = registry.kinds()
        if "kind" not in entries:
            if default_kind is None:
                return self.error(
                    where,
                    node,
                    "missing required key 'kind' "
                    f"(a {registry.category} kind: {', '.join(known) or 'none registered'})",
                )
            kind_node: Node = node
            kind: Any = default_kind
        else:
            kind_node = entries["kind"][1]
            kind = self._decode_str(kind_node, _join(where, "kind"))
            if kind is INVALID:
                return INVALID
        if kind not in registry:
            refused = linkerd1_keys.refused(f"{registry.category}[{kind}]")
            message = (
                linkerd1_keys.refusal(f"{registry.category} kind {kind}", refused.note)
                if refused is not None
                else unknown_kind_message(registry.category, kind, known)
            )
            return self.error(_join(where, "kind"), kind_node, message)
        return kind

    # -- plain values ---------------------------------------------------------------------

    def plain(self, node: Node, where: str) -> Any:
        """Any YAML value as plain Python (for fields typed ``Any``), bounded in size."""
        self._budget.left -= 1
        if self._budget.left < 0:
            if self._budget.left == -1:
                self.error(where, node, "value too large (too many nested items or aliases)")
            return INVALID
        if isinstance(node, MappingNode):
            entries = self.mapping(node, where)
            if entries is INVALID:
                return INVALID
            out = {k: self.plain(v, _join(where, k)) for k, (_kn, v) in entries.items()}
            return INVALID if any(v is INVALID for v in out.values()) else out
        if isinstance(node, SequenceNode):
            items = [self.plain(child, f"{where}[{i}]") for i, child in enumerate(node.value)]
            return INVALID if any(v is INVALID for v in items) else items
        return self.scalar(node, where)

    # -- knob checks ----------------------------------------------------------------------

    def _check_meta(self, value: Any, node: Node, where: str, meta: Meta) -> Any:
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            return self.error(
                where,
                node,
                f"expected one of {_choices_text(choices)}, got {describe(self.doc, node)}{hint}",
            )
        validator = meta.get("validator")
        if validator is not None:
            try:
                validator(value)
            except (ValueError, TypeError) as e:
                return self.error(where, node, _first_line(e))
        return value


# -- helpers ------------------------------------------------------------------------------

_HINTS_CACHE: dict[type, Any] = {}


def type_hints(cls: type) -> Any:
    """The resolved field types of a dataclass (INVALID if its annotations do not resolve)."""
    cached = _HINTS_CACHE.get(cls)
    if cached is not None:
        return cached
    try:
        hints: Any = typing.get_type_hints(cls)
    except Exception:  # NameError, TypeError...: a broken plugin schema must not crash loading
        hints = INVALID
    _HINTS_CACHE[cls] = hints
    return hints


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    import difflib  # only for a config with a mistake (~150 KB of RSS otherwise, issue 15)

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_key_message(key: str, known: Sequence[str]) -> str:
    key = _shorten(key)
    hint = did_you_mean(key, known)
    listing = f"; known keys: {', '.join(known)}" if known else "; this block takes no keys"
    return f"unknown key {key!r}{hint}{listing}"


def unknown_kind_message(category: str, kind: str, known: Sequence[str]) -> str:
    kind = _shorten(kind)
    hint = did_you_mean(kind, known)
    listing = ", ".join(known) if known else "none registered"
    return f"unknown {category} kind {kind!r}{hint}; known kinds: {listing}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _is_decimal(text: str) -> bool:
    stripped = text.strip()
    if stripped[:1] in ("-", "+"):
        stripped = stripped[1:]
    return stripped.isdigit() and stripped.isascii() and len(stripped) < 19


def _in_range(value: float, meta: Meta) -> bool:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _range_text(meta: Meta) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f" {_num(lo)}-{_num(hi)}"
    if lo is not None:
        return f" >= {_num(lo)}"
    if hi is not None:
        return f" <= {_num(hi)}"
    return ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _choices_text(choices: Sequence[Any]) -> str:
    return ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
