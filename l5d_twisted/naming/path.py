"""Paths: the names that dtabs rewrite, e.g. ``/svc/hello``."""

from __future__ import annotations

import re
from collections.abc import Iterator

# linkerd 1 path segments: letters, digits and a few punctuation characters; anything
# else must be escaped as \xHH.
# Used with fullmatch: a "$" anchor would also match before a final newline.
_SEGMENT_CHARS = re.compile(r"[A-Za-z0-9_:.#$%\-]+")


class PathError(ValueError):
    pass


class Path:
    """An immutable sequence of non-empty segments; ``Path.read("/a/b")``."""

    __slots__ = ("segments", "_hash", "_shown")

    def __init__(self, segments: tuple[str, ...] = ()) -> None:
        self.segments = segments
        self._hash = hash(segments)
        self._shown: str | None = None  # show() is on the hot path (l5d-dst-service)

    @classmethod
    def read(cls, text: str) -> Path:
        text = text.strip()
        if text == "/":
            return EMPTY
        if not text.startswith("/"):
            raise PathError(f"path must start with '/': {text!r}")
        parts = text[1:].split("/")
        segments = []
        for part in parts:
            if part == "":
                raise PathError(f"empty segment in path {text!r}")
            decoded = _unescape(part, text)
            segments.append(decoded)
        return cls(tuple(segments))

    @classmethod
    def of(cls, *segments: str) -> Path:
        return cls(tuple(segments))

    def show(self) -> str:
        shown = self._shown
        if shown is None:
            shown = "/" + "/".join(_escape(s) for s in self.segments)
            self._shown = shown
        return shown

    def __str__(self) -> str:
        return self.show()

    def __repr__(self) -> str:
        return f"Path({self.show()!r})"

    def __len__(self) -> int:
        return len(self.segments)

    def __iter__(self) -> Iterator[str]:
        return iter(self.segments)

    def __getitem__(self, index: int) -> str:
        return self.segments[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.segments == self.segments

    def __hash__(self) -> int:
        return self._hash

    def __add__(self, other: Path) -> Path:
        return Path(self.segments + other.segments)

    def take(self, n: int) -> Path:
        return Path(self.segments[:n])

    def drop(self, n: int) -> Path:
        return Path(self.segments[n:])

    def startswith(self, prefix: Path) -> bool:
        n = len(prefix.segments)
        return self.segments[:n] == prefix.segments

    @property
    def is_empty(self) -> bool:
        return not self.segments


EMPTY = Path(())


def _escape(segment: str) -> str:
    if _SEGMENT_CHARS.fullmatch(segment):
        return segment
    return "".join(
        c if _SEGMENT_CHARS.fullmatch(c) else "".join(f"\\x{b:02x}" for b in c.encode())
        for c in segment
    )


def _unescape(part: str, whole: str) -> str:
    if "\\" not in part:
        if not _SEGMENT_CHARS.fullmatch(part):
            raise PathError(f"invalid character in path segment {part!r} of {whole!r}")
        return part
    out = bytearray()
    i = 0
    while i < len(part):
        c = part[i]
        if c == "\\":
            if part[i + 1 : i + 2] != "x" or len(part) < i + 4:
                raise PathError(f"bad escape in path segment {part!r} of {whole!r}")
            try:
                out.append(int(part[i + 2 : i + 4], 16))
            except ValueError:
                raise PathError(f"bad escape in path segment {part!r} of {whole!r}") from None
            i += 4
        else:
            if not _SEGMENT_CHARS.fullmatch(c):
                raise PathError(f"invalid character {c!r} in path {whole!r}")
            out += c.encode()
            i += 1
    return out.decode("utf-8", errors="replace")
