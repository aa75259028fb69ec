"""namerd's documents read into trees, address sets, dtabs and delegations, and refused
(FormatError, nothing applied) when they break the format or a bound."""

from __future__ import annotations

import json
from typing import Any

import pytest

from l5d_twisted.interpreters import namerd_json as nj
from l5d_twisted.naming.addr import ADDR_NEG, AddrBound, AddrFailed, BoundName
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, Var


def bound_for(bid: Path, residual: Path, addr_doc: Any) -> BoundName:
    return BoundName(bid, Var(None), residual)  # type: ignore[arg-type]


def leaf(bid: str, residual: str = "/") -> dict[str, Any]:
    return {"type": "leaf", "bound": {"id": bid, "path": residual}}


def test_bound_trees_of_every_type() -> None:
    doc = {
        "type": "alt",
        "alt": [
            {"type": "neg"},
            {
                "type": "union",
                "union": [
                    {"weight": 0.9, "tree": leaf("/#/io.l5d.fs/v1", "/x")},
                    {
                        "weight": 0.1,
                        "tree": {"type": "delegate", "delegate": leaf("/#/io.l5d.fs/v2")},
                    },
                ],
            },
            {"type": "fail"},
            {"type": "empty"},
            {"type": "transformation", "name": "t", "tree": leaf("/#/io.l5d.fs/v3")},
        ],
    }
    state = nj.parse_bound_tree(doc, bound_for)
    assert isinstance(state, Ok)
    tree = state.value
    assert isinstance(tree, Alt)
    assert tree.trees[0] is NEG and tree.trees[2] is FAIL and tree.trees[3] is EMPTY
    union = tree.trees[1]
    assert isinstance(union, Union)
    first = union.branches[0].tree
    assert isinstance(first, Leaf)
    assert (first.value.id.show(), first.value.residual.show()) == ("/#/io.l5d.fs/v1", "/x")
    assert [b.weight for b in union.branches] == [0.9, 0.1]
    assert nj.parse_bound_tree({"type": "pending"}, bound_for) is None
    failed = nj.parse_bound_tree({"type": "exception", "message": "loop"}, bound_for)
    assert isinstance(failed, Failed) and "loop" in str(failed.error)


def test_address_sets() -> None:
    doc = {
        "type": "bound",
        "addrs": [
            {"ip": "10.0.0.1", "port": 80, "meta": {"nodeName": "n1", "endpoint_addr_weight": 3}},
            {"ip": "::1", "port": 81},
        ],
        "meta": {"zone": "a", "nested": {"x": [1]}},
    }
    addr = nj.parse_addr(doc)
    assert isinstance(addr, AddrBound)
    by_host = {a.host: a for a in addr.addresses}
    assert by_host["10.0.0.1"].weight == 3.0
    assert by_host["10.0.0.1"].meta == (("nodeName", "n1"),)
    assert by_host["::1"].port == 81
    assert dict(addr.meta) == {"zone": "a", "nested": '{"x": [1]}'}  # kept hashable
    assert nj.parse_addr({"type": "neg"}) == ADDR_NEG
    assert nj.parse_addr({"type": "failed", "cause": "boom"}) == AddrFailed("boom")
    assert nj.parse_addr({"type": "pending"}) is None


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = leaf("/#/x")
    for _ in range(depth):
        doc = {"type": "alt", "alt": [doc]}
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"no": "type"},
        {"type": "tree?"},
        {"type": "leaf"},
        {"type": "leaf", "bound": {"id": "not a path"}},
        {"type": "union", "union": [{"tree": {"type": "neg"}}]},
        {"type": "union", "union": [{"weight": -1, "tree": {"type": "neg"}}]},
        {"type": "alt", "alt": {"type": "neg"}},
        nested(40),
        {"type": "union", "union": [{"weight": 1, "tree": {"type": "neg"}}] * 1001},
        {"type": "alt", "alt": [{"type": "alt", "alt": [leaf("/#/x")] * 1000}] * 11},
    ],
    ids=lambda d: json.dumps(d)[:40],
)
def test_bad_or_too_large_trees_are_refused(doc: Any) -> None:
    with pytest.raises(nj.FormatError):
        nj.parse_bound_tree(doc, bound_for)


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "bound", "addrs": [{"ip": "1.2.3.4", "port": 0}]},
        {"type": "bound", "addrs": [{"ip": "1.2.3.4", "port": "80"}]},
        {"type": "bound", "addrs": [{"port": 80}]},
        {
            "type": "bound",
            "addrs": [{"ip": "1.2.3.4", "port": 80, "meta": {"endpoint_addr_weight": "x"}}],
        },
        {"type": "bound", "addrs": "1.2.3.4:80"},
        {"type": "bound", "addrs": [{"ip": "10.0.0.1", "port": 80}] * (nj.MAX_ADDRESSES + 1)},
        {"type": "maybe"},
    ],
    ids=lambda d: json.dumps(d)[:40],
)
def test_bad_or_too_large_address_sets_are_refused(doc: Any) -> None:
    with pytest.raises(nj.FormatError):
        nj.parse_addr(doc)


def test_lines_that_are_not_json_or_nest_too_deep_are_format_errors() -> None:
    with pytest.raises(nj.FormatError):
        nj.decode(b'{"type": ')
    with pytest.raises(nj.FormatError):
        nj.parse_bound_tree(nj.decode(b"[" * 100_000 + b"]" * 100_000), bound_for)


def test_dtabs_and_delegations() -> None:
    dtab = nj.parse_dtab(
        [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}, {"prefix": "/a", "dst": "/b | /c"}]
    )
    assert dtab.show() == "/svc => /#/io.l5d.fs;/a => /b | /c"
    with pytest.raises(nj.FormatError):
        nj.parse_dtab([{"prefix": "/svc", "dst": "=> =>"}])
    node = nj.parse_delegate(
        {
            "type": "delegate",
            "path": "/svc/a",
            "delegate": {
                "type": "alt",
                "path": "/#/x/a",
                "dentry": {"prefix": "/svc", "dst": "/#/x | /#/y"},
                "alt": [
                    {"type": "neg", "path": "/#/x/a"},
                    {
                        "type": "leaf",
                        "path": "/#/y/a",
                        "bound": {"id": "/#/y/a", "path": "/", "addr": {"type": "neg"}},
                    },
                ],
            },
        }
    )
    assert node.type == "delegate"
    alt = node.children[0]
    assert (alt.type, alt.chosen, alt.dentry is not None) == ("alt", 1, True)
    assert alt.children[1].bound is not None and alt.children[1].bound.id.show() == "/#/y/a"
