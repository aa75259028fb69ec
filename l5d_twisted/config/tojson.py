"""Config -> JSON (``/config.json``): camelCase keys, paths and dtabs as text.

Every value is shown, defaults included, so the admin page tells what the proxy runs with;
per-prefix ``configs`` entries show only the keys they set (that is how they merge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from l5d_twisted.config.model import Config, NamerSpec
from l5d_twisted.config.schema import PluginSpec, yaml_key


def config_json(config: Config) -> dict[str, Any]:
    out = dataclass_json(config)
    out.pop("sourceDir", None)
    return out


def to_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, PluginSpec):
        body = to_jsonable(value.config) if value.config is not None else {}
        return {"kind": value.kind, **(body if isinstance(body, dict) else {"config": body})}
    if isinstance(value, NamerSpec):
        body = to_jsonable(value.config) if value.config is not None else {}
        return {"kind": value.kind, "prefix": value.prefix.show(), **(body if isinstance(body, dict) else {})}
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    show = getattr(value, "show", None)
    if callable(show):  # Path, Dtab, PrefixPattern
        return show()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclass_json(value)
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return str(value)


def dataclass_json(value: Any, only: Iterable[str] | None = None) -> dict[str, Any]:
    wanted = set(only) if only is not None else None
    out = {}
    for f in dataclasses.fields(value):
        if wanted is not None and f.name not in wanted:
            continue
        out[yaml_key(f)] = to_jsonable(getattr(value, f.name))
    return out


def given_json(params: Any, given: Iterable[str]) -> dict[str, Any]:
    return dataclass_json(params, only=given)
