"""A large object's watch line decoded by difference from its previous line (issue 17).

Every change of an API object sends the whole object: one EndpointSlice of 1,000 endpoints
(or a v1 Endpoints object) is ~140 kB of JSON, and decoding it all, reading its 1,000
entries and freeing them again was ~4 ms of a 5 ms change, for one endpoint that changed.
:class:`LineDiff` keeps each large object's last line with where each entry of its
endpoint lists is, and what each entry read as; the next line's lists are matched against
it as text, in C (``str.startswith`` on runs of entries), and only the entries whose text is
new are decoded and read.  The rest of the object (metadata, ports) is decoded as usual.

Correctness does not rest on guessing the JSON's layout: the line is parsed left to right
(keys and values by :meth:`json.JSONDecoder.raw_decode`, separators here), so an endpoint
list is found where the parser meets it; and a JSON value is self-delimiting, so text equal
to an earlier entry's text, at a position where a value starts, is that same value.
Anything unexpected (not UTF-8, a syntax error, an entry that does not read) gives None,
and the caller decodes the line with :func:`json.loads` as before.

What it costs: each large object's last line is kept (the text, two offsets and the read
tuple per entry), while the object exists.  Lines under :data:`MIN_BYTES` are not looked
at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from l5d_twisted.k8s.objects import (
    EndpointInfo,
    MalformedObject,
    ParsedEntries,
    endpoints_address,
    slice_entry,
)

MIN_BYTES = 4096  # shorter lines: json.loads, nothing kept
MIN_ENTRIES = 16  # objects with fewer entries: nothing kept
LOOKAHEAD = 8  # entries removed at one place that are still found without decoding

_raw_decode = json.JSONDecoder().raw_decode  # (value, end) of the value at a position
_WS = re.compile(r"[ \t\n\r]*")


def _ws(s: str, pos: int) -> int:
    """``pos`` past any JSON whitespace."""
    if s[pos : pos + 1] in _BLANK:
        return _WS.match(s, pos).end()  # type: ignore[union-attr]  # (always matches)
    return pos


_BLANK = frozenset(" \t\n\r")
# Where the object's name usually is (the Go API server and kmock both put ``name`` first
# in ``metadata``); only a hint for which previous line to compare with.
_NAME = re.compile(r'"metadata"\s*:\s*\{\s*"name"\s*:\s*"([^"\\]+)"')


@dataclass(frozen=True)
class Entries:
    """An endpoint list: each entry read by ``read`` into EndpointInfos."""

    read: Callable[[Any], tuple[EndpointInfo, ...]]


@dataclass(frozen=True)
class Each:
    """A list of objects, each walked with ``fields``."""

    fields: dict[str, Spec]


Spec = dict[str, "Spec"] | Entries | Each

SLICE_LINES: Spec = {"object": {"endpoints": Entries(slice_entry)}}
ENDPOINTS_LINES: Spec = {
    "object": {
        "subsets": Each(
            {
                "addresses": Entries(lambda raw: endpoints_address(raw, True)),
                "notReadyAddresses": Entries(lambda raw: endpoints_address(raw, False)),
            }
        )
    }
}


class _Unusual(Exception):
    """Internal: not what this reader reads; the caller decodes the line as usual."""


class _List:
    """One endpoint list of a line: where its ``[`` is, where its entries' text is (offsets
    from the ``[``) and what each read as."""

    __slots__ = ("start", "starts", "ends", "parsed", "flat")

    def __init__(
        self,
        start: int,
        starts: list[int],
        ends: list[int],
        parsed: list[tuple[EndpointInfo, ...]],
        flat: tuple[EndpointInfo, ...] | None,
    ) -> None:
        self.start = start
        self.starts = starts
        self.ends = ends
        self.parsed = parsed
        self.flat = flat  # when every entry is one endpoint (one address): all of them


class _Line:
    __slots__ = ("text", "lists")

    def __init__(self, text: str, lists: dict[tuple[Any, ...], _List]) -> None:
        self.text = text
        self.lists = lists


class LineDiff:
    """Watch lines of one resource kind; see the module doc."""

    def __init__(self, spec: Spec, min_bytes: int = MIN_BYTES) -> None:
        self.spec = spec
        self.min_bytes = min_bytes
        self._last: dict[str, _Line] = {}  # by object name
        self.reused = 0  # entries not decoded again (for tests and benchmarks)
        self.decoded = 0  # entries decoded

    def decode(self, line: bytes) -> Any:
        """The line's JSON value, endpoint lists as :class:`ParsedEntries`; None when it
        should be decoded as usual (short, or anything unusual)."""
        if len(line) < self.min_bytes:
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
        hint = _NAME.search(text)
        walk = _Walk(text, self._last.get(hint.group(1)) if hint is not None else None)
        try:
            pos = _ws(text, 0)
            value, pos = walk.value(pos, self.spec, ())
            if _ws(text, pos) != len(text):
                return None  # json.loads says "Extra data"
        except (ValueError, _Unusual, MalformedObject, RecursionError):
            return None
        name = _object_name(value)
        if name is not None:
            if sum(len(e.parsed) for e in walk.lists.values()) >= MIN_ENTRIES:
                self._last[name] = _Line(text, walk.lists)
            else:
                self._last.pop(name, None)
        self.reused += walk.reused
        self.decoded += walk.decoded
        return value

    def forget(self, name: str) -> None:
        """The object was deleted."""
        self._last.pop(name, None)

    def keep_only(self, names: Iterable[str]) -> None:
        """After a list: forget the objects it no longer has."""
        keep = set(names)
        for name in [n for n in self._last if n not in keep]:
            del self._last[name]

    def __len__(self) -> int:
        return len(self._last)


def _object_name(event: Any) -> str | None:
    obj = event.get("object") if type(event) is dict else None
    meta = obj.get("metadata") if type(obj) is dict else None
    name = meta.get("name") if type(meta) is dict else None
    return name if type(name) is str else None


class _Walk:
    """One line, parsed left to right; the endpoint lists matched against ``old``'s."""

    __slots__ = ("s", "old", "lists", "reused", "decoded")

    def __init__(self, text: str, old: _Line | None) -> None:
        self.s = text
        self.old = old
        self.lists: dict[tuple[Any, ...], _List] = {}
        self.reused = 0
        self.decoded = 0

    def value(self, pos: int, spec: Spec | None, path: tuple[Any, ...]) -> tuple[Any, int]:
        if spec is not None:
            c = self.s[pos : pos + 1]
            if c == "{" and type(spec) is dict:
                return self.object(pos, spec, path)
            if c == "[":
                if type(spec) is Entries:
                    return self.entries(pos, spec, path)
                if type(spec) is Each:
                    return self.each(pos, spec, path)
        return _raw_decode(self.s, pos)

    def object(self, pos: int, spec: dict[str, Spec], path: tuple[Any, ...]) -> tuple[Any, int]:
        s = self.s
        out: dict[str, Any] = {}
        pos = _ws(s, pos + 1)
        if s[pos : pos + 1] == "}":
            return out, pos + 1
        while True:
            if s[pos : pos + 1] != '"':
                raise _Unusual()
            key, pos = _raw_decode(s, pos)
            pos = _ws(s, pos)
            if s[pos : pos + 1] != ":":
                raise _Unusual()
            pos = _ws(s, pos + 1)
            out[key], pos = self.value(pos, spec.get(key), (*path, key))
            pos = _ws(s, pos)
            c = s[pos : pos + 1]
            if c == ",":
                pos = _ws(s, pos + 1)
            elif c == "}":
                return out, pos + 1
            else:
                raise _Unusual()

    def each(self, pos: int, spec: Each, path: tuple[Any, ...]) -> tuple[Any, int]:
        s = self.s
        out: list[Any] = []
        pos = _ws(s, pos + 1)
        if s[pos : pos + 1] == "]":
            return out, pos + 1
        while True:
            item, pos = self.value(pos, spec.fields, (*path, len(out)))
            out.append(item)
            pos = _ws(s, pos)
            c = s[pos : pos + 1]
            if c == ",":
                pos = _ws(s, pos + 1)
            elif c == "]":
                return out, pos + 1
            else:
                raise _Unusual()

    def entries(self, start: int, spec: Entries, path: tuple[Any, ...]) -> tuple[Any, int]:
        """An endpoint list at ``start`` (its ``[``): runs of entries whose text is the
        previous line's are taken as they were; the others are decoded and read."""
        s = self.s
        old = self.old.lists.get(path) if self.old is not None else None
        o = self.old.text if self.old is not None else ""
        base = old.start if old is not None else 0
        o_starts = old.starts if old is not None else []
        o_ends = old.ends if old is not None else []
        o_parsed = old.parsed if old is not None else []
        o_flat = old.flat if old is not None else None
        n = len(o_starts)
        # (offsets of the entries' text from the list's "[", so that a change before the
        # list (metadata) does not move them)
        starts: list[int] = []
        ends: list[int] = []
        parsed: list[tuple[EndpointInfo, ...]] = []
        # the endpoints, as runs of the old tuple and new entries (None: an entry is not
        # one endpoint), joined into one tuple in C
        pieces: list[tuple[EndpointInfo, ...]] | None = []
        read = spec.read
        i = 0  # the next old entry that may follow
        misses = 0  # new entries in a row
        pos = _ws(s, start + 1)
        if s[pos : pos + 1] == "]":
            self.lists[path] = _List(start, starts, ends, parsed, ())
            return ParsedEntries(parsed, ()), pos + 1
        while True:  # a value starts at pos
            run = 0
            if i < n:
                run = _run(s, pos, o, base, o_starts, o_ends, i)
                if not run and misses < LOOKAHEAD:
                    for skip in range(i + 1, min(i + 1 + LOOKAHEAD, n)):
                        # entries i..skip-1 gone: does old entry ``skip`` come next?
                        if s.startswith(o[base + o_starts[skip] : base + o_ends[skip]], pos):
                            i = skip
                            run = _run(s, pos, o, base, o_starts, o_ends, i)
                            break
            if run:
                shift = pos - start - o_starts[i]
                if shift:
                    starts += [x + shift for x in o_starts[i : i + run]]
                    ends += [x + shift for x in o_ends[i : i + run]]
                else:
                    starts += o_starts[i : i + run]
                    ends += o_ends[i : i + run]
                parsed += o_parsed[i : i + run]
                if pieces is not None:
                    if o_flat is not None:
                        pieces.append(o_flat[i : i + run])
                    else:
                        pieces = None
                pos = start + ends[-1]
                i += run
                misses = 0
                self.reused += run
            else:
                raw, end = _raw_decode(s, pos)
                starts.append(pos - start)
                ends.append(end - start)
                endpoints = read(raw)
                parsed.append(endpoints)
                if pieces is not None:
                    if len(endpoints) == 1:
                        pieces.append(endpoints)
                    else:
                        pieces = None
                pos = end
                misses += 1
                self.decoded += 1
            pos = _ws(s, pos)
            c = s[pos : pos + 1]
            if c == ",":
                pos = _ws(s, pos + 1)
            elif c == "]":
                flat = _join(pieces) if pieces is not None else None
                self.lists[path] = _List(start, starts, ends, parsed, flat)
                return ParsedEntries(parsed, flat), pos + 1
            else:
                raise _Unusual()


def _join(pieces: list[tuple[EndpointInfo, ...]]) -> tuple[EndpointInfo, ...]:
    if len(pieces) > 8:
        return tuple(chain.from_iterable(pieces))
    joined: tuple[EndpointInfo, ...] = ()
    for piece in pieces:
        joined += piece
    return joined


def _run(s: str, pos: int, o: str, base: int, starts: list[int], ends: list[int], i: int) -> int:
    """How many old entries from ``i`` on are, with the separators between them, the
    text at ``pos`` (0: not even entry ``i``); ``base``: where the old list's offsets are
    from.  The whole rest first (the common case once past a change), then galloping and
    halving; each test one compare in C."""
    n = len(starts)
    first = base + starts[i]

    def same(count: int) -> bool:
        return s.startswith(o[first : base + ends[i + count - 1]], pos)

    if same(n - i):
        return n - i
    if not same(1):
        return 0
    good, bad = 1, n - i  # same(good), not same(bad)
    step = 2
    while good + step < bad:
        if same(good + step):
            good += step
            step *= 2
        else:
            bad = good + step
            break
    while bad - good > 1:
        mid = (good + bad) // 2
        if same(mid):
            good = mid
        else:
            bad = mid
    return good
