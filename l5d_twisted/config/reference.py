"""The config reference, generated from the schema (``l5d-twisted check --reference``).

Every key of the model and of every registered plugin kind, with its type, default, bounds
and ``knob`` doc, as Markdown.  Generated, so it cannot drift from what the loader accepts.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

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
    TELEMETERS,
    TRANSFORMERS,
    Registry,
)

_PLUGIN_SECTIONS: list[tuple[str, Registry[Any]]] = [
    ("namers[] (kind, prefix, ...)", NAMERS),
    ("routers[].identifier", IDENTIFIERS),
    ("routers[].interpreter.transformers[]", TRANSFORMERS),
    ("client loadBalancer", BALANCERS),
    ("client failureAccrual", FAILURE_ACCRUAL),
    ("backoff", BACKOFFS),
    ("service responseClassifier", CLASSIFIERS),
    ("telemetry[]", TELEMETERS),
]


def render_reference() -> str:
    out = [
        "# l5d-twisted config reference",
        "",
        "Generated from the schema by `l5d-twisted check --reference`.",
        "",
    ]
    out += _section("Top level", Config, "Also accepted and ignored: `usage`.")
    seen: set[type] = {Config}
    queue = _nested(Config, "")
    while queue:
        name, cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        note = ""
        if cls is ClientParams or cls is ServiceParams:
            note = (
                "Written directly in the block (`kind: io.l5d.global`, the default), or per prefix: "
                "`kind: io.l5d.static` with `configs: [{prefix: /svc/*, ...}, ...]` (later matches win, key by key; "
                "`{capture}` in a prefix is substituted into string values)."
            )
        out += _section(name, cls, note)
        queue += _nested(cls, name.split(" ")[0])
    for title, registry in _PLUGIN_SECTIONS:
        for plugin in sorted(registry, key=lambda p: p.kind):
            out += _section(f"{title}: kind `{plugin.kind}`", plugin.config_type, "")
    return "\n".join(out) + "\n"


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


def _section(title: str, cls: Any, note: str) -> list[str]:
    lines = [f"## {title}", ""]
    if note:
        lines += [note, ""]
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return lines + ["(free-form keys)", ""]
    hints = type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]
    if hints is INVALID or not fields:
        return lines + ["(no keys)" if fields == [] else "(schema unreadable)", ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for f in fields:
        lines.append(
            f"| `{yaml_key(f)}` | {_type_text(hints[f.name], f.metadata)} "
            f"| {_default_text(f)} | {_doc_text(f.metadata)} |"
        )
    return lines + [""]


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
