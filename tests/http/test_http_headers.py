"""Headers: an ordered multi-map with case-insensitive lookups by lowercase name."""

from __future__ import annotations

from l5d_twisted.http.message import Headers, Request, split_target


def test_lookups_ignore_case_and_keep_order() -> None:
    h = Headers([(b"Host", b"a"), (b"X-Multi", b"1"), (b"x-multi", b"2"), (b"Content-Type", b"t")])
    assert h.get(b"host") == b"a"
    assert h.get(b"x-multi") == b"1"
    assert h.get_all(b"x-multi") == [b"1", b"2"]
    assert b"content-type" in h and b"content-typ" not in h and "host" not in h
    assert h.get(b"missing", b"d") == b"d"


def test_set_replaces_every_occurrence_and_remove_returns_values() -> None:
    h = Headers([(b"X-A", b"1"), (b"Via", b"x"), (b"x-a", b"2")])
    h.set(b"x-a", b"3")
    assert h.items() == [(b"Via", b"x"), (b"x-a", b"3")]
    assert h.remove(b"via") == [b"x"]
    assert h.remove(b"via") == []
    h.add(b"Via", b"y")
    h.remove_if(lambda name: name.startswith(b"x-"))
    assert h.items() == [(b"Via", b"y")]


def test_request_path_and_host_in_both_target_forms() -> None:
    absolute = Request(b"GET", b"http://hello:8080/a?b=c", Headers([(b"Host", b"other")]))
    assert absolute.path == b"/a?b=c" and absolute.host == b"hello:8080"
    origin = Request(b"GET", b"/a", Headers([(b"Host", b"world")]))
    assert origin.path == b"/a" and origin.host == b"world"


def test_the_authority_ends_at_a_query_or_fragment_not_at_a_slash_inside_them() -> None:
    # the path identifier routes by request.path: a slash in the query must not become a segment
    tricky = Request(b"GET", b"http://users?next=/admin/x")
    assert tricky.path == b"/?next=/admin/x" and tricky.host == b"users"
    assert Request(b"GET", b"http://hello#frag/x").path == b"/"
    assert Request(b"GET", b"http://hello#frag").host == b"hello"
    assert Request(b"GET", b"https://hello").path == b"/"
    assert split_target(b"http://hello:81?a") == (b"/?a", b"hello:81")
    assert split_target(b"*") == (b"*", None)
