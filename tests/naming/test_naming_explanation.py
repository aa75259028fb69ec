"""Explanations: the rule at each step and what each branch became, as text and JSON."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.task import Clock

from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.explanation import explain_settled
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Ok, State, Var

P = Path.read
REFERENCE = Dtab.read(
    "/srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host; /host/world => /srv/world-v1;"
)


def interp() -> Interpreter:
    namer = MemoryNamer(
        P("/io.l5d.k8s"),
        {
            "default/http/world": ["10.0.0.1:7778", "10.0.0.3:7778"],
            "default/http/hello": ["10.0.0.2:7777"],
        },
    )
    return Interpreter({P("/io.l5d.k8s"): namer})


def test_text_shows_each_rule_the_fallback_and_the_addresses() -> None:
    text = interp().explain(REFERENCE, P("/svc/world")).to_text()
    assert text.splitlines() == [
        "/svc/world",
        "└─ /host/world  [/svc => /host]",
        "   ├─ [1] /srv/world-v1  [/host/world => /srv/world-v1]",
        "   │  └─ /#/io.l5d.k8s/default/http/world-v1  [/srv => /#/io.l5d.k8s/default/http]"
        " -> neg: the namer does not know this name",
        "   └─ [2 chosen] /srv/world  [/host => /srv]",
        "      └─ /#/io.l5d.k8s/default/http/world  [/srv => /#/io.l5d.k8s/default/http]"
        " -> bound: 10.0.0.1:7778, 10.0.0.3:7778",
        "=> 2 addresses",
        "   /#/io.l5d.k8s/default/http/world: 10.0.0.1:7778, 10.0.0.3:7778",
    ]


def test_json_follows_the_delegator_shape() -> None:
    data = interp().explain(REFERENCE, P("/svc/world")).to_json()
    assert data["type"] == "delegate" and data["path"] == "/svc/world" and data["dentry"] is None
    alt = data["delegate"]
    assert (
        alt["type"] == "alt"
        and alt["dentry"] == {"prefix": "/svc", "dst": "/host"}
        and alt["chosen"] == 1
    )
    first, second = alt["alt"]
    assert first["delegate"]["type"] == "neg"
    leaf = second["delegate"]
    assert leaf["type"] == "leaf"
    assert leaf["bound"] == {
        "id": "/#/io.l5d.k8s/default/http/world",
        "path": "/",
        "addr": {
            "type": "bound",
            "addrs": [{"ip": "10.0.0.1", "port": 7778}, {"ip": "10.0.0.3", "port": 7778}],
        },
    }
    assert data["result"]["type"] == "leaf"
    assert data["result"]["addresses"] == ["10.0.0.1:7778", "10.0.0.3:7778"]
    assert data["dtab"] == REFERENCE.show()


def test_union_weights_fail_empty_and_neg_are_explained() -> None:
    i = interp()
    dtab = REFERENCE + Dtab.read(
        "/svc/split => 0.9 * /host/hello & 0.1 * /host/world; /svc/stop => ! | /host/hello; /svc/none => $"
    )
    split = i.explain(dtab, P("/svc/split"))
    assert "[0.9 *] /host/hello" in split.to_text()
    assert "90% /#/io.l5d.k8s/default/http/hello: 10.0.0.2:7777" in split.to_text()
    union = split.to_json()["alt"][0]
    assert union["type"] == "union" and [b["weight"] for b in union["union"]] == [0.9, 0.1]
    assert split.resolved and len(split.addresses) == 3

    stop = i.explain(dtab, P("/svc/stop"))
    assert not stop.resolved and stop.summary().startswith("fail")
    assert "-> fail" in stop.to_text()

    none = i.explain(dtab, P("/svc/none"))
    assert none.summary().startswith("empty") and "-> empty" in none.to_text()

    nobody = i.explain(REFERENCE, P("/svc/nobody"))
    assert nobody.summary().startswith("neg") and nobody.to_json()["result"]["type"] == "neg"
    unmatched = i.explain(REFERENCE, P("/elsewhere"))
    assert "-> neg: no rule matches" in unmatched.to_text()


def test_loops_and_pending_and_failures_are_explained() -> None:
    source: Var[State] = Var(PENDING)

    class SlowNamer:
        def lookup(self, path: Path) -> Var[State]:
            return source

        def state(self) -> dict[str, Any]:
            return {}

    i = Interpreter({P("/slow"): SlowNamer()})
    loop = i.explain(Dtab.read("/a => /b; /b => /a"), P("/a"))
    assert "loop" in loop.to_text() and loop.to_json()["result"]["type"] == "exception"
    pending = i.explain(Dtab.read("/s => /#/slow/x"), P("/s"))
    assert "-> pending" in pending.to_text() and pending.summary().startswith("pending")
    bad = i.explain(Dtab.read("/s => /$/inet/host/notaport"), P("/s"))
    assert "invalid port 'notaport'" in bad.to_text()


@pytest_twisted.ensureDeferred
async def test_explain_settled_waits_for_pending_namers() -> None:
    source: Var[State] = Var(PENDING)

    class SlowNamer:
        def lookup(self, path: Path) -> Var[State]:
            return source

        def state(self) -> dict[str, Any]:
            return {}

    clock = Clock()
    namer = MemoryNamer(P("/m"), {"x": ["127.0.0.1:1"]})
    i = Interpreter({P("/slow"): SlowNamer(), P("/m"): namer})
    d = explain_settled(i, Dtab.read("/s => /#/slow/x"), P("/s"), clock, timeout_s=5)
    clock.advance(1)
    assert not d.called
    source.update(Ok(namer.lookup(P("/x")).sample().value))  # type: ignore[union-attr]
    clock.advance(0)
    explanation = await d
    assert explanation.resolved and not source.observed

    # bounded: a namer that never answers gives a pending explanation after the timeout
    source.update(PENDING)
    d = explain_settled(i, Dtab.read("/s => /#/slow/x"), P("/s"), clock, timeout_s=2)
    clock.advance(2)
    assert (await d).summary().startswith("pending")


def test_transformers_are_named_and_results_show_transformed_ids() -> None:
    from l5d_twisted.naming.addr import BoundName
    from l5d_twisted.naming.nametree import NameTree

    class ToPort:
        prefix = P("/io.l5d.port/4141")

        def transform(self, tree: NameTree[BoundName]) -> Var[State]:
            return Var(
                Ok(
                    tree.map(
                        lambda b: BoundName(P("/%/io.l5d.port/4141") + b.id, b.addr, b.residual)
                    )
                )
            )

    namer = MemoryNamer(P("/io.l5d.k8s"), {"default/http/hello": ["10.0.0.2:7777"]})
    i = Interpreter({P("/io.l5d.k8s"): namer}, [ToPort()])
    explanation = i.explain(REFERENCE, P("/svc/hello"))
    text = explanation.to_text()
    assert "transformed by: /io.l5d.port/4141" in text
    assert "/%/io.l5d.port/4141/#/io.l5d.k8s/default/http/hello: 10.0.0.2:7777" in text
    data = explanation.to_json()
    assert data["transformers"] == ["/io.l5d.port/4141"]
    assert data["result"]["bound"]["id"] == "/%/io.l5d.port/4141/#/io.l5d.k8s/default/http/hello"


@pytest_twisted.ensureDeferred
async def test_interpreter_explain_settled_uses_its_reactor() -> None:
    clock = Clock()
    i = Interpreter({P("/m"): MemoryNamer(P("/m"), {"x": ["127.0.0.1:1"]})}, reactor=clock)
    d = i.explain_settled(Dtab.read("/s => /#/m/x"), P("/s"), timeout_s=1)
    clock.advance(0)
    assert (await d).addresses[0].show() == "127.0.0.1:1"


def test_loop_explanations_stay_short() -> None:
    text = Interpreter({}).explain(Dtab.read("/a => /a/b"), P("/a")).to_text()
    assert len(text) < 3000
    assert "... 84 more steps ..." in text and "more than 100 delegation steps" in text


def test_rewriting_builtins_say_what_rewrote_the_name() -> None:
    text = (
        interp()
        .explain(
            REFERENCE + Dtab.read("/d => /$/io.buoyant.http.domainToPathPfx/svc"),
            P("/d/hello.default"),
        )
        .to_text()
    )
    assert (
        "/$/io.buoyant.http.domainToPathPfx/svc/hello.default  [/d => /$/io.buoyant.http.domainToPathPfx/svc]"
        " (rewritten by /$/io.buoyant.http.domainToPathPfx)" in text
    )
    assert "└─ /svc/default/hello" in text
