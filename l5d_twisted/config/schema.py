"""How config schemas are declared.

A config section is a frozen dataclass whose fields are declared with :func:`knob`.  YAML
keys are the camelCase form of the field names (``dst_prefix`` <-> ``dstPrefix``) unless a
knob names its key.  Fields that hold a plugin (``kind: ...`` plus that kind's own keys) are
declared with ``knob(registry=NAMERS)`` and typed :class:`PluginSpec` (or a tuple of them);
the loader picks the plugin's config dataclass from the registry by ``kind``.

The decoder (``config.decode``) reads these declarations; plugins only declare.  A plugin
config class may also validate itself in ``__post_init__`` by raising ``ValueError``: the
message becomes a config error at that block's line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any

from l5d_twisted.registry import Registry


@dataclass(frozen=True)
class PluginSpec:
    """A decoded ``{kind: ..., ...}`` block: the kind and its typed config."""

    kind: str
    config: Any


def knob(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    doc: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    key: str | None = None,
    registry: Registry[Any] | None = None,
    default_kind: str | None = None,
    one_or_many: bool = False,
    min_items: int | None = None,
    validator: Callable[[Any], object] | None = None,
    internal: bool = False,
) -> Any:
    """A documented config field.

    ``minimum``/``maximum`` bound numbers, ``choices`` restricts values, ``key`` overrides
    the YAML key, ``registry`` marks a plugin field whose ``kind`` defaults to
    ``default_kind`` when the block omits it (a plugin field with a ``default_kind`` and no
    default gets that kind with its default config).  For tuple fields, ``one_or_many``
    also accepts a single item instead of a list and ``min_items`` bounds the length.
    ``validator`` is called with the decoded value and raises ``ValueError`` to reject it.
    ``internal`` fields are not read from YAML (set by the loader, e.g. the config's dir).
    """
    if (
        registry is not None
        and default_kind is not None
        and default is MISSING
        and default_factory is MISSING
        and not one_or_many
    ):
        default_factory = lambda: default_plugin(registry, default_kind)  # noqa: E731
    metadata = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "key": key,
        "registry": registry,
        "default_kind": default_kind,
        "one_or_many": one_or_many,
        "min_items": min_items,
        "validator": validator,
        "internal": internal,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def yaml_key(field: dataclasses.Field[Any]) -> str:
    explicit = field.metadata.get("key")
    if explicit:
        return str(explicit)
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def default_plugin(registry: Registry[Any], kind: str) -> PluginSpec:
    """``kind`` with its default config.

    If no plugin of that kind is registered (yet), the spec still names the kind, with a
    ``None`` config: the code that builds the plugin reports the unknown kind then, so
    configs load while the plugin packages are incomplete.
    """
    if kind not in registry:
        return PluginSpec(kind, None)
    config_type = registry.get(kind).config_type
    try:
        return PluginSpec(kind, config_type())
    except (TypeError, ValueError):  # the kind has required keys: nothing to default to
        return PluginSpec(kind, None)
