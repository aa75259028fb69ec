"""``client:`` and ``service:`` blocks: one global set of params, or params per prefix.

``kind: io.l5d.global`` (the default) takes the params directly in the block.
``kind: io.l5d.static`` takes ``configs:``, a list of params each with a ``prefix``
pattern (see :mod:`l5d_twisted.config.prefix`).  ``params_for(path)`` starts from the
defaults and applies, in order, every config whose prefix matches (later ones win, key by
key: a config only overrides the keys it sets), substituting the prefix's captures into the
string values it sets.

Pure data: the blocks are read by :mod:`l5d_twisted.config.decoders` and shown as JSON by
:mod:`l5d_twisted.config.tojson`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.config.prefix import PrefixPattern, substitute
from l5d_twisted.config.schema import PluginSpec
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
        overrides = {
            name: _substituted(getattr(entry.params, name), captures) for name in entry.given
        }
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

    @functools.cached_property
    def _defaults(self) -> ClientParams:
        # One shared (frozen) instance: made anew per name, the defaults and their plugin
        # specs were ~500 bytes of every routed name (issue 17).
        return ClientParams()

    def params_for(self, bound_id: Path) -> ClientParams:
        return _resolve(self._defaults, self.configs, bound_id)


@dataclass(frozen=True)
class ServiceConfig:
    """``service:``; ``params_for(service_path)`` gives one logical name's :class:`ServiceParams`."""

    kind: str = GLOBAL
    configs: tuple[PrefixedParams[ServiceParams], ...] = ()

    @functools.cached_property
    def _defaults(self) -> ServiceParams:
        return ServiceParams()

    def params_for(self, service_path: Path) -> ServiceParams:
        return _resolve(self._defaults, self.configs, service_path)
