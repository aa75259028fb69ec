"""Prefix patterns of per-prefix client/service configs: ``/#/io.l5d.fs/{service}``.

A pattern matches a path that *starts with* its segments.  A segment is matched literally,
``*`` matches any one segment, and ``{name}`` captures (all or part of) one segment, e.g.
``{service}.prod``.  Captures are substituted into the config's string values
(``tls.commonName: "{service}.example.com"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from l5d_twisted.naming.path import Path

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
_BAD_CHARS = re.compile(r"[\s;&|=>()\[\]]")


@dataclass(frozen=True)
class _Segment:
    literal: str | None  # exact text, or None for a pattern
    regex: re.Pattern[str] | None  # None with literal None: '*'
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrefixPattern:
    """A parsed prefix pattern; ``match(path)`` gives its captures or None."""

    text: str
    segments: tuple[_Segment, ...] = field(repr=False)

    @classmethod
    def read(cls, text: str) -> PrefixPattern:
        """Parse ``text``; raises ValueError with the reason."""
        text = text.strip()
        if not text.startswith("/"):
            raise ValueError(f"prefix must start with '/': {text!r}")
        if _BAD_CHARS.search(text):
            raise ValueError(f"prefix {text!r} contains a character paths cannot have")
        if text == "/":
            return cls("/", ())
        segments = []
        seen: set[str] = set()
        for part in text[1:].split("/"):
            if not part:
                raise ValueError(f"empty segment in prefix {text!r}")
            segment = _parse_segment(part, text)
            for name in segment.names:
                if name in seen:
                    raise ValueError(f"capture {{{name}}} appears twice in prefix {text!r}")
                seen.add(name)
            segments.append(segment)
        return cls(text, tuple(segments))

    @property
    def captures(self) -> tuple[str, ...]:
        return tuple(name for s in self.segments for name in s.names)

    def match(self, path: Path) -> dict[str, str] | None:
        """The captures if ``path`` starts with this pattern, else None."""
        if len(path.segments) < len(self.segments):
            return None
        captured: dict[str, str] = {}
        for pattern, segment in zip(self.segments, path.segments):
            if pattern.literal is not None:
                if pattern.literal != segment:
                    return None
            elif pattern.regex is not None:
                m = pattern.regex.fullmatch(segment)
                if m is None:
                    return None
                captured.update(zip(pattern.names, m.groups()))
        return captured

    def show(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def _parse_segment(part: str, whole: str) -> _Segment:
    if part == "*":
        return _Segment(None, None)
    if "{" not in part and "}" not in part and "*" not in part:
        return _Segment(part, None)
    names: list[str] = []
    regex = ""
    pos = 0
    for m in _CAPTURE.finditer(part):
        regex += _literal_regex(part[pos : m.start()], whole)
        names.append(m.group(1))
        regex += "(.+?)"
        pos = m.end()
    regex += _literal_regex(part[pos:], whole)
    # Groups are numbered in the regex (capture names may hold '.' or '-').
    return _Segment(None, re.compile(regex, re.DOTALL), tuple(names))


def _literal_regex(text: str, whole: str) -> str:
    if "{" in text or "}" in text:
        raise ValueError(
            f"bad capture in prefix {whole!r}: use {{name}} with a name of letters, digits, _ . -"
        )
    return ".*".join(re.escape(piece) for piece in text.split("*"))


def substitute(text: str, captures: Mapping[str, str]) -> str:
    """Replace ``{name}`` in ``text`` by its capture; unknown names stay as written."""
    if "{" not in text:
        return text
    return _CAPTURE.sub(lambda m: captures.get(m.group(1), m.group(0)), text)
