"""Dtabs in the config: where in the YAML file a rule is, and which namers rules refer to.

A dtab is usually a block scalar (``dtab: |``) spanning many lines; a parse error (see the
dtab decoder in :mod:`l5d_twisted.config.decoders`) or a reference to an unconfigured namer
(``/#/io.l5d.nope/...``, see :mod:`l5d_twisted.config.checks`) is reported at the line of
the YAML file where the offending rule is, not at the ``dtab:`` key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from yaml.nodes import Node, ScalarNode

from l5d_twisted.config.yamldoc import line_of
from l5d_twisted.naming.path import Path, PathError


def excerpt(text: str, offset: int) -> str:
    """The dtab line holding ``offset``, quoted, for an error message."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line = text[start : end if end >= 0 else len(text)].strip()
    return repr(line) if line else "the end of the dtab"


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
    try:
        return Path.read(text).segments
    except PathError:  # the dtab itself is reported as invalid
        return tuple(text[1:].split("/"))
