"""Parsing linkerd 1's dtab syntax.

Grammar (whitespace and ``#`` comments allowed between tokens)::

    dtab     := [dentry] (';' [dentry])*
    dentry   := prefix '=>' tree
    prefix   := '/' | ('/' (segment | '*'))+
    tree     := union ('|' union)*             -- alternation: first non-negative wins
    union    := weighted ('&' weighted)*       -- traffic split (default weight 1)
    weighted := [number '*'] simple
    simple   := path | '~' | '!' | '$' | '(' tree ')'
    path     := '/' | ('/' segment)+
    segment  := ( [A-Za-z0-9_:.#$%-] | '\\x' hex hex )+

A ``#`` starts a comment only where a token may start, so ``/#/io.l5d.fs`` is a path.
Every error is a :class:`DtabError` naming what was expected and the offset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar

from l5d_twisted.naming.dtab import Dentry, Dtab, DtabError, Prefix, PrefixElem
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from l5d_twisted.naming.path import Path

T = TypeVar("T")

_SEGMENT_CHAR = re.compile(r"[A-Za-z0-9_:.#$%\-]")
_SEGMENT_RUN = re.compile(r"[A-Za-z0-9_:.#$%\-]+")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_HEX = "0123456789abcdefABCDEF"
# Each '(' costs a few stack frames: refuse absurd nesting (an l5d-dtab header of a few
# hundred '(' fits in 8 KB) with a DtabError rather than Python's RecursionError.
MAX_NESTING = 50
# What may follow a path: the end, space, a comment or an operator of the grammar.
_AFTER_PATH = set(";|&)=#")


def parse_dtab(text: str) -> Dtab:
    parser = _Parser(text)
    dentries = []
    while True:
        parser.skip_space()
        if parser.at_end():
            break
        if parser.peek() == ";":
            parser.pos += 1  # empty rule: tolerated, like a trailing ';'
            continue
        dentries.append(parser.dentry())
        parser.skip_space()
        if parser.at_end():
            break
        parser.expect(";", "expected ';' or the end of the dtab")
    return Dtab(tuple(dentries))


def parse_dentry(text: str) -> Dentry:
    return _parse_whole(text, lambda parser: parser.dentry())


def parse_tree(text: str) -> NameTree[Path]:
    return _parse_whole(text, lambda parser: parser.tree())


def parse_path(text: str) -> Path:
    return _parse_whole(text, lambda parser: parser.path())


def parse_prefix(text: str) -> Prefix:
    return _parse_whole(text, lambda parser: parser.prefix())


def _parse_whole(text: str, parse: Callable[[_Parser], T]) -> T:
    """``parse`` applied to all of ``text``: only space or comments may be left over."""
    parser = _Parser(text)
    parser.skip_space()
    result = parse(parser)
    parser.expect_end()
    return result


class _Parser:
    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise DtabError(f"expected text, got {type(text).__name__}", repr(text), 0)
        self.text = text
        self.pos = 0
        self.nesting = 0  # open '(' around the current position

    # --- characters -------------------------------------------------------------------
    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, problem: str, offset: int | None = None) -> DtabError:
        return DtabError(problem, self.text, self.pos if offset is None else offset)

    def found(self) -> str:
        c = self.peek()
        return f"found {c!r}" if c else "found the end"

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c.isspace():
                self.pos += 1
            elif c == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            else:
                break

    def expect(self, token: str, problem: str) -> None:
        self.skip_space()
        if not self.text.startswith(token, self.pos):
            raise self.fail(f"{problem}, {self.found()}")
        self.pos += len(token)

    def expect_end(self) -> None:
        self.skip_space()
        if not self.at_end():
            raise self.fail(f"unexpected {self.peek()!r} after the end")

    # --- rules ------------------------------------------------------------------------
    def dentry(self) -> Dentry:
        prefix = self.prefix()
        self.expect("=>", "expected '=>' after the prefix")
        tree = self.tree()
        return Dentry(prefix, tree)

    def prefix(self) -> Prefix:
        self.skip_space()
        if self.peek() != "/":
            raise self.fail(f"expected a prefix starting with '/', {self.found()}")
        elems: list[PrefixElem] = []
        self.pos += 1
        if not self._segment_starts() and self.peek() != "*":
            self._check_path_end()
            return Prefix(())
        while True:
            if self.peek() == "*":
                start = self.pos
                self.pos += 1
                if self._segment_starts():
                    raise self.fail("'*' must be a whole prefix segment", start)
                elems.append(None)
            else:
                elems.append(self.segment())
                if self.peek() == "*":
                    raise self.fail("'*' must be a whole prefix segment")
            if self.peek() != "/":
                self._check_path_end()
                return Prefix(tuple(elems))
            self.pos += 1
            if not (self._segment_starts() or self.peek() == "*"):
                raise self.fail(f"expected a segment after '/', {self.found()}")

    # --- trees ------------------------------------------------------------------------
    def tree(self) -> NameTree[Path]:
        trees = [self.union()]
        while True:
            self.skip_space()
            if self.peek() != "|":
                break
            self.pos += 1
            trees.append(self.union())
        return trees[0] if len(trees) == 1 else Alt(tuple(trees))

    def union(self) -> NameTree[Path]:
        branches = [self.weighted()]
        while True:
            self.skip_space()
            if self.peek() != "&":
                break
            self.pos += 1
            branches.append(self.weighted())
        if len(branches) == 1 and branches[0].weight == 1.0:
            return branches[0].tree
        return Union(tuple(branches))

    def weighted(self) -> Weighted[Path]:
        self.skip_space()
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            return Weighted(1.0, self.simple())
        start = self.pos
        weight = float(match.group())
        if not math.isfinite(weight):
            raise self.fail(f"weight {match.group()!r} is not a finite number", start)
        self.pos = match.end()
        self.expect("*", "expected '*' after the weight")
        return Weighted(weight, self.simple())

    def simple(self) -> NameTree[Path]:
        self.skip_space()
        c = self.peek()
        if c == "/":
            return Leaf(self.path())
        if c == "(":
            if self.nesting >= MAX_NESTING:
                raise self.fail(f"parentheses nested more than {MAX_NESTING} deep")
            self.pos += 1
            self.nesting += 1
            tree = self.tree()
            self.expect(")", "expected ')'")
            self.nesting -= 1
            return tree
        if c == "~":
            self.pos += 1
            return NEG
        if c == "!":
            self.pos += 1
            return FAIL
        if c == "$":
            self.pos += 1
            return EMPTY
        raise self.fail(f"expected a name (a path, '~', '!', '$' or '('), {self.found()}")

    # --- paths ------------------------------------------------------------------------
    def path(self) -> Path:
        if self.peek() != "/":
            raise self.fail(f"expected a path starting with '/', {self.found()}")
        self.pos += 1
        self._no_wildcard()
        if not self._segment_starts():
            self._check_path_end()
            return Path(())
        segments = []
        while True:
            segments.append(self.segment())
            if self.peek() != "/":
                self._check_path_end()
                return Path(tuple(segments))
            self.pos += 1
            self._no_wildcard()
            if not self._segment_starts():
                raise self.fail(f"expected a segment after '/', {self.found()}")

    def _no_wildcard(self) -> None:
        """A ``*`` segment outside a prefix: say why it is wrong (a common slip)."""
        if self.peek() == "*":
            raise self.fail(
                "'*' matches a segment only in a rule's prefix (left of '=>'); write \\x2a for a literal '*'"
            )

    def _check_path_end(self) -> None:
        c = self.peek()
        if c and not c.isspace() and c not in _AFTER_PATH:
            raise self.fail(
                f"invalid character {c!r} in a path (write other characters as \\xHH escapes)"
            )

    def _segment_starts(self) -> bool:
        c = self.peek()
        return bool(c) and (c == "\\" or _SEGMENT_CHAR.match(c) is not None)

    def segment(self) -> str:
        text = self.text
        out = bytearray()
        while self.pos < len(text):
            run = _SEGMENT_RUN.match(text, self.pos)
            if run is not None:
                out += run.group().encode("ascii")
                self.pos = run.end()
            elif text[self.pos] == "\\":
                escape = text[self.pos : self.pos + 4]
                if (
                    len(escape) < 4
                    or escape[1] != "x"
                    or escape[2] not in _HEX
                    or escape[3] not in _HEX
                ):
                    raise self.fail("bad escape in path segment (expected \\xHH)")
                out.append(int(escape[2:], 16))
                self.pos += 4
            else:
                break
        return out.decode("utf-8", errors="replace")
