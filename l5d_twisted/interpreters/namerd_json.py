"""namerd's HTTP wire format, read: bound trees, address sets, dtabs, delegation trees.

What ``io.l5d.httpController`` sends (linkerd 1's ``DelegateApiHandler`` JSON, one
document per line on a ``?watch=true`` stream):

* ``/api/1/bind/<ns>``: a bound tree, ``{"type": "leaf", "bound": {"id", "path", "addr"}}``,
  ``{"type": "alt", "alt": [...]}``, ``{"type": "union", "union": [{"weight", "tree"}]}``,
  ``{"type": "neg" | "fail" | "empty"}``; also ``delegate`` and ``transformation`` wrappers
  (their inner tree counts), ``exception`` (binding failed at namerd, ``message``) and
  ``pending`` (namerd does not know yet).
* ``/api/1/addr/<ns>``: ``{"type": "bound", "addrs": [{"ip", "port", "meta"}], "meta"}``,
  ``{"type": "neg"}``, ``{"type": "failed", "cause"}``, ``{"type": "pending"}``.  An
  address's weight travels in its meta as ``endpoint_addr_weight`` (Finagle's key).
* ``/api/1/dtabs/<ns>`` (JSON): ``[{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]``.
* ``/api/1/delegate/<ns>``: the delegator's tree (``path`` and ``dentry`` on every node).

Everything here is bounded: nesting and union width by ``naming.limits``, the leaves of a
tree and the addresses of a set by the constants below.  A document that breaks the format
or a bound raises :class:`FormatError`, and the caller keeps what it had.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from l5d_twisted.naming.addr import (
    ADDR_NEG,
    Addr,
    AddrBound,
    AddrFailed,
    BoundName,
    make_address,
)
from l5d_twisted.naming.dtab import Dentry, Dtab, DtabError
from l5d_twisted.naming.explanation import Node
from l5d_twisted.naming.limits import MAX_TREE_DEPTH, MAX_UNION_WIDTH, BindingLimitError
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from l5d_twisted.naming.path import EMPTY as EMPTY_PATH
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.naming.var import PENDING, Failed, Ok, State, Var

# Leaves of one bound tree and addresses of one set: far above real ones (a canary split
# has 2 or 3 leaves; a large service a few thousand endpoints), low enough that a broken
# namerd cannot make one update cost more than a few MB.
MAX_LEAVES = 10_000
MAX_ADDRESSES = 100_000
MAX_RULES = 10_000
WEIGHT_META = "endpoint_addr_weight"


class FormatError(ValueError):
    """A document that is not namerd's format (or exceeds a bound)."""


class NamerdBindError(Exception):
    """namerd answered that binding failed (an ``exception`` tree)."""


class NamerdRefusedBinding(BindingLimitError):
    """namerd refused to bind (400: a bad or too costly dtab).  A binding limit error, so
    that a route bound with a request's dtab answers 400 as when binding in process."""


def decode(line: bytes) -> Any:
    """One line of a stream as JSON; FormatError if it is not."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"not JSON: {str(e)[:200]}") from None


def _type(doc: Any) -> str:
    if not isinstance(doc, dict):
        raise FormatError(f"expected a JSON object, got {type(doc).__name__}")
    kind = doc.get("type")
    if not isinstance(kind, str):
        raise FormatError("an object without a 'type'")
    return kind


def _path(value: Any, what: str, default: Path | None = None) -> Path:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise FormatError(f"{what} is not a path string")
    try:
        return Path.read(value)
    except PathError as e:
        raise FormatError(f"{what} {value[:100]!r} is not a path: {e}") from None


# --- address sets ----------------------------------------------------------------------


def _meta(value: Any) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise FormatError("meta is not an object")
    items = []
    for k, v in value.items():
        # kept hashable (an Address is a frozen value): nested values as their JSON text
        items.append(
            (str(k), v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v))
        )
    return tuple(sorted(items))


def parse_addr(doc: Any) -> Addr | None:
    """An address set; None for ``pending`` (nothing to apply)."""
    kind = _type(doc)
    if kind == "bound":
        addrs = doc.get("addrs", [])
        if not isinstance(addrs, list):
            raise FormatError("addrs is not a list")
        if len(addrs) > MAX_ADDRESSES:
            raise FormatError(f"{len(addrs)} addresses, more than {MAX_ADDRESSES}")
        found = []
        for a in addrs:
            if not isinstance(a, dict):
                raise FormatError("an address is not an object")
            ip, port = a.get("ip"), a.get("port")
            if not isinstance(ip, str) or not ip or len(ip) > 255:
                raise FormatError("an address without an ip")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise FormatError(f"an address with a bad port: {str(port)[:20]}")
            meta = dict(_meta(a.get("meta")))
            weight = meta.pop(WEIGHT_META, 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise FormatError("a bad endpoint weight")
            found.append(make_address(ip, port, float(weight), meta))
        return AddrBound(frozenset(found), _meta(doc.get("meta")))
    if kind == "neg":
        return ADDR_NEG
    if kind == "failed":
        cause = doc.get("cause")
        return AddrFailed(str(cause)[:1000] if cause is not None else "failed at namerd")
    if kind == "pending":
        return None
    raise FormatError(f"unknown address type {kind[:40]!r}")


# --- bound trees -----------------------------------------------------------------------

BoundFor = Callable[[Path, Path, Any], BoundName]
"""``(id, residual, addr document or None) -> BoundName``: the interpreter's cache."""


class _Count:
    __slots__ = ("leaves",)

    def __init__(self) -> None:
        self.leaves = 0


def parse_bound_tree(doc: Any, bound_for: BoundFor) -> State | None:
    """A bind document as an activity state: Ok(tree), Failed (namerd's ``exception``),
    or None (``pending``: keep what we have)."""
    kind = _type(doc)
    if kind == "pending":
        return None
    if kind == "exception":
        message = doc.get("message")
        return Failed(NamerdBindError(f"namerd: {str(message)[:1000]}"))
    return Ok(_tree(doc, bound_for, 0, _Count()))


def _tree(doc: Any, bound_for: BoundFor, level: int, count: _Count) -> NameTree[BoundName]:
    if level > MAX_TREE_DEPTH:
        raise FormatError(f"a tree nested more than {MAX_TREE_DEPTH} deep")
    kind = _type(doc)
    if kind == "leaf":
        count.leaves += 1
        if count.leaves > MAX_LEAVES:
            raise FormatError(f"a tree of more than {MAX_LEAVES} leaves")
        bound = doc.get("bound")
        if not isinstance(bound, dict):
            raise FormatError("a leaf without 'bound'")
        bid = _path(bound.get("id"), "a bound id")
        residual = _path(bound.get("path"), "a residual path", EMPTY_PATH)
        return Leaf(bound_for(bid, residual, bound.get("addr")))
    if kind == "alt":
        alts = doc.get("alt")
        if not isinstance(alts, list):
            raise FormatError("an alt without a list")
        if len(alts) > MAX_UNION_WIDTH:
            raise FormatError(f"an alt of more than {MAX_UNION_WIDTH} branches")
        return Alt(tuple(_tree(t, bound_for, level + 1, count) for t in alts))
    if kind == "union":
        branches = doc.get("union")
        if not isinstance(branches, list):
            raise FormatError("a union without a list")
        if len(branches) > MAX_UNION_WIDTH:
            raise FormatError(f"a union of more than {MAX_UNION_WIDTH} branches")
        out = []
        for b in branches:
            if not isinstance(b, dict):
                raise FormatError("a union branch is not an object")
            weight = b.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise FormatError("a union branch without a weight")
            out.append(Weighted(float(weight), _tree(b.get("tree"), bound_for, level + 1, count)))
        return Union(tuple(out))
    if kind == "neg":
        return NEG
    if kind == "fail":
        return FAIL
    if kind == "empty":
        return EMPTY
    if kind == "delegate":
        return _tree(doc.get("delegate"), bound_for, level + 1, count)
    if kind == "transformation":
        return _tree(doc.get("tree"), bound_for, level + 1, count)
    if kind == "exception":
        raise FormatError(f"binding failed at namerd: {str(doc.get('message'))[:200]}")
    raise FormatError(f"unknown tree type {kind[:40]!r}")


# --- dtabs -----------------------------------------------------------------------------


def parse_dtab(doc: Any) -> Dtab:
    """``[{"prefix", "dst"}]`` -> Dtab."""
    if not isinstance(doc, list):
        raise FormatError("a dtab is not a JSON list")
    if len(doc) > MAX_RULES:
        raise FormatError(f"a dtab of more than {MAX_RULES} rules")
    rules = []
    for d in doc:
        if not isinstance(d, dict) or not isinstance(d.get("prefix"), str):
            raise FormatError("a dtab rule without a prefix")
        if not isinstance(d.get("dst"), str):
            raise FormatError("a dtab rule without a dst")
        rules.append(f"{d['prefix']} => {d['dst']}")
    try:
        return Dtab.read(";".join(rules))
    except (DtabError, ValueError, RecursionError) as e:
        raise FormatError(f"a bad dtab: {str(e)[:200]}") from None


# --- delegation trees (the admin delegator) ---------------------------------------------


def parse_delegate(doc: Any, level: int = 0, count: _Count | None = None) -> Node:
    """A ``/api/1/delegate`` tree as the explanation nodes the delegator shows."""
    count = count if count is not None else _Count()
    if level > 2 * MAX_TREE_DEPTH + 100:
        raise FormatError("a delegation tree nested too deep")
    kind = _type(doc)
    count.leaves += 1
    if count.leaves > MAX_LEAVES:
        raise FormatError(f"a delegation tree of more than {MAX_LEAVES} nodes")
    path = _optional_path(doc.get("path"))
    dentry = _dentry(doc.get("dentry"))
    if kind == "delegate":
        child = parse_delegate(doc.get("delegate"), level + 1, count)
        return Node("delegate", path, dentry, (child,))
    if kind == "transformation":
        child = parse_delegate(doc.get("tree"), level + 1, count)
        return Node("delegate", path, dentry, (child,), message=f"transformed by {doc.get('name')}")
    if kind == "alt":
        alts = doc.get("alt")
        if not isinstance(alts, list):
            raise FormatError("an alt without a list")
        children = tuple(parse_delegate(t, level + 1, count) for t in alts)
        chosen = doc.get("chosen")
        if (
            not isinstance(chosen, int)
            or isinstance(chosen, bool)
            or not 0 <= chosen < len(children)
        ):
            chosen = next((i for i, c in enumerate(children) if c.outcome != "neg"), None)
        return Node("alt", path, dentry, children, chosen=chosen)
    if kind == "union":
        branches = doc.get("union")
        if not isinstance(branches, list):
            raise FormatError("a union without a list")
        weights, children_list = [], []
        for b in branches:
            if not isinstance(b, dict):
                raise FormatError("a union branch is not an object")
            w = b.get("weight")
            weights.append(
                float(w) if isinstance(w, int | float) and not isinstance(w, bool) else 0.0
            )
            children_list.append(parse_delegate(b.get("tree"), level + 1, count))
        return Node("union", path, dentry, tuple(children_list), tuple(weights))
    if kind == "leaf":
        bound = doc.get("bound")
        if not isinstance(bound, dict):
            raise FormatError("a leaf without 'bound'")
        addr_doc = bound.get("addr")
        addr = parse_addr(addr_doc) if addr_doc is not None else None
        from l5d_twisted.naming.addr import ADDR_PENDING

        shown = addr if addr is not None else ADDR_PENDING
        name = BoundName(
            _path(bound.get("id"), "a bound id"),
            Var(shown),
            _path(bound.get("path"), "a residual path", EMPTY_PATH),
        )
        return Node("leaf", path, dentry, bound=name, addr=shown)
    if kind in ("neg", "fail", "empty", "pending"):
        return Node(kind, path, dentry)
    if kind == "exception":
        return Node("exception", path, dentry, message=str(doc.get("message"))[:1000])
    raise FormatError(f"unknown delegation type {kind[:40]!r}")


def _optional_path(value: Any) -> Path | None:
    if not isinstance(value, str):
        return None
    try:
        return Path.read(value)
    except PathError:
        return None  # "!", "~" and the like name no path


def _dentry(value: Any) -> Dentry | None:
    if not isinstance(value, dict):
        return None
    prefix, dst = value.get("prefix"), value.get("dst")
    if not isinstance(prefix, str) or not isinstance(dst, str):
        return None
    try:
        return Dentry.read(f"{prefix} => {dst}")
    except (DtabError, ValueError, RecursionError):
        return None


__all__ = [
    "PENDING",
    "FormatError",
    "NamerdBindError",
    "decode",
    "parse_addr",
    "parse_bound_tree",
    "parse_delegate",
    "parse_dtab",
]
