"""Dtab syntax: every element parses, prints back equal, and bad input says where."""

from __future__ import annotations

import pytest

from l5d_twisted.naming.dtab import Dentry, Dtab, DtabError, Prefix
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, Union, Weighted
from l5d_twisted.naming.parser import parse_path, parse_tree
from l5d_twisted.naming.path import Path

P = Path.read


def test_reference_dtab_parses_into_rules_in_order() -> None:
    dtab = Dtab.read(
        "/srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host; /host/world => /srv/world-v1;"
    )
    assert [d.prefix.show() for d in dtab] == ["/srv", "/host", "/svc", "/host/world"]
    assert dtab.dentries[0].dst == Leaf(P("/#/io.l5d.k8s/default/http"))
    assert dtab.dentries[3].dst == Leaf(P("/srv/world-v1"))


def test_whitespace_newlines_comments_and_empty_rules_are_tolerated() -> None:
    text = """
        # route everything through the fs namer
        /svc=>/#/io.l5d.fs ;;   # trailing comment
        /svc/a
           => /x ;
    """
    dtab = Dtab.read(text)
    assert dtab == Dtab(
        (
            Dentry(Prefix(("svc",)), Leaf(P("/#/io.l5d.fs"))),
            Dentry(Prefix(("svc", "a")), Leaf(P("/x"))),
        )
    )


def test_empty_text_is_the_empty_dtab() -> None:
    assert Dtab.read("") == Dtab.empty()
    assert Dtab.read("  ;  # nothing\n") == Dtab.empty()
    assert not Dtab.empty()


def test_alternation_union_weights_and_specials() -> None:
    assert parse_tree("/a | /b") == Alt((Leaf(P("/a")), Leaf(P("/b"))))
    assert parse_tree("0.9 * /a & 0.1 * /b") == Union(
        (Weighted(0.9, Leaf(P("/a"))), Weighted(0.1, Leaf(P("/b"))))
    )
    assert parse_tree("/a & /b") == Union(
        (Weighted(1.0, Leaf(P("/a"))), Weighted(1.0, Leaf(P("/b"))))
    )
    assert parse_tree("~") is NEG
    assert parse_tree("!") is FAIL
    assert parse_tree("$") is EMPTY
    # '&' binds tighter than '|'; parentheses group
    assert parse_tree("/a & /b | ~") == Alt(
        (Union((Weighted(1.0, Leaf(P("/a"))), Weighted(1.0, Leaf(P("/b"))))), NEG)
    )
    assert parse_tree("/a & (/b | ~)") == Union(
        (Weighted(1.0, Leaf(P("/a"))), Weighted(1.0, Alt((Leaf(P("/b")), NEG))))
    )
    assert parse_tree("2*/a&.5*/b") == Union(
        (Weighted(2.0, Leaf(P("/a"))), Weighted(0.5, Leaf(P("/b"))))
    )
    assert parse_tree("(/a)") == Leaf(P("/a"))


def test_wildcard_prefixes_match_one_segment() -> None:
    dentry = Dentry.read("/svc/*/v1 => /x")
    assert dentry.prefix == Prefix(("svc", None, "v1"))
    assert dentry.prefix.matches(P("/svc/anything/v1/more"))
    assert not dentry.prefix.matches(P("/svc/anything/v2"))
    assert not dentry.prefix.matches(P("/svc/a"))
    assert dentry.rewrite(P("/svc/foo/v1/rest")) == Leaf(P("/x/rest"))


def test_root_prefix_matches_everything() -> None:
    dentry = Dentry.read("/ => /x")
    assert dentry.prefix == Prefix(())
    assert dentry.rewrite(P("/a/b")) == Leaf(P("/x/a/b"))


def test_escapes_in_paths() -> None:
    assert parse_path("/a\\x2fb/c") == Path.of("a/b", "c")
    assert parse_path("/caf\\xc3\\xa9") == Path.of("café")
    # a literal '*' segment must be escaped in a prefix and prints escaped
    dentry = Dentry.read("/svc/\\x2a => /x")
    assert dentry.prefix == Prefix(("svc", "*"))
    assert Dentry.read(dentry.show()) == dentry


def test_a_segment_ending_in_a_newline_is_escaped_and_never_read_raw() -> None:
    # A "$" anchor also matches before a final newline: a Host header spelling \x0a gave a
    # segment whose raw newline went out in l5d-dst-service and did not read back.
    escaped = Path.read("/svc/a\\x0a")
    assert escaped.segments == ("svc", "a\n")
    assert escaped.show() == "/svc/a\\x0a" and Path.read(escaped.show()) == escaped
    assert Path.of("x\n").show() == "/x\\x0a"
    with pytest.raises(ValueError, match="invalid character"):
        Path.read("/a\n/b")


def test_deeply_nested_parentheses_are_a_dtab_error_not_a_recursion_error() -> None:
    # An l5d-dtab header of a few hundred '(' fits in 8 KB; it must get a 400, not crash.
    with pytest.raises(DtabError, match="nested more than 50 deep"):
        Dtab.read("/a => " + "(" * 300 + "/b" + ")" * 300)
    with pytest.raises(DtabError, match="nested more than 50 deep"):
        Dtab.read("/a => " + "(" * 100_000)
    nested = Dtab.read("/a => " + "(" * 50 + "/b" + ")" * 50)
    assert nested.show() == "/a => /b"


def test_dollar_and_hash_are_path_characters_in_paths() -> None:
    tree = parse_tree("/$/inet/127.0.0.1/8080 | /#/io.l5d.fs/a | $")
    assert tree == Alt((Leaf(P("/$/inet/127.0.0.1/8080")), Leaf(P("/#/io.l5d.fs/a")), EMPTY))


def test_show_round_trips() -> None:
    text = "/svc => 0.9 * /a & 0.1 * (/b | /c) | ~;/x/*/y => !;/z => $;/ => 0.5 * /a;/q => /a & /b"
    dtab = Dtab.read(text)
    assert Dtab.read(dtab.show()) == dtab
    assert Dtab.read(dtab.show_lines()) == dtab
    assert dtab.show() == text


def test_nested_alternations_keep_their_structure_when_printed() -> None:
    tree = parse_tree("/a | (/b | /c)")
    assert tree == Alt((Leaf(P("/a")), Alt((Leaf(P("/b")), Leaf(P("/c"))))))
    dentry = Dentry(Prefix(("s",)), tree)
    assert Dentry.read(dentry.show()) == dentry


def test_concatenation_puts_later_rules_last_and_equality_and_hash() -> None:
    a = Dtab.read("/a => /b")
    b = Dtab.read("/c => /d")
    assert (a + b).show() == "/a => /b;/c => /d"
    assert a + Dtab.empty() == a
    assert Dtab.empty() + a == a
    assert Dtab.read("/a=>/b") == a
    assert hash(Dtab.read("/a=>/b")) == hash(a)
    assert len({a, Dtab.read("/a => /b"), b}) == 2


def test_lookup_alternates_matching_rules_latest_first() -> None:
    dtab = Dtab.read("/host => /srv; /host/world => /srv/world-v1")
    assert dtab.lookup(P("/host/world")) == Alt((Leaf(P("/srv/world-v1")), Leaf(P("/srv/world"))))
    assert dtab.lookup(P("/host/hello")) == Leaf(P("/srv/hello"))
    assert dtab.lookup(P("/other")) is NEG


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/svc /foo", "dtab: expected '=>' after the prefix, found '/' at offset 5: \"/svc /foo\""),
        (
            "/svc => /#/io.l5d.fs/*",
            "'*' matches a segment only in a rule's prefix (left of '=>'); write \\x2a for a literal '*' at offset 21",
        ),
        ("/svc => ", "expected a name (a path, '~', '!', '$' or '('), found the end at offset 8"),
        ("/svc => /a/", "expected a segment after '/', found the end at offset 11"),
        ("/a => /b /c", "expected ';' or the end of the dtab, found '/' at offset 9"),
        ("/a => 0.5 /b", "expected '*' after the weight, found '/' at offset 10"),
        ("/a => (/b", "expected ')', found the end at offset 9"),
        ("svc => /a", "expected a prefix starting with '/', found 's' at offset 0"),
        ("/a\\xZZ => /b", "bad escape in path segment (expected \\xHH) at offset 2"),
        ("/a* => /b", "'*' must be a whole prefix segment at offset 2"),
        (
            "/a => /b*",
            "invalid character '*' in a path (write other characters as \\xHH escapes) at offset 8",
        ),
        ("/a => /b | ", "expected a name"),
        ("/a => /é", "invalid character 'é' in a path"),
        ("/a/b?x => /b", "invalid character '?' in a path"),
    ],
)
def test_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(DtabError) as info:
        Dtab.read(text)
    assert message in str(info.value)


def test_errors_in_multiline_dtabs_give_line_and_column() -> None:
    with pytest.raises(DtabError) as info:
        Dtab.read("/a => /b;\n/c => /d;\n/e /f;\n")
    assert "(line 3, column 4)" in str(info.value)
    assert info.value.offset == 23


def test_long_dtab_errors_show_an_excerpt_around_the_spot() -> None:
    text = ";".join(f"/s{i} => /d{i}" for i in range(30)) + "; /bad"
    with pytest.raises(DtabError) as info:
        Dtab.read(text)
    assert ">>>" in str(info.value) and len(str(info.value)) < 200
