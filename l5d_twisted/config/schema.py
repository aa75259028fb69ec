"""How config schemas are declared.

A config section is a frozen dataclass whose fields are declared with :func:`knob`.  YAML
keys are the camelCase form of the field names (``dst_prefix`` <-> ``dstPrefix``) unless a
knob names its key.  Fields that hold a plugin (``kind: ...`` plus that kind's own keys) are
declared with ``knob(registry=NAMERS)`` and typed :class:`PluginSpec` (or a tuple of them);
the loader picks the plugin's config dataclass from the registry by ``kind``.

The decoder (``config.decode``) reads these declarations; plugins only declare.
"""

from __future__ import annotations

import dataclasses
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
) -> Any:
    """A documented config field.

    ``minimum``/``maximum`` bound numbers, ``choices`` restricts values, ``key`` overrides
    the YAML key, ``registry`` marks a plugin field whose ``kind`` defaults to
    ``default_kind`` when the block omits it.
    """
    metadata = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "key": key,
        "registry": registry,
        "default_kind": default_kind,
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
