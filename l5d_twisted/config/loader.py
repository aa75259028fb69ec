"""``load_config(text)``: YAML -> validated :class:`Config`, or ConfigErrors listing everything.

Steps: parse YAML keeping lines, check it is a mapping, decode it field by field (every
problem collected), then run the cross-field checks.  Whatever the input, the only
exception that leaves is :class:`ConfigErrors`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from l5d_twisted.config.checks import cross_check
from l5d_twisted.config.decode import INVALID, Decoder
from l5d_twisted.config.decoders import TYPE_DECODERS
from l5d_twisted.config.errors import ConfigError, ConfigErrors
from l5d_twisted.config.model import Config
from l5d_twisted.config.yamldoc import is_null, parse
from l5d_twisted.registry import load_plugins

IGNORED_TOP_LEVEL = frozenset({"usage"})  # linkerd 1's usage reporting: accepted, ignored


def load_config(text: str, source: str = "<config>", source_dir: str | None = None) -> Config:
    """Decode a config; relative paths in it are relative to ``source_dir``.

    ``source_dir`` defaults to the directory of ``source`` when that names a file, else
    the current directory.
    """
    if source_dir is None:
        source_dir = (
            os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else os.getcwd()
        )
    try:
        return _load(text, source, source_dir)
    except ConfigErrors:
        raise
    except Exception as e:  # a bug, or a plugin schema misbehaving: still a clean report
        message = f"internal error while reading the config: {type(e).__name__}: {e}"
        raise ConfigErrors([ConfigError("", None, message, source)]) from e


def load_config_file(path: str | os.PathLike[str]) -> Config:
    """Read and decode the config file at ``path``."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigErrors(
            [ConfigError("", None, f"cannot read config file: {reason}", name)]
        ) from None
    return load_config(text, name, os.path.dirname(os.path.abspath(name)))


def _load(text: str, source: str, source_dir: str) -> Config:
    load_plugins()
    doc = parse(text, source)
    root = doc.root
    if root is None or is_null(root):
        raise ConfigErrors(
            [ConfigError("", None, "the config is empty; it needs at least 'routers'", source)]
        )
    decoder = Decoder(doc, TYPE_DECODERS)
    decoder.nodes[""] = root
    entries = decoder.mapping(
        root, "", "a mapping of top-level keys (admin, routers, namers, telemetry)"
    )
    config: Any = INVALID
    if entries is not INVALID:
        config = decoder.decode_fields(Config, entries, root, "", reserved=IGNORED_TOP_LEVEL)
    decoder.errors.extend(cross_check(decoder))
    if config is not INVALID:
        config = dataclasses.replace(config, source_dir=source_dir)
    if decoder.errors:
        raise ConfigErrors(decoder.errors)
    assert isinstance(config, Config)
    return config
