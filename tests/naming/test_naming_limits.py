"""Binding a name costs bounded work, memory and stack, whatever the dtab says.

Issue 10, finding 1: ``l5d-dtab: /svc => /svc/a1 & /svc/b1`` (a union that refers to its
own prefix) cost ~72 MB and seconds of CPU per bind, ending in a RecursionError.  These
tests bind such shapes and measure what it costs in steps (Python function calls, counted
with ``sys.setprofile``), stack depth (frames above the caller) and memory (tracemalloc
peak): deterministic measures, not wall time.
"""

from __future__ import annotations

import gc
import random
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.interpreter import DelegationError, Interpreter
from l5d_twisted.naming.limits import (
    MAX_BIND_WORK,
    MAX_TREE_DEPTH,
    MAX_UNION_WIDTH,
    BindingLimitError,
)
from l5d_twisted.naming.nametree import Leaf, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, State

P = Path.read
REFERENCE = "/srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host; /host/world => /srv/world-v1;"

# What one bind may cost at most, far above a normal bind (~300 calls, ~30 frames) and far
# below what the hostile shapes cost before the limits (millions of calls, 1,000 frames
# ending in RecursionError, tens of MB).
MAX_CALLS = 400_000
MAX_FRAMES = 400
MAX_PEAK_BYTES = 8 * 1024 * 1024

# Shapes that amplify a few bytes of dtab into exponential or quadratic work.
HOSTILE = {
    "union referring to its own prefix": "/svc => /svc/a1 & /svc/b1",
    "alternation referring to its own prefix": "/svc => ~ | /svc/a1 | /svc/b1",
    "weighted unions doubling 40 times": ";".join(
        f"/l{i} => 1*/l{i + 1} & 2*/l{i + 1}" for i in range(40)
    )
    + ";/svc => /l0",
    "two layers of 300-wide unions": "/svc => "
    + " & ".join(["/a"] * 300)
    + ";/a => "
    + " & ".join(["/b"] * 300),
    "1000 rules for one prefix": "/svc => /srv/x;" * 1000,
    "a rewrite that grows the path": "/svc => /svc/a/b/c/d/e/f/g/h/i/j",
    "a chain of 99 unions": ";".join(f"/c{i} => /c{i + 1} & /x" for i in range(99))
    + ";/svc => /c0",
    "nested parentheses": "/svc => " + "(/a & " * 45 + "/b" + ")" * 45,
}


def k8s_interpreter() -> Interpreter:
    namer = MemoryNamer(
        P("/io.l5d.k8s"),
        {"default/http/hello": ["10.0.0.1:7777"], "default/http/world": ["10.0.0.2:7777"]},
    )
    return Interpreter({P("/io.l5d.k8s"): namer})


@dataclass
class Cost:
    calls: int
    frames: int
    peak_bytes: int


def measured(fn: Callable[[], Any]) -> tuple[Any, Cost]:
    """``fn()`` and what it cost: Python calls, deepest stack above this call, memory peak."""
    gc.collect()
    depth = [0, 0]  # current, deepest
    calls = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1
            depth[0] += 1
            depth[1] = max(depth[1], depth[0])
        elif event == "return":
            depth[0] -= 1

    tracemalloc.start()
    sys.setprofile(profile)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, Cost(calls[0], depth[1], peak)


def within_bounds(cost: Cost) -> None:
    assert cost.calls <= MAX_CALLS, cost
    assert cost.frames <= MAX_FRAMES, cost
    assert cost.peak_bytes <= MAX_PEAK_BYTES, cost


def limit_failure(state: State) -> BindingLimitError:
    assert isinstance(state, Failed), state
    assert isinstance(state.error, BindingLimitError), state.error
    return state.error


def test_the_reported_union_header_fails_fast_for_every_new_name() -> None:
    # The reproduction of issue 10: a different name on each request, each bound anew.
    interp = k8s_interpreter()
    dtab = Dtab.read(REFERENCE) + Dtab.read("/svc => /svc/a1 & /svc/b1")
    for name in ("n1", "n2", "n3"):
        state, cost = measured(lambda name=name: interp.bind(dtab, P(f"/svc/{name}")).sample())
        error = limit_failure(state)
        assert "nested more than" in str(error) or "work units" in str(error)
        within_bounds(cost)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_shapes_stop_at_a_limit_in_bounded_work_stack_and_memory(name: str) -> None:
    interp = k8s_interpreter()
    dtab = Dtab.read(REFERENCE) + Dtab.read(HOSTILE[name])
    state, cost = measured(lambda: interp.bind(dtab, P("/svc/hello")).sample())
    limit_failure(state)
    within_bounds(cost)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_explaining_hostile_shapes_is_bounded_and_says_why(name: str) -> None:
    interp = k8s_interpreter()
    dtab = Dtab.read(REFERENCE) + Dtab.read(HOSTILE[name])

    def explain() -> tuple[str, Any]:
        explanation = interp.explain(dtab, P("/svc/hello"))
        return explanation.to_text(), explanation.to_json()

    (text, as_json), cost = measured(explain)
    within_bounds(cost)
    assert "failed:" in text.splitlines()[-1]
    assert as_json["result"]["type"] == "exception"
    assert "RecursionError" not in text and "recursion" not in text


def test_live_namers_do_not_multiply_the_budget() -> None:
    # Branches after a live (namer-watched) one are bound only when it turns negative;
    # they share the pass's budget instead of getting one each.
    interp = k8s_interpreter()
    expensive = "(/svc/a1 & /svc/b1)"
    dtab = Dtab.read(REFERENCE) + Dtab.read(
        "/svc => /#/io.l5d.k8s/default/http/nobody | " + " | ".join([expensive] * 200)
    )
    seen: list[State] = []

    def observe() -> None:
        interp.bind(dtab, P("/svc/hello")).observe(seen.append).close()

    _, cost = measured(observe)
    limit_failure(seen[-1])
    within_bounds(cost)


def test_recursion_stays_far_below_the_interpreter_limit() -> None:
    # With the recursion limit lowered to what MAX_FRAMES promises, every shape still ends
    # in a clean limit error, and the bound tree of the deepest legal shape evaluates.
    interp = k8s_interpreter()
    depth_here = len(_stack())
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth_here + MAX_FRAMES)
    try:
        for text in HOSTILE.values():
            limit_failure(
                interp.bind(Dtab.read(REFERENCE) + Dtab.read(text), P("/svc/hello")).sample()
            )
        deepest = (
            "/svc => "
            + "(/#/io.l5d.k8s/default/http/hello & " * (MAX_TREE_DEPTH - 1)
            + "/x"
            + ")" * (MAX_TREE_DEPTH - 1)
        )
        state = interp.bind(Dtab.read(deepest), P("/svc")).sample()
        assert isinstance(state, Ok)
        assert isinstance(evaluate(state.value), Leaf)
        assert (
            state.value == interp.bind_untransformed(Dtab.read(deepest), P("/svc")).sample().value
        )
    finally:
        sys.setrecursionlimit(old)


def _stack() -> list[Any]:
    frames = []
    frame: Any = sys._getframe()
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_nesting_limit_is_exact() -> None:
    interp = Interpreter({})

    def nested(levels: int) -> str:
        # levels alternations/unions inside each other: /a | (/b & (/c | ...))
        ops = ["|", "&"]
        text = "$"
        for i in range(levels):
            text = f"(/n{i} {ops[i % 2]} {text})"
        return "/s => " + text

    assert isinstance(interp.bind(Dtab.read(nested(MAX_TREE_DEPTH)), P("/s")).sample(), Ok)
    error = limit_failure(interp.bind(Dtab.read(nested(MAX_TREE_DEPTH + 1)), P("/s")).sample())
    assert f"nested more than {MAX_TREE_DEPTH} deep" in str(error)


def test_union_width_limit_is_exact() -> None:
    interp = Interpreter({})
    wide = interp.bind(Dtab.read("/s => " + " & ".join(["$"] * MAX_UNION_WIDTH)), P("/s")).sample()
    assert isinstance(wide, Ok) and isinstance(wide.value, Union)
    error = limit_failure(
        interp.bind(
            Dtab.read("/s => " + " & ".join(["$"] * (MAX_UNION_WIDTH + 1))), P("/s")
        ).sample()
    )
    assert f"more than {MAX_UNION_WIDTH}" in str(error)


def test_loops_still_fail_at_the_depth_limit_not_a_budget() -> None:
    state = Interpreter({}).bind(Dtab.read("/a => /b; /b => /a"), P("/a")).sample()
    assert isinstance(state, Failed) and isinstance(state.error, DelegationError)
    assert not isinstance(state.error, BindingLimitError) and "loop" in str(state.error)


def test_operator_sized_dtabs_bind_well_within_the_budget() -> None:
    interp = k8s_interpreter()
    per_service = "".join(f"/svc/s{i} => /srv/s{i}-v2 | /srv/hello;" for i in range(2000))
    canary = "/svc/hello => 9 * /srv/hello & 1 * /srv/world | /srv/hello;"
    for text, path in [
        (REFERENCE, "/svc/hello"),
        (REFERENCE, "/svc/world"),
        (REFERENCE + canary, "/svc/hello"),
        (REFERENCE + per_service, "/svc/s1999"),
        (REFERENCE + per_service, "/svc/hello"),
    ]:
        state, cost = measured(lambda t=text, p=path: interp.bind(Dtab.read(t), P(p)).sample())
        assert isinstance(state, Ok) and state.value is not None, (path, state)
        assert cost.frames < 100, cost
    assert MAX_BIND_WORK >= 10_000  # the figures in naming.limits assume at least this


def test_rule_lookup_by_first_segment_keeps_linkerd_order() -> None:
    # Dtab.matching looks only at rules that can match (same first segment, a wildcard or
    # '/'); the result must be the one a scan of every rule, latest first, gives.
    rng = random.Random(10)
    segments = ["a", "b", "c"]
    for _ in range(300):
        rules = []
        for _ in range(rng.randint(0, 8)):
            prefix = [rng.choice(segments + ["*"]) for _ in range(rng.randint(0, 3))]
            rules.append(("/" + "/".join(prefix)) + f" => /d{len(rules)}")
        dtab = Dtab.read(";".join(rules))
        path = Path.of(*(rng.choice(segments) for _ in range(rng.randint(0, 3))))
        naive = [
            (d, d.rewrite(path)) for d in reversed(dtab.dentries) if d.rewrite(path) is not None
        ]
        assert dtab.matching(path) == naive, (dtab.show(), path)


def test_parsed_header_cache_holds_little_memory() -> None:
    # Every distinct l5d-dtab text was kept parsed (up to 512 texts of 4 KB, ~150 MB).
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            Dtab.read("/svc => " + " & ".join(f"/s{i}x{j}" for j in range(400))[:4000])
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 4 * 1024 * 1024, retained
    long_header = "/svc/hello => " + " | ".join(f"/srv/v{i}" for i in range(400))
    assert Dtab.read(long_header[:4000].rstrip(" |/")) is Dtab.read(
        long_header[:4000].rstrip(" |/")
    ), "a repeated header is parsed once"


def test_binds_not_remembered_do_not_evict_remembered_ones() -> None:
    interp = Interpreter({}, cache_size=2)
    kept = interp.bind(Dtab.read("/a => $"), P("/a"))
    for i in range(10):
        interp.bind(Dtab.read(f"/a => /b{i}"), P("/a"), remember=False)
    assert list(interp._recent.values()) == [kept]


# --- the admin playground and the CLI ----------------------------------------------------


@dataclass
class _RouterView:
    label: str
    dst_prefix: Path
    dtab: Dtab
    interpreter: Any

    def client_state(self) -> dict[str, dict[str, Any]]:
        return {}


def test_delegator_answers_400_for_an_override_past_the_limits() -> None:
    from twisted.internet.task import Clock

    from l5d_twisted.admin.delegator import explain
    from l5d_twisted.admin.http_error import HttpError

    clock = Clock()
    namer = MemoryNamer(P("/io.l5d.k8s"), {"default/http/hello": ["10.0.0.1:7777"]})
    router = _RouterView(
        "out", P("/svc"), Dtab.read(REFERENCE), Interpreter({P("/io.l5d.k8s"): namer}, (), clock)
    )
    results: list[Any] = []

    def ask(dtab: str) -> Any:
        results.clear()
        explain([router], None, "/svc/hello", dtab).addBoth(results.append)
        clock.advance(0)
        return results[0]

    answer, cost = measured(lambda: ask("/svc => /svc/a1 & /svc/b1"))
    within_bounds(cost)
    error = answer.value
    assert isinstance(error, HttpError) and error.status == 400, error
    assert "cannot bind /svc/hello with this dtab" in str(error) and "nested more than" in str(
        error
    )
    ok = ask("/svc/hello => /srv/hello")
    assert isinstance(ok, dict) and "10.0.0.1:7777" in ok["text"]


def test_cli_resolve_exits_2_saying_which_limit(tmp_path: Any) -> None:
    from twisted.internet.task import Clock

    from l5d_twisted.cli import build_parser
    from l5d_twisted.cli.dtab import resolve

    (tmp_path / "hello").write_text("127.0.0.1 7777\n")
    clock = Clock()
    args = build_parser().parse_args(
        [
            "dtab",
            "resolve",
            "--namer-fs",
            str(tmp_path),
            "--dtab",
            "/svc => /#/io.l5d.fs; /svc => /svc/a1 & /svc/b1",
            "/svc/hello",
        ]
    )
    results: list[Any] = []
    resolve(args, clock).addBoth(results.append)
    clock.advance(0)
    code, output = results[0]
    assert code == 2
    assert (
        output.rstrip()
        .splitlines()[-1]
        .startswith("=> failed: alternations and unions nested more than")
    )
