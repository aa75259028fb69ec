"""HTTP/1.1 messages as the data plane passes them between layers.

Kept deliberately small and byte-oriented: header names and values are ``bytes`` exactly
as they came off the wire (original case preserved); lookups take a lowercase name.
Bodies are streams (see ``http.body``): a layer that needs to resend a request (retries)
checks ``request.body.replayable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from l5d_twisted.http.body import EMPTY_BODY
from l5d_twisted.request_context import Context


class Headers:
    """An ordered multi-map of header fields."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._items: list[tuple[bytes, bytes]] = list(items)

    # Lookups compare lengths before lowercasing: most fields differ in length, and the
    # router looks up several names per request, so this keeps ``lower()`` off the hot path.

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        n = len(name)
        for k, v in self._items:
            if len(k) == n and k.lower() == name:
                return v
        return default

    def get_all(self, name: bytes) -> list[bytes]:
        n = len(name)
        return [v for k, v in self._items if len(k) == n and k.lower() == name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, bytes):
            return False
        n = len(name)
        for k, _ in self._items:  # noqa: SIM110 (a plain loop is 2x faster than any())
            if len(k) == n and k.lower() == name:
                return True
        return False

    def lower_names(self) -> set[bytes]:
        """The lowercase names present, for a layer that asks about several at once.

        One pass over the fields instead of one per question; a snapshot (later changes to
        the headers are not reflected).
        """
        return {k.lower() for k, _ in self._items}

    def add(self, name: bytes, value: bytes) -> None:
        self._items.append((name, value))

    def set(self, name: bytes, value: bytes) -> None:
        """Replace every field called ``name`` (lowercase) by one."""
        self.remove(name)
        self._items.append((name, value))

    def remove(self, name: bytes) -> list[bytes]:
        n = len(name)
        items = self._items
        removed: list[bytes] = []
        for k, v in items:
            if len(k) == n and k.lower() == name:
                removed.append(v)
        if removed:
            self._items = [(k, v) for k, v in items if len(k) != n or k.lower() != name]
        return removed

    def remove_if(self, pred: Any) -> None:
        """Remove the fields whose lowercase name satisfies ``pred``."""
        self._items = [(k, v) for k, v in self._items if not pred(k.lower())]

    def items(self) -> list[tuple[bytes, bytes]]:
        return self._items

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def split_target(uri: bytes) -> tuple[bytes, bytes | None]:
    """A request target as ``(origin-form target, authority)``; authority None unless the
    target is absolute-form: ``http://hello:81/a?b`` -> ``(b"/a?b", b"hello:81")``.

    The authority ends at the first ``/``, ``?`` or ``#`` (RFC 3986 §3.2), so a query that
    holds a slash (``http://hello?next=/x``) stays a query, and a fragment is never sent.
    """
    if uri[:1] == b"/" or uri == b"*":
        return uri, None
    scheme_end = uri.find(b"://")
    if scheme_end < 0:
        return uri, None
    start = scheme_end + 3
    end = uri.find(b"/", start)
    if end < 0:
        end = len(uri)
    query = uri.find(b"?", start, end)
    if query >= 0:
        end = query
    fragment = uri.find(b"#", start, end)
    if fragment >= 0:
        end = fragment
    authority = uri[start:end]
    first = uri[end : end + 1]
    if first == b"/":
        return uri[end:], authority
    if first == b"?":
        return b"/" + uri[end:], authority
    return b"/", authority


class Request:
    """An HTTP request.

    ``uri`` is the request target as sent (origin form ``/path`` or absolute form
    ``http://host/path``).  ``ctx`` carries per-request context between layers under typed
    keys (``l5d_twisted.request_context``: connection, destination path, deadline, ...).
    """

    __slots__ = ("method", "uri", "version", "headers", "body", "ctx")

    def __init__(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        body: Any = None,
        version: bytes = b"1.1",
    ) -> None:
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers if headers is not None else Headers()
        self.body = EMPTY_BODY if body is None else body
        self.ctx = Context()

    @property
    def path(self) -> bytes:
        """The path and query, whichever form the target was sent in (what goes upstream)."""
        return split_target(self.uri)[0]

    @property
    def host(self) -> bytes | None:
        """The authority of an absolute-form target, else the Host header."""
        authority = split_target(self.uri)[1]
        return authority if authority is not None else self.headers.get(b"host")

    def __repr__(self) -> str:
        return f"Request({self.method!r} {self.uri!r})"


class Response:
    __slots__ = ("status", "reason", "version", "headers", "body", "ctx")

    def __init__(
        self,
        status: int,
        headers: Headers | None = None,
        body: Any = None,
        reason: bytes = b"",
        version: bytes = b"1.1",
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers if headers is not None else Headers()
        self.body = EMPTY_BODY if body is None else body
        self.ctx = Context()

    def __repr__(self) -> str:
        return f"Response({self.status})"
