"""Dtabs in the config: parsed with the naming package's parser, errors mapped to YAML lines.

A dtab is usually a block scalar (``dtab: |``) spanning many lines; a parse error or a
reference to an unconfigured namer (``/#/io.l5d.nope/...``) is reported at the line of
the YAML file where the offending rule is, not at the ``dtab:`` key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from yaml.nodes import Node, ScalarNode

from l5d_twisted.config.decode import (
    INVALID,
    Decoder,
    Meta,
    register_lazy_name,
    register_type_decoder,
)
from l5d_twisted.config.yamldoc import line_of

_resolved: Any = None


def dtab_type() -> Any:
    """The naming package's Dtab class (registering its decoder on first use)."""
    global _resolved
    if _resolved is None:
        from l5d_twisted.naming.dtab import Dtab

        register_type_decoder(Dtab, _decode_dtab)
        _resolved = Dtab
    return _resolved


register_lazy_name("Dtab", dtab_type)


def text_line(node: Node, offset: int) -> int | None:
    """The YAML line of character ``offset`` of a scalar's text.

    Exact for block scalars (``|``/``>``, whose text starts on the next line) and
    one-line values; an estimate for folded multi-line plain or quoted scalars.
    """
    first = line_of(node)
    if first is None:
        return None
    text = node.value if isinstance(node, ScalarNode) else ""
    newlines = str(text).count("\n", 0, max(0, offset))
    block = isinstance(node, ScalarNode) and node.style in ("|", ">")
    return first + newlines + (1 if block else 0)


def _decode_dtab(decoder: Decoder, node: Node, where: str, meta: Meta) -> Any:
    from l5d_twisted.naming.dtab import Dtab, DtabError

    text = decoder.decode(str, node, where)
    if text is INVALID:
        return INVALID
    try:
        return Dtab.read(text)
    except DtabError as e:
        line = text_line(node, e.offset)
        decoder.errors.append(_error(decoder, where, line, f"invalid dtab: {e.problem} at {_excerpt(text, e.offset)}"))
        return INVALID
    except (ValueError, RecursionError) as e:  # the parser should only raise DtabError; be safe
        return decoder.error(where, node, f"invalid dtab: {e}")


def _error(decoder: Decoder, where: str, line: int | None, message: str) -> Any:
    from l5d_twisted.config.errors import ConfigError

    return ConfigError(where, line, message, decoder.doc.source)


def _excerpt(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line = text[start : end if end >= 0 else len(text)].strip()
    return repr(line) if line else "the end of the dtab"


# A namer reference: a path starting /#/ (not /a/#/b), up to spaces and dtab punctuation.
_NAMER_REF = re.compile(r"(?<![A-Za-z0-9_:.#$%\-/\\])/#((?:/[^\s/;|&()=>\[\]*~!$]+)+)")
# A comment, as the dtab parser reads one: '#' where a token may start, i.e. not inside a
# path (after '/' or a segment character '#' is part of the path, as in /#/io.l5d.fs).
_COMMENT = re.compile(r"(?<![A-Za-z0-9_:.#$%\-/\\])#[^\n]*")


def namer_references(text: str) -> Iterator[tuple[tuple[str, ...], int]]:
    """``(segments after /#, offset)`` of every ``/#/...`` on the right of a rule."""
    # Comments blanked out (offsets kept): a commented-out rule refers to nothing.
    code = _COMMENT.sub(lambda m: " " * len(m.group()), text)
    for m in _NAMER_REF.finditer(code):
        rest = code[m.end() :].lstrip()
        if rest.startswith("=>"):
            continue  # a rule's prefix, not a destination
        yield _segments(m.group(1)), m.start()


def _segments(text: str) -> tuple[str, ...]:
    """The segments of ``/a/b``, escapes such as ``\\x66`` decoded as the parser does."""
    from l5d_twisted.naming.path import Path, PathError

    try:
        return Path.read(text).segments
    except PathError:  # the dtab itself is reported as invalid
        return tuple(text[1:].split("/"))
