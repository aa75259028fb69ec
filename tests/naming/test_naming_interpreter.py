"""Binding semantics: delegation, fallback, unions, wildcards, loops, liveness, caching."""

from __future__ import annotations

from typing import Any

from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.addr import AddrBound, AddrNeg, BoundName
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.interpreter import DelegationError, Interpreter
from l5d_twisted.naming.limits import BindingLimitError
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Failed, Ok, State, Var

P = Path.read
REFERENCE = "/srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host; /host/world => /srv/world-v1;"


def k8s(**names: list[str]) -> MemoryNamer:
    return MemoryNamer(P("/io.l5d.k8s"), {f"default/http/{k}": v for k, v in names.items()})


def ok_tree(state: State) -> NameTree[Any]:
    assert isinstance(state, Ok), state
    return state.value


def leaf_id(state: State) -> str:
    tree = ok_tree(state)
    assert isinstance(tree, Leaf), tree
    return tree.value.id.show()


def test_reference_dtab_binds_services_through_the_namer() -> None:
    interp = Interpreter({P("/io.l5d.k8s"): k8s(hello=["10.0.0.1:7777"], world=["10.0.0.2:7778"])})
    dtab = Dtab.read(REFERENCE)
    assert (
        leaf_id(interp.bind(dtab, P("/svc/hello")).sample()) == "/#/io.l5d.k8s/default/http/hello"
    )
    # /host/world => /srv/world-v1 is tried first; world-v1 is unknown (neg): fall back
    assert (
        leaf_id(interp.bind(dtab, P("/svc/world")).sample()) == "/#/io.l5d.k8s/default/http/world"
    )


def test_reference_dtab_prefers_the_later_more_specific_rule() -> None:
    interp = Interpreter(
        {P("/io.l5d.k8s"): k8s(world=["10.0.0.2:7778"], **{"world-v1": ["10.0.0.3:7778"]})}
    )
    state = interp.bind(Dtab.read(REFERENCE), P("/svc/world")).sample()
    assert leaf_id(state) == "/#/io.l5d.k8s/default/http/world-v1"


def test_unknown_name_is_neg_and_unmatched_path_is_neg() -> None:
    interp = Interpreter({P("/io.l5d.k8s"): k8s()})
    assert ok_tree(interp.bind(Dtab.read(REFERENCE), P("/svc/nobody")).sample()) is NEG
    assert ok_tree(interp.bind(Dtab.read(REFERENCE), P("/other/x")).sample()) is NEG
    assert ok_tree(interp.bind(Dtab.empty(), P("/#/io.l5d.nothere/x")).sample()) is NEG


def test_alternation_falls_through_on_neg_but_not_on_fail() -> None:
    interp = Interpreter({P("/n"): MemoryNamer(P("/n"), {"b": ["1.1.1.1:1"]})})
    assert leaf_id(interp.bind(Dtab.read("/s => /#/n/a | /#/n/b"), P("/s")).sample()) == "/#/n/b"
    assert ok_tree(interp.bind(Dtab.read("/s => ! | /#/n/b"), P("/s")).sample()) is FAIL
    assert ok_tree(interp.bind(Dtab.read("/s => ~ | $ | /#/n/b"), P("/s")).sample()) is EMPTY
    # several rules with the same prefix: the later one first, fall back on neg only
    assert (
        leaf_id(interp.bind(Dtab.read("/s => /#/n/b; /s => /#/n/a"), P("/s")).sample()) == "/#/n/b"
    )
    assert ok_tree(interp.bind(Dtab.read("/s => /#/n/b; /s => /$/fail"), P("/s")).sample()) is FAIL
    assert ok_tree(interp.bind(Dtab.read("/s => /#/n/b; /s => !"), P("/s")).sample()) is FAIL


def test_long_alternations_fall_through_without_exhausting_the_stack() -> None:
    # An 8 KB l5d-dtab header holds ~1000 rules for one prefix; binding them used one level
    # of recursion per negative alternative and failed with a RecursionError.
    interp = Interpreter({P("/n"): MemoryNamer(P("/n"), {"b": ["1.1.1.1:1"]})})
    many_rules = Dtab.read("/s => /#/n/b;" + "/s => /#/n/a;" * 1000)
    assert leaf_id(interp.bind(many_rules, P("/s")).sample()) == "/#/n/b"
    many_branches = Dtab.read("/s => " + "/#/n/a | " * 1000 + "/#/n/b")
    seen: list[State] = []
    interp.bind(many_branches, P("/s")).observe(seen.append).close()
    assert leaf_id(seen[-1]) == "/#/n/b"


def test_union_keeps_weights_and_drops_negative_branches() -> None:
    namer = MemoryNamer(P("/n"), {"a": ["1.1.1.1:1"], "b": ["2.2.2.2:2"]})
    interp = Interpreter({P("/n"): namer})
    tree = ok_tree(
        interp.bind(
            Dtab.read("/s => 0.9 * /#/n/a & 0.1 * /#/n/b & 0.5 * /#/n/zzz"), P("/s")
        ).sample()
    )
    assert isinstance(tree, Union)
    assert [(b.weight, b.tree.value.id.show()) for b in tree.branches] == [
        (0.9, "/#/n/a"),
        (0.1, "/#/n/b"),
    ]  # type: ignore[attr-defined]
    assert ok_tree(interp.bind(Dtab.read("/s => /#/n/x & /#/n/y"), P("/s")).sample()) is NEG


def test_wildcards_and_residuals() -> None:
    namer = MemoryNamer(P("/n"), {"web": ["1.1.1.1:80"]})
    interp = Interpreter({P("/n"): namer})
    state = interp.bind(Dtab.read("/svc/*/web => /#/n/web"), P("/svc/eu/web/extra/path")).sample()
    bound = ok_tree(state).value  # type: ignore[attr-defined]
    assert bound.id == P("/#/n/web") and bound.residual == P("/extra/path")


def test_dtab_loops_become_a_clear_failure() -> None:
    interp = Interpreter({})
    for text, path in [("/a => /b; /b => /a", "/a"), ("/a => /a/b", "/a")]:
        state = interp.bind(Dtab.read(text), P(path)).sample()
        assert isinstance(state, Failed)
        assert isinstance(state.error, DelegationError)
        assert "loop" in str(state.error)


def test_exponential_unions_are_cut_off() -> None:
    rules = ";".join(f"/l{i} => /l{i + 1} & /l{i + 1}" for i in range(40))
    state = Interpreter({}).bind(Dtab.read(rules), P("/l0")).sample()
    # cut off by a limit of naming.limits (here the nesting: binding goes depth first)
    assert isinstance(state, Failed) and isinstance(state.error, BindingLimitError)


def test_binding_is_live_and_follows_the_namer() -> None:
    namer = k8s(world=["10.0.0.2:7778"])
    interp = Interpreter({P("/io.l5d.k8s"): namer})
    seen: list[State] = []
    handle = interp.bind(Dtab.read(REFERENCE), P("/svc/world")).observe(seen.append)
    assert leaf_id(seen[-1]).endswith("/world")
    namer.set_addresses("default/http/world-v1", ["10.0.0.9:7778"])
    assert leaf_id(seen[-1]).endswith("/world-v1")
    namer.remove("default/http/world-v1")
    assert leaf_id(seen[-1]).endswith("/world")
    namer.remove("default/http/world")
    assert ok_tree(seen[-1]) is NEG
    handle.close()
    count = len(seen)
    namer.set_addresses("default/http/world", ["10.0.0.2:7778"])
    assert len(seen) == count  # closed: no more updates


def test_addresses_are_live_through_the_bound_name() -> None:
    namer = k8s(hello=["10.0.0.1:7777"])
    interp = Interpreter({P("/io.l5d.k8s"): namer})
    bound = ok_tree(interp.bind(Dtab.read(REFERENCE), P("/svc/hello")).sample()).value  # type: ignore[attr-defined]
    addrs: list[Any] = []
    bound.addr.observe(addrs.append)
    namer.set_addresses("default/http/hello", ["10.0.0.1:7777", "10.0.0.5:7777"])
    assert isinstance(addrs[-1], AddrBound) and {a.host for a in addrs[-1].addresses} == {
        "10.0.0.1",
        "10.0.0.5",
    }


def test_pending_namer_makes_the_bind_pending_until_known() -> None:
    source: Var[State] = Var(PENDING)

    class SlowNamer:
        def lookup(self, path: Path) -> Var[State]:
            return source

        def state(self) -> dict[str, Any]:
            return {}

    interp = Interpreter({P("/slow"): SlowNamer()})
    seen: list[State] = []
    interp.bind(Dtab.read("/s => /#/slow/x | /$/nil"), P("/s")).observe(seen.append)
    assert seen == [PENDING]
    source.update(Ok(NEG))
    assert ok_tree(seen[-1]) is EMPTY


def test_failing_namer_is_contained() -> None:
    class BrokenNamer:
        def lookup(self, path: Path) -> Var[State]:
            raise RuntimeError("boom")

        def state(self) -> dict[str, Any]:
            return {}

    state = Interpreter({P("/b"): BrokenNamer()}).bind(Dtab.read("/s => /#/b/x"), P("/s")).sample()
    assert isinstance(state, Failed) and "boom" in str(state.error)


def test_longest_namer_prefix_wins() -> None:
    short = MemoryNamer(P("/k"), {"x/y": ["1.1.1.1:1"]})
    long = MemoryNamer(P("/k/x"), {"y": ["2.2.2.2:2"]})
    interp = Interpreter({P("/k"): short, P("/k/x"): long})
    assert leaf_id(interp.bind(Dtab.empty(), P("/#/k/x/y")).sample()) == "/#/k/x/y"
    bound = ok_tree(interp.bind(Dtab.empty(), P("/#/k/x/y")).sample()).value  # type: ignore[attr-defined]
    assert {a.host for a in bound.addr.sample().addresses} == {"2.2.2.2"}


def test_binds_are_cached_and_shared_per_dtab_and_path() -> None:
    interp = Interpreter({P("/io.l5d.k8s"): k8s(hello=["10.0.0.1:7777"])})
    a = interp.bind(Dtab.read(REFERENCE), P("/svc/hello"))
    b = interp.bind(Dtab.read(REFERENCE), P("/svc/hello"))
    assert a is b
    assert interp.bind(Dtab.read(REFERENCE), P("/svc/world")) is not a


def test_nothing_is_watched_once_nobody_observes() -> None:
    namer = k8s(hello=["10.0.0.1:7777"])
    interp = Interpreter({P("/io.l5d.k8s"): namer})
    handle = interp.bind(Dtab.read(REFERENCE), P("/svc/hello")).observe(lambda s: None)
    assert namer._table.observed
    handle.close()
    assert not namer._table.observed


def test_transformers_apply_in_order_to_the_bound_tree() -> None:
    class Prefixer:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def transform(self, tree: NameTree[BoundName]) -> Var[State]:
            return Var(
                Ok(tree.map(lambda b: BoundName(Path.of("%", self.tag) + b.id, b.addr, b.residual)))
            )

    interp = Interpreter(
        {P("/io.l5d.k8s"): k8s(hello=["10.0.0.1:7777"])}, [Prefixer("one"), Prefixer("two")]
    )
    state = interp.bind(Dtab.read(REFERENCE), P("/svc/hello")).sample()
    assert leaf_id(state) == "/%/two/%/one/#/io.l5d.k8s/default/http/hello"


# --- evaluate -------------------------------------------------------------------------


def _bn(name: str, addr: Any) -> Leaf[BoundName]:
    return Leaf(BoundName(P("/#/n/" + name), Var(addr)))


def test_evaluate_simplifies_bound_trees() -> None:
    a = _bn("a", AddrBound.of([]))
    b = _bn("b", AddrBound.of([]))
    gone = _bn("gone", AddrNeg())
    assert evaluate(gone) is NEG
    assert evaluate(Alt((gone, NEG, b, a))) == b
    assert evaluate(Alt((gone, FAIL, b))) is FAIL
    assert evaluate(Alt((gone, NEG))) is NEG
    assert evaluate(Union((Weighted(3.0, a), Weighted(1.0, gone)))) == a
    assert evaluate(Union((Weighted(1.0, NEG), Weighted(1.0, FAIL)))) is FAIL
    assert evaluate(Union((Weighted(1.0, NEG), Weighted(1.0, EMPTY)))) is EMPTY
    assert evaluate(Union((Weighted(1.0, NEG),))) is NEG
    union = evaluate(
        Union((Weighted(3.0, a), Weighted(1.0, Union((Weighted(1.0, a), Weighted(1.0, b))))))
    )
    assert isinstance(union, Union)
    assert [(b.weight, b.tree) for b in union.branches] == [(0.875, a), (0.125, b)]


def test_alternation_watches_branches_only_up_to_the_chosen_one() -> None:
    names = {n: Var[State](Ok(NEG)) for n in "abc"}

    class Names:
        def lookup(self, path: Path) -> Var[State]:
            return names[path[0]]

    def bound(name: str) -> State:
        return Ok(Leaf(BoundName(P("/#/n/" + name), Var(AddrBound.of([])))))

    interp = Interpreter({P("/n"): Names()})
    seen: list[State] = []
    handle = interp.bind(Dtab.read("/s => /#/n/a | /#/n/b | /#/n/c"), P("/s")).observe(seen.append)
    assert seen == [Ok(NEG)] and all(v.observed for v in names.values())
    names["b"].update(bound("b"))
    assert leaf_id(seen[-1]) == "/#/n/b"
    assert names["a"].observed and names["b"].observed and not names["c"].observed
    names["c"].update(bound("c"))  # not watched: no change
    assert leaf_id(seen[-1]) == "/#/n/b"
    names["b"].update(Ok(NEG))  # falls through to c, which is watched again
    assert leaf_id(seen[-1]) == "/#/n/c" and names["c"].observed
    names["a"].update(Failed(RuntimeError("namer down")))  # a failure stops the fallback
    assert isinstance(seen[-1], Failed) and not names["b"].observed
    names["a"].update(PENDING)
    assert seen[-1] == PENDING
    handle.close()
    assert not any(v.observed for v in names.values())
