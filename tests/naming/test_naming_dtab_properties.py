"""Property tests: printed dtabs parse back equal; no text crashes the parser."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l5d_twisted.naming.dtab import Dentry, Dtab, DtabError, Prefix
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from l5d_twisted.naming.path import Path

# Any characters but lone surrogates (not encodable); the printer escapes what needs it.
segments = st.one_of(
    st.text(alphabet="abcxyz019_:.#$%-", min_size=1, max_size=8),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=4),
)
paths = st.lists(segments, max_size=4).map(lambda s: Path(tuple(s)))
weights = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


def trees() -> st.SearchStrategy[NameTree[Path]]:
    leaves = st.one_of(paths.map(Leaf), st.sampled_from([NEG, FAIL, EMPTY]))

    def extend(children: st.SearchStrategy[NameTree[Path]]) -> st.SearchStrategy[NameTree[Path]]:
        alts = st.lists(children, min_size=2, max_size=3).map(lambda ts: Alt(tuple(ts)))
        unions = st.lists(st.builds(Weighted, weights, children), min_size=2, max_size=3).map(
            lambda ws: Union(tuple(ws))
        )
        # a single weighted branch is a union only when its weight is not the default
        single = st.builds(Weighted, weights.filter(lambda w: w != 1.0), children).map(
            lambda w: Union((w,))
        )
        return st.one_of(alts, unions, single)

    return st.recursive(leaves, extend, max_leaves=8)


prefixes = st.lists(st.one_of(segments, st.none()), max_size=4).map(
    lambda elems: Prefix(tuple(elems))
)
dtabs = st.lists(st.builds(Dentry, prefixes, trees()), max_size=4).map(lambda ds: Dtab(tuple(ds)))


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(dtabs)
def test_show_parses_back_to_an_equal_dtab(dtab: Dtab) -> None:
    assert Dtab.read(dtab.show()) == dtab
    assert Dtab.read(dtab.show_lines()) == dtab


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.text())
def test_arbitrary_text_only_ever_raises_dtab_error(text: str) -> None:
    try:
        dtab = Dtab.read(text)
    except DtabError as e:
        assert 0 <= e.offset <= len(text)
    else:
        assert Dtab.read(dtab.show()) == dtab


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.text(alphabet="/ab*=>|&()~!$#;.019eE+- \n\\x", max_size=40))
def test_grammar_shaped_text_only_ever_raises_dtab_error(text: str) -> None:
    try:
        dtab = Dtab.read(text)
    except DtabError as e:
        assert 0 <= e.offset <= len(text)
    else:
        assert Dtab.read(dtab.show()) == dtab
