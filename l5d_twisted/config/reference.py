"""The config reference, generated from the schema (``l5d-twisted check --reference``).

Every key of the model and of every registered plugin kind, with its type, default, bounds
and ``knob`` doc, as Markdown.  Generated, so it cannot drift from what the loader accepts.
Each key also shows its mark from :mod:`~l5d_twisted.config.linkerd1_keys` (supported,
supported with a difference, l5d-twisted only), and each section lists the linkerd 1 keys
of that place that ``check`` refuses as not supported yet: the same table drives the
refusals, so the reference and ``check`` agree.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from l5d_twisted.config import linkerd1_keys
from l5d_twisted.config.decode import INVALID, type_hints
from l5d_twisted.config.model import Config, NamerSpec, Workers
from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.config.perprefix import ClientConfig, ServiceConfig
from l5d_twisted.config.schema import PluginSpec, yaml_key
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import (
    BACKOFFS,
    BALANCERS,
    CLASSIFIERS,
    FAILURE_ACCRUAL,
    IDENTIFIERS,
    NAMERS,
    PROTOCOLS,
    TELEMETERS,
    TRANSFORMERS,
    Registry,
)

_PLUGIN_SECTIONS: list[tuple[str, Registry[Any]]] = [
    ("namers[] (kind, prefix, ...)", NAMERS),
    ("routers[].identifier", IDENTIFIERS),
    ("transformers (routers[].interpreter.transformers[], namers[].transformers[])", TRANSFORMERS),
    ("client loadBalancer", BALANCERS),
    ("client failureAccrual", FAILURE_ACCRUAL),
    ("backoff", BACKOFFS),
    ("service responseClassifier", CLASSIFIERS),
    ("telemetry[]", TELEMETERS),
]


_INTRO = [
    "# l5d-twisted config reference",
    "",
    "Generated from the schema by `l5d-twisted check --reference`.",
    "",
    "The *linkerd 1* column compares each key with linkerd 1's own config reference: "
    "*supported* (linkerd 1's meaning and default), *supported, differs* (how is said), "
    "*l5d-twisted only* (not a linkerd 1 key), or **not yet**: linkerd 1 configuration "
    "that `l5d-twisted check` refuses by name (exit 2) until it is implemented. "
    "Kinds and protocols not supported yet are listed at the end.",
    "",
]


def render_reference() -> str:
    out = list(_INTRO)
    out += _section("Top level", Config, "", "")
    # a section class reached from several places (a retry budget) is shown once, titled
    # with every place
    places: dict[type, list[str]] = {}
    queue = _nested(Config, "")
    while queue:
        name, cls = queue.pop(0)
        if cls is Config:
            continue
        if cls in places:
            places[cls].append(name)
            # and so are the sections inside it (a client tls block's clientAuth)
            queue += _nested(cls, name.split(" ")[0])
            continue
        places[cls] = [name]
        queue += _nested(cls, name.split(" ")[0])
    for cls, names in places.items():
        note = ""
        if cls is ClientParams or cls is ServiceParams:
            note = (
                "Written directly in the block (`kind: io.l5d.global`, the default), or per prefix: "
                "`kind: io.l5d.static` with `configs: [{prefix: /svc/*, ...}, ...]` (later matches win, key by key; "
                "`{capture}` in a prefix is substituted into string values)."
            )
        out += _section(", ".join(names), cls, note, *(n.split(" ")[0] for n in names))
    for title, registry in _PLUGIN_SECTIONS:
        out += _generic_section(title, registry.category)
        for plugin in sorted(registry, key=lambda p: p.kind):
            out += _section(
                f"{title}: kind `{plugin.kind}`",
                plugin.config_type,
                "",
                f"{registry.category}[{plugin.kind}]",
            )
    out += _refused_kinds()
    return "\n".join(out) + "\n"


def _mark_text(pattern: str, accepted: bool) -> str:
    """A key's mark; an accepted key is never shown as refused (a stale table entry)."""
    found = linkerd1_keys.mark(pattern)
    if found is None:
        return "not audited"
    if accepted and found.status == linkerd1_keys.NOT_YET:
        return "supported"
    return found.text().replace("|", "\\|")


def _table_keys_under(pattern: str) -> list[tuple[str, linkerd1_keys.Mark]]:
    """(key, mark) of the table's keys directly under ``pattern`` (a section's place)."""
    start = f"{pattern}." if pattern else ""
    found = []
    for key, found_mark in linkerd1_keys.KEYS.items():
        if not key.startswith(start):
            continue
        rest = key[len(start) :]
        if rest and "." not in rest and "[" not in rest:
            found.append((rest, found_mark))
    return found


def _generic_section(title: str, category: str) -> list[str]:
    """The keys every kind of a plugin family takes (linkerd 1's ``namers[].transformers``)."""
    rows = _table_keys_under(f"{category}[*]")
    if not rows:
        return []
    lines = [f"## {title}: every kind", "", "| key | linkerd 1 |", "|---|---|"]
    lines += [f"| `{key}` | {m.text()} |" for key, m in rows]
    return lines + [""]


def _refused_kinds() -> list[str]:
    lines = [
        "## linkerd 1 kinds and protocols not supported yet",
        "",
        "`l5d-twisted check` refuses these by name (exit 2), "
        "e.g. `routers[0].protocol: protocol h2 is linkerd 1 configuration that "
        "l5d-twisted does not support yet (the HTTP/2 protocol)`.",
        "",
        "| family | kind | missing |",
        "|---|---|---|",
    ]
    registries = {registry.category: registry for _title, registry in _PLUGIN_SECTIONS}
    registries[PROTOCOLS.category] = PROTOCOLS
    for key, found in linkerd1_keys.KEYS.items():
        if found.status != linkerd1_keys.NOT_YET or not key.endswith("]"):
            continue
        family, _, kind = key[:-1].partition("[")
        registry = registries.get(family)
        if kind != "*" and (registry is None or kind not in registry):
            lines.append(f"| {family} | `{kind}` | {found.note} |")
    return lines + [""]


def _nested(cls: type, base: str) -> list[tuple[str, type]]:
    """(key path, section class) of the sections inside ``cls`` (at key path ``base``)."""
    hints = type_hints(cls)
    if hints is INVALID:
        return []
    found: list[tuple[str, type]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        where = (f"{base}.{yaml_key(f)}" if base else yaml_key(f)) + (
            "[]" if typing.get_origin(tp) is tuple else ""
        )
        for leaf in _leaf_types(tp):
            if leaf is ClientConfig:
                found.append((f"{where} (client params)", ClientParams))
            elif leaf is ServiceConfig:
                found.append((f"{where} (service params)", ServiceParams))
            elif _is_schema(leaf):
                found.append((where, leaf))
    return found


def _is_schema(tp: Any) -> bool:
    """A config section declared with knob() (not a value type such as Dtab or PluginSpec)."""
    if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
        return False
    return any("doc" in f.metadata for f in dataclasses.fields(tp))


def _leaf_types(tp: Any) -> list[Any]:
    args = typing.get_args(tp)
    if not args:
        return [tp]
    return [leaf for arg in args for leaf in _leaf_types(arg)]


def _section(title: str, cls: Any, note: str, *places: str) -> list[str]:
    """A section's keys (``places``: where it is in the linkerd1_keys table), then the
    linkerd 1 keys of those places that are not schema keys (refused, or ignored)."""
    lines = [f"## {title}", ""]
    if note:
        lines += [note, ""]
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return lines + ["(free-form keys)", ""]
    hints = type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]
    if hints is INVALID:
        return lines + ["(schema unreadable)", ""]
    keys = {yaml_key(f) for f in fields}
    others: dict[str, list[str]] = {}
    for place in places:
        for key, _m in _table_keys_under(place):
            if key not in keys:
                others.setdefault(key, [])
    for key, texts in others.items():
        texts.append(_marks_text(places, key, accepted=False))
    if not fields and not others:
        return lines + ["(no keys)", ""]
    lines += [
        "| key | type | default | description | linkerd 1 |",
        "|---|---|---|---|---|",
    ]
    for f in fields:
        key = yaml_key(f)
        lines.append(
            f"| `{key}` | {_type_text(hints[f.name], f.metadata)} "
            f"| {_default_text(f)} | {_doc_text(f.metadata)} "
            f"| {_marks_text(places, key, accepted=True)} |"
        )
    for key, texts in others.items():
        lines.append(f"| `{key}` | — | — | — | {texts[0]} |")
    return lines + [""]


def _marks_text(places: tuple[str, ...], key: str, accepted: bool) -> str:
    """The mark of ``key`` in a section shown for ``places``: one text if every place has
    the same, else each place's."""
    texts = [_mark_text(f"{place}.{key}" if place else key, accepted) for place in places]
    if len(set(texts)) == 1:
        return texts[0]
    return "; ".join(f"{place}: {text}" for place, text in zip(places, texts))


def _type_text(tp: Any, meta: Any) -> str:
    if meta.get("registry") is not None and (tp is PluginSpec or PluginSpec in typing.get_args(tp)):
        text = f"{meta['registry'].category} plugin"
        return text + (
            "s (one or a list)"
            if meta.get("one_or_many")
            else "s"
            if typing.get_origin(tp) is tuple
            else ""
        )
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if args and args[0] is NamerSpec:
        return "namer plugins (kind, prefix: default /<kind>, and the kind's keys)"
    if origin is tuple:
        return f"list of {_type_text(args[0], {})}" if args else "list"
    if origin in (dict,):
        return "mapping"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_text(a, meta) for a in rest) + " (optional)"
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    names = {
        int: "integer",
        float: "number",
        bool: "boolean",
        str: "string",
        Path: "path",
        Dtab: "dtab",
        Workers: "integer or `auto`",
    }
    if tp in names:
        return names[tp]
    name = str(getattr(tp, "__name__", str(tp)))
    if dataclasses.is_dataclass(tp):
        return f"mapping ({name})"
    return name


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        try:
            value = f.default_factory()
        except Exception:
            return "(computed)"
    else:
        return "**required**"
    if value is None or value == () or value == "":
        return "—"
    if isinstance(value, PluginSpec):
        return f"`{value.kind}`"
    if isinstance(value, tuple) and all(isinstance(v, PluginSpec) for v in value):
        return ", ".join(f"`{v.kind}`" for v in value)
    show = getattr(value, "show", None)
    if callable(show):
        return f"`{show()}`" if show() else "—"
    if dataclasses.is_dataclass(value):
        return "(see below)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _doc_text(meta: Any) -> str:
    parts = [str(meta.get("doc") or "")]
    lo, hi, choices = meta.get("minimum"), meta.get("maximum"), meta.get("choices")
    if lo is not None or hi is not None:
        parts.append(f"({'' if lo is None else lo}..{'' if hi is None else hi})")
    if choices:
        parts.append("(one of " + ", ".join(f"`{c}`" for c in choices) + ")")
    return " ".join(p for p in parts if p).replace("|", "\\|")
