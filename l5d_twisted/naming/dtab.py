"""Delegation tables: ``prefix => tree`` rules that rewrite logical names.

A :class:`Dtab` is an ordered tuple of :class:`Dentry` rules.  Resolution (see
``naming.interpreter``) tries rules from the bottom up: every rule whose prefix matches a
path contributes its tree with the rest of the path appended, the later rule first, and
the interpreter falls back from one to the next only when a branch is negative.

``Dtab.read(text)`` parses linkerd 1's syntax (``naming.parser``), ``show()`` prints it so
that it reads back equal, ``a + b`` concatenates (rules of ``b`` win, being later).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path, _escape

if TYPE_CHECKING:
    from l5d_twisted.naming.limits import BindBudget


class DtabError(ValueError):
    """A dtab (or path, or name tree) that does not parse; says what and where.

    ``offset`` is the 0-based character offset into ``text`` where parsing stopped.
    """

    def __init__(self, problem: str, text: str, offset: int) -> None:
        self.problem = problem
        self.text = text
        self.offset = offset
        super().__init__(
            f"dtab: {problem} at offset {offset}{_position(text, offset)}: {_excerpt(text, offset)}"
        )


def _position(text: str, offset: int) -> str:
    """' (line 2, column 5)' for multi-line input, where offsets are hard to count."""
    if "\n" not in text:
        return ""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f" (line {line}, column {column})"


def _excerpt(text: str, offset: int, width: int = 40) -> str:
    """The text around ``offset`` in quotes, with ``>>>`` marking the spot if it is long."""
    if len(text) <= 2 * width:
        return '"' + text.replace("\n", "\\n") + '"'
    start = max(0, offset - width)
    end = min(len(text), offset + width)
    before = ("..." if start > 0 else "") + text[start:offset]
    after = text[offset:end] + ("..." if end < len(text) else "")
    return '"' + (before + ">>>" + after).replace("\n", "\\n") + '"'


# A prefix element: a literal segment, or None for the ``*`` wildcard (one any segment).
PrefixElem = str | None


@dataclass(frozen=True)
class Prefix:
    """The left side of a rule: a path whose segments may be ``*`` (matches any one)."""

    elems: tuple[PrefixElem, ...] = ()

    @classmethod
    def read(cls, text: str) -> Prefix:
        from l5d_twisted.naming.parser import parse_prefix

        return parse_prefix(text)

    @classmethod
    def of_path(cls, path: Path) -> Prefix:
        return cls(tuple(path.segments))

    def __len__(self) -> int:
        return len(self.elems)

    def matches(self, path: Path) -> bool:
        segments = path.segments
        if len(segments) < len(self.elems):
            return False
        # A plain loop, not all(<generator>): this runs for every rule a bind examines.
        for elem, segment in zip(self.elems, segments):  # noqa: SIM110
            if elem is not None and elem != segment:
                return False
        return True

    def show(self) -> str:
        if not self.elems:
            return "/"
        return "/" + "/".join("*" if e is None else _escape(e) for e in self.elems)

    def __str__(self) -> str:
        return self.show()


@dataclass(frozen=True)
class Dentry:
    """One rule: paths matching ``prefix`` are rewritten to ``dst`` plus the rest."""

    prefix: Prefix
    dst: NameTree[Path]

    @classmethod
    def read(cls, text: str) -> Dentry:
        from l5d_twisted.naming.parser import parse_dentry

        return parse_dentry(text)

    def rewrite(self, path: Path) -> NameTree[Path] | None:
        """``dst`` with the unmatched rest of ``path`` appended, or None if no match."""
        if not self.prefix.matches(path):
            return None
        return self._rewrite_matched(path)

    def _rewrite_matched(self, path: Path) -> NameTree[Path]:
        rest = path.drop(len(self.prefix))
        if rest.is_empty:
            return self.dst
        return self.dst.map(lambda p: p + rest)

    def rewrite_cost(self, path: Path) -> int:
        """Work units (``naming.limits``) of rewriting ``path``: the nodes and segments
        of the tree :meth:`rewrite` creates, known before creating it."""
        rest = len(path) - len(self.prefix.elems)
        if not rest:
            return 1  # dst itself, shared
        dst = self.dst
        if isinstance(dst, Leaf) and isinstance(dst.value, Path):
            return 1 + len(dst.value) + rest  # = tree_size: the common case, without a walk
        try:
            units, leaves = self.__dict__["_size"]
        except KeyError:
            units, leaves = tree_size(dst)
            object.__setattr__(self, "_size", (units, leaves))
        return units + leaves * rest

    def show(self) -> str:
        return f"{self.prefix.show()} => {show_tree(self.dst)}"

    def __str__(self) -> str:
        return self.show()


@dataclass(frozen=True)
class Dtab:
    """An ordered, immutable table of rules (later rules take precedence)."""

    dentries: tuple[Dentry, ...] = ()

    def __hash__(self) -> int:
        # Dtabs key the interpreter's and the router's caches: hash the rules once.
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash(self.dentries)
            object.__setattr__(self, "_hash", value)
            return value

    @classmethod
    def read(cls, text: str) -> Dtab:
        """Parse ``text``; raises :class:`DtabError` saying what is wrong and where.

        Recently read texts are remembered: the same ``l5d-dtab`` header on every request
        of a client is parsed once.
        """
        if not isinstance(text, str) or len(text) > _CACHED_TEXT_MAX:
            from l5d_twisted.naming.parser import parse_dtab

            return parse_dtab(text)
        return _read_cached(text)

    @classmethod
    def empty(cls) -> Dtab:
        return _EMPTY_DTAB

    @classmethod
    def of(cls, dentries: Sequence[Dentry]) -> Dtab:
        return cls(tuple(dentries))

    def show(self) -> str:
        return ";".join(d.show() for d in self.dentries)

    def show_lines(self) -> str:
        """One rule per line, each ending with ``;`` (for humans; reads back equal)."""
        return "".join(d.show() + ";\n" for d in self.dentries)

    def __str__(self) -> str:
        return self.show()

    def __add__(self, other: Dtab) -> Dtab:
        if not other.dentries:
            return self
        if not self.dentries:
            return other
        return Dtab(self.dentries + other.dentries)

    def __iter__(self) -> Iterator[Dentry]:
        return iter(self.dentries)

    def __len__(self) -> int:
        return len(self.dentries)

    def __bool__(self) -> bool:
        return bool(self.dentries)

    def matching(
        self, path: Path, budget: BindBudget | None = None
    ) -> list[tuple[Dentry, NameTree[Path]]]:
        """The rules matching ``path``, latest first, each with its rewritten tree.

        With a ``budget``, the rules examined and the trees created are charged to it
        (before creating them), which raises ``BindingLimitError`` when it runs out.
        """
        candidates = self._candidates(path)
        if budget is not None:
            budget.charge(1 + len(candidates) // _RULES_PER_UNIT, path)
        found = []
        for dentry in candidates:
            if dentry.prefix.matches(path):
                if budget is not None:
                    budget.charge(dentry.rewrite_cost(path), path)
                found.append((dentry, dentry._rewrite_matched(path)))
        return found

    def _candidates(self, path: Path) -> Sequence[Dentry]:
        """The rules that may match ``path``, latest first: those whose prefix starts with
        its first segment, a wildcard or nothing.  A dtab of a thousand rules for other
        names costs a lookup nothing, and binding through it stays fast."""
        try:
            index = self.__dict__["_index"]
        except KeyError:
            index = _Index(self.dentries)
            object.__setattr__(self, "_index", index)
        if path.is_empty:
            return index.latest_first
        if not index.loose:
            return index.plain.get(path.segments[0], ())
        same = index.exact.get(path.segments[0])
        if not same:
            return index.loose_plain
        return [d for _, d in sorted(same + index.loose, key=_latest_first)]

    def lookup(self, path: Path, budget: BindBudget | None = None) -> NameTree[Path]:
        """What one delegation step makes of ``path``: NEG if no rule matches, the one
        rewritten tree, or an ``Alt`` of them (latest rule first) so that the interpreter
        falls back to earlier rules when a later one is negative."""
        found = self.matching(path, budget)
        if not found:
            return NEG
        if len(found) == 1:
            return found[0][1]
        return Alt(tuple(tree for _, tree in found))


_EMPTY_DTAB = Dtab(())
# Parsed texts are kept for headers a client repeats (parsing 4 KB takes ~3 ms).  A parsed
# dtab takes ~40 times its text in memory: the cache is bounded by the characters it
# holds (64 Ki: ~2.7 MB parsed; 16 texts of 4 KB, or 512 of a rule or two) as well as by
# count; 512 texts of up to 4 KB each could hold ~150 MB.
_CACHED_TEXT_MAX = 4096
_CACHE_TEXTS = 512
_CACHE_CHARS = 64 * 1024
_cache: OrderedDict[str, Dtab] = OrderedDict()
_cache_chars = [0]
_RULES_PER_UNIT = 8  # = naming.limits.RULES_PER_UNIT (imported lazily there)

_Indexed = tuple[int, Dentry]


def _latest_first(entry: _Indexed) -> int:
    return -entry[0]


class _Index:
    """Rules by the first segment of their prefix, latest first (``plain``: the rules,
    ``exact``: with their positions); ``loose`` are those matching any first segment
    (``/`` or ``/*/...``), merged in by position when there are any."""

    __slots__ = ("plain", "exact", "loose", "loose_plain", "latest_first")

    def __init__(self, dentries: tuple[Dentry, ...]) -> None:
        # Built for every new dtab (a request's dtab joined to the router's): keep the
        # common case, no wildcard or '/' prefix, to one pass.
        plain: dict[str, list[Dentry]] = {}
        loose = False
        for dentry in reversed(dentries):
            elems = dentry.prefix.elems
            if elems and elems[0] is not None:
                plain.setdefault(elems[0], []).append(dentry)
            else:
                loose = True
        self.plain = plain
        self.latest_first = dentries[::-1]
        self.exact: dict[str, list[_Indexed]] = {}
        self.loose: list[_Indexed] = []
        self.loose_plain: list[Dentry] = []
        if loose:
            for position in range(len(dentries) - 1, -1, -1):
                dentry = dentries[position]
                first = dentry.prefix.elems[0] if dentry.prefix.elems else None
                (self.loose if first is None else self.exact.setdefault(first, [])).append(
                    (position, dentry)
                )
            self.loose_plain = [d for _, d in self.loose]


def tree_size(tree: NameTree[Any]) -> tuple[int, int]:
    """``(units, leaves)`` of a tree of paths: its nodes plus its paths' segments, and
    how many path leaves it has (walked with a stack, not recursion)."""
    units = leaves = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        units += 1
        if isinstance(node, Leaf):
            leaves += 1
            value = node.value
            units += len(value) if isinstance(value, Path) else 0
        elif isinstance(node, Alt):
            stack.extend(node.trees)
        elif isinstance(node, Union):
            stack.extend(b.tree for b in node.branches)
    return units, leaves


def _read_cached(text: str) -> Dtab:
    dtab = _cache.get(text)
    if dtab is not None:
        _cache.move_to_end(text)
        return dtab
    from l5d_twisted.naming.parser import parse_dtab

    dtab = parse_dtab(text)  # raises DtabError: failures are not kept
    _cache[text] = dtab
    _cache_chars[0] += len(text)
    while _cache_chars[0] > _CACHE_CHARS or len(_cache) > _CACHE_TEXTS:
        old, _ = _cache.popitem(last=False)
        _cache_chars[0] -= len(old)
    return dtab


# --- printing name trees -------------------------------------------------------------
# The grammar has three levels: alternation ``a | b`` binds loosest, then union
# ``w * a & w * b``, then simple trees (paths, ``~ ! $`` and parenthesised trees).  A
# nested tree is parenthesised whenever printing it flat would parse back differently.


def show_tree(tree: NameTree[Path]) -> str:
    return _show_alt(tree)


def _show_alt(tree: NameTree[Path]) -> str:
    if isinstance(tree, Alt) and len(tree.trees) >= 2:
        return " | ".join(_show_union(t) for t in tree.trees)
    return _show_union(tree)


def _show_union(tree: NameTree[Path]) -> str:
    if isinstance(tree, Union) and len(tree.branches) >= 2:
        return " & ".join(_show_weight(b.weight) + _show_simple(b.tree) for b in tree.branches)
    if isinstance(tree, Union) and len(tree.branches) == 1 and tree.branches[0].weight != 1.0:
        b = tree.branches[0]
        return _show_weight(b.weight) + _show_simple(b.tree)
    return _show_simple(tree)


def _show_weight(weight: float) -> str:
    if weight == 1.0:
        return ""
    return f"{weight!r} * "


def _show_simple(tree: NameTree[Path]) -> str:
    if isinstance(tree, Leaf):
        value = tree.value
        return value.show() if isinstance(value, Path) else str(value)
    if tree is NEG:
        return "~"
    if tree is FAIL:
        return "!"
    if tree is EMPTY:
        return "$"
    if isinstance(tree, Alt) and len(tree.trees) == 1:
        # A one-branch Alt only arises from "(x)" with nothing else; it means x.
        return _show_simple(tree.trees[0])
    if isinstance(tree, Alt) and not tree.trees:
        return "~"
    if isinstance(tree, Union) and not tree.branches:
        return "~"
    if isinstance(tree, Union) and len(tree.branches) == 1 and tree.branches[0].weight == 1.0:
        # Weight 1 on its own means nothing: the branch itself (weighted ones print above).
        return _show_simple(tree.branches[0].tree)
    return "(" + _show_alt(tree) + ")"
