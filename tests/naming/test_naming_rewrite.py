"""io.l5d.rewrite: linkerd 1's pattern/name rewriting namer, bound again through the dtab."""

from __future__ import annotations

import textwrap
from pathlib import Path as FsPath
from typing import Any

import pytest

from l5d_twisted.cli import main
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.loader import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.namers.memory import MemoryNamer
from l5d_twisted.namers.rewrite import PathMatcher, RewriteNamer, RewriteNamerConfig
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Failed, Ok, State
from l5d_twisted.registry import NAMERS

P = Path.read


def rewritten(namer: RewriteNamer, path: str) -> Any:
    state = namer.lookup(P(path)).sample()
    assert isinstance(state, Ok), state
    tree = state.value
    return tree if tree is NEG else tree.value.show()


@pytest.mark.parametrize(
    "pattern, path, captures",
    [
        ("/foo/bar", "/foo/bar", {}),
        ("/foo/bar", "/foo/bar/bas", {}),  # a prefix match
        ("/foo/*/*", "/foo/hi/there", {}),
        ("/foo/{A}", "/foo/bar/bas", {"A": "bar"}),
        ("/foo/{A_B_C}", "/foo/bar", {"A_B_C": "bar"}),
        ("/foo/bar/{A}:http", "/foo/bar/bas:http", {"A": "bas"}),
        ("/foo/{A}/*/{B}", "/foo/boo/bar/bas", {"A": "boo", "B": "bas"}),
        (
            "/foo/bar/{A}.{B}.{C}/{D}",
            "/foo/bar/www.foo.com/80",
            {"A": "www", "B": "foo", "C": "com", "D": "80"},
        ),
        # greedy, as linkerd 1's docs say
        ("/foo/bar/{A}-{B}", "/foo/bar/foo-bar-baz", {"A": "foo-bar", "B": "baz"}),
    ],
)
def test_pattern_matching_as_linkerd1s_path_matcher(
    pattern: str, path: str, captures: dict[str, str]
) -> None:
    assert PathMatcher.read(pattern).extract(P(path)) == captures


@pytest.mark.parametrize(
    "pattern, path",
    [
        ("/foo/bar", "/foo/goo"),
        ("/foo/bar", "/foo"),  # too short
        ("/foo/{A}/bar", "/foo/bar/bad"),
        ("/foo/{A}:http", "/foo/bar/bas:http"),
        ("/{A}.com", "/x.com.evil"),  # a segment matches whole (linkerd 1 searched inside it)
    ],
)
def test_patterns_that_do_not_match(pattern: str, path: str) -> None:
    assert PathMatcher.read(pattern).extract(P(path)) is None


def test_the_name_is_rewritten_and_non_matching_names_are_negative() -> None:
    namer = RewriteNamer("/{service}/api", "/srv/{service}")
    assert rewritten(namer, "/users/api") == "/srv/users"
    assert rewritten(namer, "/users/api/v1/extra") == "/srv/users"  # the rest is dropped
    assert rewritten(namer, "/users/web") is NEG
    assert rewritten(namer, "/users") is NEG
    reorder = RewriteNamer("/{a}-{b}/{port}", "/{port}/{b}/{a}")
    assert rewritten(reorder, "/x-y-z/80") == "/80/z/x-y"
    assert namer.state() == {"pattern": "/{service}/api", "name": "/srv/{service}"}


def test_an_empty_capture_fails_that_name_only() -> None:
    namer = RewriteNamer("/{a}-{b}", "/srv/{a}/{b}")
    state: State = namer.lookup(P("/-x")).sample()
    assert isinstance(state, Failed) and "empty" in str(state.error)
    assert rewritten(namer, "/w-x") == "/srv/w/x"


def test_the_new_name_is_bound_through_the_dtab() -> None:
    plugin = NAMERS.get("io.l5d.rewrite")
    rewrite = plugin.factory(
        RewriteNamerConfig(pattern="/{service}/api", name="/srv/{service}"),
        P("/rewrite"),
        PluginContext(reactor=None),
    )
    interp = Interpreter(
        {
            P("/rewrite"): rewrite,
            P("/io.l5d.fs"): MemoryNamer(P("/io.l5d.fs"), {"users": ["10.0.0.1:8080"]}),
        }
    )
    dtab = Dtab.read("/srv => /#/io.l5d.fs; /svc => /#/rewrite")
    state = interp.bind(dtab, P("/svc/users/api")).sample()
    assert isinstance(state, Ok) and isinstance(state.value, Leaf)
    assert state.value.value.id.show() == "/#/io.l5d.fs/users"
    # not matched: negative, so an alternative takes over
    dtab = Dtab.read("/srv => /#/io.l5d.fs; /svc => /#/rewrite | /#/io.l5d.fs/users")
    state = interp.bind(dtab, P("/svc/users/web")).sample()
    assert isinstance(state, Ok) and state.value.value.id.show() == "/#/io.l5d.fs/users"


def config(namer: str) -> str:
    return textwrap.dedent(
        """\
        routers:
        - protocol: http
          dtab: /svc => /#/rewrite
        namers:
        """
    ) + textwrap.indent(textwrap.dedent(namer), "")


def test_config_keys() -> None:
    loaded = load_config(
        config(
            """\
            - kind: io.l5d.rewrite
              prefix: /rewrite
              pattern: "/{service}/api"
              name: "/srv/{service}"
            """
        )
    )
    (spec,) = loaded.namers
    assert spec.prefix == P("/rewrite")
    assert spec.config == RewriteNamerConfig(pattern="/{service}/api", name="/srv/{service}")


@pytest.mark.parametrize(
    "block, message",
    [
        # prefix is required (linkerd 1: no default prefix)
        ('- {kind: io.l5d.rewrite, pattern: "/{a}", name: "/srv/{a}"}\n', "no default prefix"),
        ("- {kind: io.l5d.rewrite, prefix: /rewrite, name: /srv}\n", "pattern"),
        ('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a}"}\n', "name"),
        ('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a", name: /srv}\n', "bad capture"),
        (
            '- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a b}", name: /srv}\n',
            "bad capture",
        ),
        ('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a}/{a}", name: /srv}\n', "twice"),
        (
            '- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/a//b", name: /srv}\n',
            "empty segment",
        ),
        ('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "a/b", name: /srv}\n', "start with"),
        ('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a}", name: "/srv/{b}"}\n', "{b}"),
        (
            '- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a}", name: "/srv/a b"}\n',
            "not a path",
        ),
    ],
)
def test_bad_patterns_and_names_are_refused(block: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        load_config(config(block))
    assert message in str(e.value)


def test_check_exits_2_on_a_bad_pattern(
    tmp_path: FsPath, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "linkerd.yaml"
    path.write_text(
        config('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a", name: /srv}\n')
    )
    assert main(["check", str(path)]) == 2
    assert "namers[0]" in capsys.readouterr().err
    path.write_text(
        config('- {kind: io.l5d.rewrite, prefix: /rewrite, pattern: "/{a}", name: "/srv/{a}"}\n')
    )
    assert main(["check", str(path)]) == 0
