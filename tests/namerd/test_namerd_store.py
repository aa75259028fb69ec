"""The io.l5d.inMemory dtab store: versions, compare-and-set, live views, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from l5d_twisted.namerd.store import (
    InMemoryDtabStore,
    NamespaceExists,
    NamespaceNotFound,
    StoreFull,
    VersionedDtab,
    VersionMismatch,
    namespace_problem,
    read_version,
    show_version,
)
from l5d_twisted.naming.dtab import Dtab

A = Dtab.read("/svc => /#/io.l5d.fs")
B = Dtab.read("/svc => /#/io.l5d.fs/b")


def result(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the in-memory store answers at once"
    return out[0]


def error_of(d: Any) -> type:
    failure = result(d)
    assert hasattr(failure, "value"), failure
    return type(failure.value)


def test_initial_namespaces_have_namerds_first_version() -> None:
    store = InMemoryDtabStore({"default": A})
    versioned = store.get("default")
    assert versioned == VersionedDtab(A, b"\x00" * 7 + b"\x01")
    assert versioned.version_text == "AAAAAAAAAAE="  # namerd's version 1
    assert store.list().sample() == frozenset({"default"})


def test_update_with_the_current_version_wins_a_stale_one_changes_nothing() -> None:
    store = InMemoryDtabStore({"default": A})
    v1 = store.get("default").version
    written = result(store.update("default", B, v1))
    assert written.dtab == B and written.version != v1
    assert error_of(store.update("default", A, v1)) is VersionMismatch
    assert store.get("default") == written


def test_two_writers_with_one_version_exactly_one_wins() -> None:
    store = InMemoryDtabStore({"default": A})
    v = store.get("default").version
    outcomes = [result(store.update("default", d, v)) for d in (A, B)]
    wins = [o for o in outcomes if isinstance(o, VersionedDtab)]
    assert len(wins) == 1
    assert store.get("default").dtab == A


def test_create_delete_and_their_errors() -> None:
    store = InMemoryDtabStore()
    assert error_of(store.delete("x")) is NamespaceNotFound
    assert error_of(store.update("x", A, b"\x00")) is NamespaceNotFound
    result(store.create("x", A))
    assert error_of(store.create("x", B)) is NamespaceExists
    assert result(store.delete("x")) is None
    assert store.get("x") is None and store.list().sample() == frozenset()


def test_a_recreated_namespace_never_reuses_a_version() -> None:
    """namerd restarts a re-created namespace at version 1; a writer holding the old
    version 1 would then overwrite the new dtab.  Here versions only go up."""
    store = InMemoryDtabStore()
    old = result(store.create("x", A)).version
    result(store.delete("x"))
    result(store.create("x", A))
    assert error_of(store.update("x", B, old)) is VersionMismatch


def test_put_creates_or_overwrites_whatever_the_version() -> None:
    store = InMemoryDtabStore()
    first = result(store.put("x", A))
    second = result(store.put("x", B))
    assert second.version > first.version and store.get("x").dtab == B


def test_observe_follows_writes_and_deletes() -> None:
    store = InMemoryDtabStore()
    seen: list[Any] = []
    handle = store.observe("x").observe(seen.append)
    result(store.create("x", A))
    result(store.put("x", B))
    result(store.delete("x"))
    assert [v.dtab if v else None for v in seen] == [None, A, B, None]
    handle.close()


def test_watching_a_missing_namespace_leaves_nothing_behind() -> None:
    store = InMemoryDtabStore()
    for i in range(100):
        store.observe(f"ns{i}").observe(lambda _: None).close()
    assert store._vars == {}  # noqa: SLF001 - the point of the test


def test_the_number_of_namespaces_is_bounded() -> None:
    store = InMemoryDtabStore(max_namespaces=2)
    result(store.create("a", A))
    result(store.put("b", A))
    assert error_of(store.create("c", A)) is StoreFull
    assert error_of(store.put("c", A)) is StoreFull
    result(store.put("b", B))  # an existing namespace may still change


@pytest.mark.parametrize(
    "ns, ok",
    [
        ("default", True),
        ("a-b_c.d", True),
        ("", False),
        ("a/b", False),
        ("-x", False),
        ("x" * 101, False),
    ],
)
def test_namespace_names(ns: str, ok: bool) -> None:
    assert (namespace_problem(ns) is None) == ok


def test_versions_read_back_from_if_match() -> None:
    v = b"\x00\x00\x00\x00\x00\x00\x00\x07"
    assert read_version(show_version(v)) == v
    assert read_version(f'"{show_version(v)}"') == v
    assert read_version(f'W/"{show_version(v)}"') == v
    assert read_version("not base64!") is None
