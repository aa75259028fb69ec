"""Dtab bodies as namerd's HTTP interface reads and writes them.

Two media types, as namerd: ``application/json`` (a list of ``{"prefix": ..., "dst": ...}``,
the default) and ``application/dtab`` (dtab text; ``text/plain`` too).  Reading raises
:class:`BodyError` with a message for the client (a 400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from l5d_twisted.naming.dtab import Dentry, Dtab, DtabError, Prefix, show_tree
from l5d_twisted.naming.parser import parse_tree

JSON = "application/json"
DTAB = "application/dtab"
TEXT = "text/plain"

# Largest dtab body accepted (PUT/POST).  A dtab of 2,000 per-service rules is ~100 KB;
# the bind limits (naming.limits) keep what one name may cost whatever the size.
MAX_DTAB_BYTES = 256 * 1024
# Rules one stored dtab may hold.
MAX_DTAB_RULES = 10_000


class BodyError(ValueError):
    """A dtab body that cannot be read; the message is for the client."""


@dataclass(frozen=True)
class Codec:
    media_type: str
    json: bool

    def write(self, dtab: Dtab) -> bytes:
        if self.json:
            return json.dumps(dtab_json(dtab)).encode() + b"\n"
        return dtab.show().encode() + b"\n"

    def read(self, body: bytes) -> Dtab:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("the dtab is not UTF-8 text") from None
        dtab = read_json(text) if self.json else read_text(text)
        if len(dtab) > MAX_DTAB_RULES:
            raise BodyError(f"the dtab has {len(dtab)} rules, more than {MAX_DTAB_RULES}")
        return dtab


JSON_CODEC = Codec(JSON, True)
DTAB_CODEC = Codec(DTAB, False)
TEXT_CODEC = Codec(TEXT, False)
_BY_TYPE = {c.media_type: c for c in (JSON_CODEC, DTAB_CODEC, TEXT_CODEC)}


def by_media_type(header: str | None) -> Codec | None:
    """The codec of a ``Content-Type`` (parameters such as ``charset`` ignored)."""
    if not header:
        return None
    return _BY_TYPE.get(header.split(";", 1)[0].strip().lower())


def for_accept(header: str | None) -> Codec:
    """The first media type of ``Accept`` that namerd serves, in the order listed (as
    namerd picks it), else JSON."""
    for part in (header or "").split(","):
        codec = by_media_type(part)
        if codec is not None:
            return codec
    return JSON_CODEC


def dtab_json(dtab: Dtab) -> list[dict[str, str]]:
    return [{"prefix": d.prefix.show(), "dst": show_tree(d.dst)} for d in dtab]


def read_text(text: str) -> Dtab:
    try:
        return Dtab.read(text)
    except (DtabError, ValueError, RecursionError) as e:
        message = str(e)  # a DtabError's message starts with "dtab:" and says where
        raise BodyError(
            message if message.startswith("dtab") else f"invalid dtab: {message}"
        ) from None


def read_json(text: str) -> Dtab:
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise BodyError(f"invalid JSON: {e}") from None
    if not isinstance(value, list):
        raise BodyError('expected a JSON list of {"prefix": ..., "dst": ...}')
    dentries = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("prefix"), str)
            or not isinstance(item.get("dst"), str)
        ):
            raise BodyError(
                f'entry {i}: expected {{"prefix": "/...", "dst": "/..."}}, got {_short(item)}'
            )
        try:
            dentries.append(Dentry(Prefix.read(item["prefix"]), parse_tree(item["dst"])))
        except (DtabError, ValueError, RecursionError) as e:
            raise BodyError(f"entry {i}: invalid dentry: {e}") from None
    return Dtab.of(dentries)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
