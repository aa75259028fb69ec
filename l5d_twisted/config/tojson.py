"""Config -> JSON (``/config.json``, ``check --show``): camelCase keys, paths and dtabs as text.

Every value is shown, defaults included, so the admin page tells what the proxy runs with;
per-prefix ``configs`` entries show only the keys they set (that is how they merge).

:func:`to_json` dispatches on the value's type (``functools.singledispatch``): one function
per model type that is not shown field by field, the generic cases (dataclasses, tuples,
mappings, scalars) below them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

from l5d_twisted.config.model import Config, InterpreterConfig, NamerSpec, Workers
from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.config.perprefix import GLOBAL, STATIC, ClientConfig, PrefixedParams, ServiceConfig
from l5d_twisted.config.prefix import PrefixPattern
from l5d_twisted.config.schema import PluginSpec, yaml_key
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path


def config_json(config: Config) -> dict[str, Any]:
    """The whole config as JSON (what ``/config.json`` serves)."""
    shown: dict[str, Any] = to_json(config)
    return shown


@functools.singledispatch
def to_json(value: object) -> Any:
    """``value`` as JSON-ready Python: dicts, lists, strings, numbers, booleans, None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclass_json(value)
    return str(value)  # a YAML date, say, in a plugin's free-form keys


@to_json.register(str)
@to_json.register(int)  # bool too
@to_json.register(float)
@to_json.register(type(None))
def _scalar(value: str | int | float | None) -> Any:
    return value


@to_json.register(tuple)
@to_json.register(list)
def _sequence(value: tuple[Any, ...] | list[Any]) -> list[Any]:
    return [to_json(v) for v in value]


@to_json.register(dict)
def _mapping(value: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): to_json(v) for k, v in value.items()}


@to_json.register(Path)
@to_json.register(Dtab)
@to_json.register(PrefixPattern)
def _text(value: Path | Dtab | PrefixPattern) -> str:
    return value.show()


@to_json.register(Workers)
def _workers(value: Workers) -> int | str:
    return "auto" if value.count is None else value.count


@to_json.register(Config)
def _config(value: Config) -> dict[str, Any]:
    out = dataclass_json(value)
    out.pop("sourceDir", None)  # where the file was, not a setting
    return out


@to_json.register(PluginSpec)
def _plugin(value: PluginSpec) -> dict[str, Any]:
    body = to_json(value.config) if value.config is not None else {}
    return {"kind": value.kind, **(body if isinstance(body, dict) else {"config": body})}


@to_json.register(InterpreterConfig)
def _interpreter(value: InterpreterConfig) -> dict[str, Any]:
    out = dataclass_json(value)
    if value.kind != "io.l5d.namerd.http":
        # Those keys belong to namerd's interpreter alone, and the decoder refuses them with
        # any other kind: showing their defaults would make the shown config unloadable.
        for key in ("experimental", "dst", "namespace", "retry", "tls"):
            out.pop(key, None)
    return out


@to_json.register(NamerSpec)
def _namer(value: NamerSpec) -> dict[str, Any]:
    body = to_json(value.config) if value.config is not None else {}
    return {
        "kind": value.kind,
        "prefix": value.prefix.show(),
        **(body if isinstance(body, dict) else {}),
        **({"transformers": to_json(value.transformers)} if value.transformers else {}),
    }


@to_json.register(ClientConfig)
def _client(value: ClientConfig) -> dict[str, Any]:
    return _block_json(value.kind, value.configs, ClientParams())


@to_json.register(ServiceConfig)
def _service(value: ServiceConfig) -> dict[str, Any]:
    return _block_json(value.kind, value.configs, ServiceParams())


def _block_json(
    kind: str, configs: tuple[PrefixedParams[Any], ...], defaults: object
) -> dict[str, Any]:
    if kind == GLOBAL:
        # One block applies everywhere: show it whole, defaults included.
        params = configs[-1].params if configs else defaults
        return {"kind": GLOBAL, **dataclass_json(params)}
    return {
        "kind": STATIC,
        "configs": [
            {"prefix": entry.prefix.show(), **dataclass_json(entry.params, only=entry.given)}
            for entry in configs
        ],
    }


def dataclass_json(value: Any, only: Iterable[str] | None = None) -> dict[str, Any]:
    """The fields of a dataclass instance (those in ``only``, if given) under their YAML keys."""
    wanted = set(only) if only is not None else None
    out = {}
    for f in dataclasses.fields(value):
        if wanted is not None and f.name not in wanted:
            continue
        out[yaml_key(f)] = to_json(getattr(value, f.name))
    return out
