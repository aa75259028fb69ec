"""Identifiers: each request form maps to the logical name linkerd 1 would give it."""

from __future__ import annotations

from twisted.internet.task import Clock

from l5d_twisted.context import PluginContext
from l5d_twisted.http.message import Headers, Request
from l5d_twisted.identifiers.base import Identified, Unidentified
from l5d_twisted.identifiers.header_path import HeaderPathConfig
from l5d_twisted.identifiers.header_token import HeaderTokenConfig
from l5d_twisted.identifiers.method_and_host import MethodAndHostConfig
from l5d_twisted.identifiers.path import PathIdentifierConfig
from l5d_twisted.identifiers.static import StaticIdentifierConfig
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import IDENTIFIERS

SVC = Path.read("/svc")
CTX = PluginContext(reactor=Clock())


def make(kind: str, config: object) -> object:
    return IDENTIFIERS.get(kind).factory(config, SVC, CTX)


def request(
    uri: bytes,
    headers: list[tuple[bytes, bytes]] = (),
    method: bytes = b"GET",
    version: bytes = b"1.1",
) -> Request:  # type: ignore[assignment]
    return Request(method, uri, Headers(headers), version=version)


def name_of(result: object) -> str:
    assert isinstance(result, Identified), result
    return result.path.show()


def test_header_token_uses_host_header() -> None:
    ident = make("io.l5d.header.token", HeaderTokenConfig())
    assert name_of(ident.identify(request(b"/", [(b"Host", b"Hello")]))) == "/svc/hello"  # type: ignore[attr-defined]


def test_header_token_prefers_absolute_form_authority() -> None:
    """What http_proxy clients send: the target's authority names the service."""
    ident = make("io.l5d.header.token", HeaderTokenConfig())
    req = request(b"http://hello/path?q=1", [(b"Host", b"other")])
    assert name_of(ident.identify(req)) == "/svc/hello"  # type: ignore[attr-defined]
    assert req.path == b"/path?q=1"


def test_header_token_keeps_port_and_custom_header() -> None:
    ident = make("io.l5d.header.token", HeaderTokenConfig())
    assert name_of(ident.identify(request(b"/", [(b"host", b"world:7778")]))) == "/svc/world:7778"  # type: ignore[attr-defined]
    custom = make("io.l5d.header.token", HeaderTokenConfig(header="X-Service"))
    assert name_of(custom.identify(request(b"/", [(b"x-service", b"Users")]))) == "/svc/Users"  # type: ignore[attr-defined]


def test_header_token_missing_header_is_unidentified() -> None:
    ident = make("io.l5d.header.token", HeaderTokenConfig())
    result = ident.identify(request(b"/"))  # type: ignore[attr-defined]
    assert isinstance(result, Unidentified) and "host" in result.reason


def test_header_token_rejects_unnameable_values() -> None:
    ident = make("io.l5d.header.token", HeaderTokenConfig())
    result = ident.identify(request(b"/", [(b"Host", b"a b")]))  # type: ignore[attr-defined]
    assert isinstance(result, Unidentified)


def test_method_and_host() -> None:
    ident = make("io.l5d.methodAndHost", MethodAndHostConfig())
    assert (
        name_of(ident.identify(request(b"/a/b", [(b"Host", b"web")], method=b"POST")))
        == "/svc/1.1/POST/web"
    )  # type: ignore[attr-defined]
    with_uri = make("io.l5d.methodAndHost", MethodAndHostConfig(http_uri_in_dst=True))
    assert (
        name_of(with_uri.identify(request(b"/a/b?x=1", [(b"Host", b"web")])))
        == "/svc/1.1/GET/web/a/b"
    )  # type: ignore[attr-defined]
    http10 = ident.identify(request(b"/", [], version=b"1.0"))  # type: ignore[attr-defined]
    assert name_of(http10) == "/svc/1.0/GET"


def test_path_identifier_with_and_without_consume() -> None:
    ident = make("io.l5d.path", PathIdentifierConfig(segments=2))
    req = request(b"/users/v2/42?x=1")
    assert name_of(ident.identify(req)) == "/svc/users/v2"  # type: ignore[attr-defined]
    assert req.uri == b"/users/v2/42?x=1"
    consuming = make("io.l5d.path", PathIdentifierConfig(segments=1, consume=True))
    req = request(b"/users/42?x=1")
    assert name_of(consuming.identify(req)) == "/svc/users"  # type: ignore[attr-defined]
    assert req.uri == b"/42?x=1"
    req = request(b"/users")
    consuming.identify(req)  # type: ignore[attr-defined]
    assert req.uri == b"/"
    short = ident.identify(request(b"/only"))  # type: ignore[attr-defined]
    assert isinstance(short, Unidentified) and "fewer than 2" in short.reason


def test_path_identifier_on_absolute_form_targets() -> None:
    ident = make("io.l5d.path", PathIdentifierConfig(segments=1))
    # a slash inside the query is not a path segment
    tricky = ident.identify(request(b"http://users?next=/admin/x"))  # type: ignore[attr-defined]
    assert isinstance(tricky, Unidentified)
    consuming = make("io.l5d.path", PathIdentifierConfig(segments=1, consume=True))
    req = request(b"http://web:8080/users/42?x=1", version=b"1.0")  # no Host field
    assert name_of(consuming.identify(req)) == "/svc/users"  # type: ignore[attr-defined]
    assert req.uri == b"http://web:8080/42?x=1" and req.host == b"web:8080"


def test_header_path_identifier() -> None:
    ident = make("io.l5d.header", HeaderPathConfig())
    assert name_of(ident.identify(request(b"/", [(b"l5d-name", b"/hello/v2")]))) == "/svc/hello/v2"  # type: ignore[attr-defined]
    bad = ident.identify(request(b"/", [(b"l5d-name", b"no-slash")]))  # type: ignore[attr-defined]
    assert isinstance(bad, Unidentified)


def test_static_identifier() -> None:
    ident = make("io.l5d.static", StaticIdentifierConfig(path=Path.read("/hello")))
    assert name_of(ident.identify(request(b"/anything"))) == "/svc/hello"  # type: ignore[attr-defined]
