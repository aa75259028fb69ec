"""``io.l5d.rewrite``: a namer that rewrites a whole name by a pattern (linkerd 1's keys)::

    namers:
    - kind: io.l5d.rewrite
      prefix: /rewrite            # required: the namer has no default prefix
      pattern: "/{service}/api"   # matched against the start of the name
      name: "/srv/{service}"      # the name it becomes, bound again through the dtab

    dtab: /svc => /#/rewrite

``/#/rewrite/users/api`` becomes ``/srv/users``, resolved from the bottom of the dtab like
any other path; a name the pattern does not match is negative (the dtab falls through).

The pattern is linkerd 1's ``PathMatcher``: ``/``-separated segments, each matched against
one segment of the name: ``*`` matches any segment, ``{var}`` captures a whole segment or
part of one (``{host}.com``, ``{a}-{b}``), anything else matches literally.  Captures are
greedy, as in linkerd 1: ``{a}-{b}`` on ``x-y-z`` gives ``a=x-y``, ``b=z``.  The name
matches when it starts with the pattern's segments; what follows them is dropped, as
linkerd 1 does.  In ``name`` each ``{var}`` is replaced by its capture.

Differences from linkerd 1: a segment must match its pattern segment whole (linkerd 1
searched for the pattern inside the segment, so ``{a}.com`` also matched ``x.com.evil``);
a capture is put into one segment of the new name even if it holds characters a path
spells escaped; bad patterns and names are refused by ``check`` (a brace that is not a
capture, a capture named twice, a ``{var}`` in ``name`` the pattern does not capture,
a name that is not a path) instead of failing each request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.naming.activity import failed, ok
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import State, Var
from l5d_twisted.registry import NAMERS

# linkerd 1's capture names: letters, digits and . : - _
_CAPTURE = re.compile(r"\{([A-Za-z0-9_.:\-]+)\}")


class RewriteError(ValueError):
    pass


@dataclass(frozen=True)
class _Segment:
    literal: str | None  # None: a wildcard (regex None) or a capture pattern
    regex: re.Pattern[str] | None = None
    names: tuple[str, ...] = ()


def _split(text: str, what: str) -> list[str]:
    if not text.startswith("/"):
        raise RewriteError(f"{what} must start with '/': {text!r}")
    if text == "/":
        return []
    parts = text[1:].split("/")
    if any(not p for p in parts):
        raise RewriteError(f"empty segment in {what} {text!r}")
    return parts


def _stray_brace(text: str) -> bool:
    return "{" in text or "}" in text


@dataclass(frozen=True)
class PathMatcher:
    """A parsed pattern: ``extract(path)`` gives the captures, or None if it does not match."""

    text: str
    segments: tuple[_Segment, ...] = field(repr=False)

    @classmethod
    def read(cls, text: str) -> PathMatcher:
        segments: list[_Segment] = []
        seen: set[str] = set()
        for part in _split(text, "pattern"):
            if part == "*":
                segments.append(_Segment(None))
                continue
            names = _CAPTURE.findall(part)
            if not names:
                if _stray_brace(part):
                    raise RewriteError(
                        f"bad capture {part!r} in pattern {text!r}: write {{name}} with a name "
                        "of letters, digits, '.', ':', '-', '_'"
                    )
                segments.append(_Segment(part))
                continue
            pieces = _CAPTURE.split(part)  # literal, name, literal, name, ..., literal
            regex = ""
            for i, piece in enumerate(pieces):
                if i % 2 == 0:
                    if _stray_brace(piece):
                        raise RewriteError(f"bad capture {part!r} in pattern {text!r}")
                    regex += re.escape(piece)
                else:
                    if piece in seen:
                        raise RewriteError(f"capture {{{piece}}} appears twice in pattern {text!r}")
                    seen.add(piece)
                    regex += "(.*)"  # greedy, as linkerd 1
            segments.append(_Segment(None, re.compile(regex, re.DOTALL), tuple(names)))
        return cls(text, tuple(segments))

    @property
    def captures(self) -> frozenset[str]:
        return frozenset(name for s in self.segments for name in s.names)

    def extract(self, path: Path) -> dict[str, str] | None:
        if len(path) < len(self.segments):
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


@dataclass(frozen=True)
class NameTemplate:
    """``name``: a path whose segments may hold ``{var}``."""

    text: str
    segments: tuple[str, ...] = field(repr=False)

    @classmethod
    def read(cls, text: str, captures: frozenset[str]) -> NameTemplate:
        parts = _split(text, "name")
        for part in parts:
            for var in _CAPTURE.findall(part):
                if var not in captures:
                    known = ", ".join(sorted(captures)) or "none"
                    raise RewriteError(
                        f"name {text!r} uses {{{var}}}, which the pattern does not capture "
                        f"(captures: {known})"
                    )
            if _stray_brace(_CAPTURE.sub("", part)):
                raise RewriteError(f"bad {{var}} in name {text!r}")
        try:  # every other character must be one a path may hold
            Path.read("/" + "/".join(_CAPTURE.sub("x", p) for p in parts) if parts else "/")
        except ValueError as e:
            raise RewriteError(f"name {text!r} is not a path: {e}") from None
        return cls(text, tuple(parts))

    def substitute(self, captured: dict[str, str]) -> Path:
        out = []
        for part in self.segments:
            segment = _CAPTURE.sub(lambda m: captured[m.group(1)], part)
            if not segment:
                raise RewriteError(f"{part!r} is empty once substituted")
            out.append(segment)
        return Path.of(*out)


@dataclass(frozen=True)
class RewriteNamerConfig:
    """The namer's ``prefix`` is required (no default, as in linkerd 1)."""

    PREFIX_REQUIRED: ClassVar[bool] = True

    pattern: str = knob(
        doc="matched against the start of the name: segments, '*' for any one, "
        "{var} to capture (a whole segment or part of one, greedy); the namer's prefix "
        "is required with this kind (no default, as linkerd 1)",
    )
    name: str = knob(
        doc="the name the path becomes, bound again through the dtab; {var}: a capture"
    )

    def __post_init__(self) -> None:
        matcher = PathMatcher.read(self.pattern)
        NameTemplate.read(self.name, matcher.captures)


class RewriteNamer:
    def __init__(self, pattern: str, name: str) -> None:
        self.matcher = PathMatcher.read(pattern)
        self.template = NameTemplate.read(name, self.matcher.captures)

    def lookup(self, path: Path) -> Var[State]:
        captured = self.matcher.extract(path)
        if captured is None:
            return ok(NEG)
        try:
            return ok(Leaf(self.template.substitute(captured)))
        except ValueError as e:
            return failed(RewriteError(f"io.l5d.rewrite: {path.show()}: {e}"))

    def state(self) -> dict[str, Any]:
        return {"pattern": self.matcher.text, "name": self.template.text}


@NAMERS.register("io.l5d.rewrite", RewriteNamerConfig)
def make_rewrite_namer(
    config: RewriteNamerConfig, prefix: Path, ctx: PluginContext
) -> RewriteNamer:
    return RewriteNamer(config.pattern, config.name)
