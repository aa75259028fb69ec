"""Per-request context under typed keys (linkerd 1's ``LocalKey``, Finagle's ``Contexts``).

``request.ctx`` (and ``response.ctx``) is a :class:`Context`: a dict whose keys are
:class:`Key` objects, each typed by the value it holds, so ``request.ctx[DST]`` is a
``Path`` to mypy and a plugin's own ``Key("myPlugin.x")`` never collides with the core's
(keys compare by identity, not by name).  At run time it is a plain ``dict`` (the typed
signatures exist for the type checker only): setting and reading a key costs one dict
operation on the hot path.

The keys the core sets, by who sets them:

* the server of a protocol: :data:`CONNECTION` (peer address, TLS peer certificate: one
  object per connection, not per request), :data:`REQUEST_DTAB_ADDRESSES`;
* the router: :data:`ROUTER` (its label), :data:`DST` (the logical name),
  :data:`REQUEST_DTAB` (routed with the request's own dtab), :data:`CLASSIFIER` (the
  service's response classifier, read by the shared layers);
* the deadline filter: :data:`DEADLINE` (seconds on the reactor's clock);
* error responses: :data:`ERROR` on ``response.ctx`` (the error the response answers);
* tracing: :data:`TRACE` (the server span of ``io.l5d.tracelog``, read by its client spans).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    from l5d_twisted.naming.path import Path
    from l5d_twisted.resilience.classifier import ResponseClassifier

T = TypeVar("T")
D = TypeVar("D")


class Key(Generic[T]):
    """A context key; ``T`` is the type of its value."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


class Context(dict[Key[Any], Any]):
    """A request's (or response's) context: typed keys to values."""

    __slots__ = ()

    if TYPE_CHECKING:

        def __getitem__(self, key: Key[T], /) -> T: ...

        def __setitem__(self, key: Key[T], value: T, /) -> None: ...

        @overload  # type: ignore[override]
        def get(self, key: Key[T], /) -> T | None: ...

        @overload
        def get(self, key: Key[T], default: D, /) -> T | D: ...

        def get(self, key: Key[Any], default: Any = None, /) -> Any: ...


class Connection:
    """The connection a request came on: made once per connection by the server.

    ``peer`` is the client's address (an ``IAddress``: ``.host``, ``.port`` for TCP; None if
    the transport cannot say); ``peer_certificate`` the certificate a TLS client presented
    (a pyOpenSSL ``X509``), or None (plain TCP, or no client certificate).  Both are read
    from the transport the first time they are asked for (the certificate after the
    handshake), so a connection nobody asks about costs one small object.
    """

    __slots__ = ("tls", "_transport", "_peer", "_certificate", "_local")

    def __init__(self, transport: Any, *, tls: bool = False) -> None:
        self._transport = transport
        self.tls = tls
        self._peer: Any = None
        self._certificate: Any = None
        self._local: Any = None

    @property
    def local(self) -> Any:
        """The server's end of the connection (an ``IAddress``; None if the transport cannot say)."""
        if self._local is None:
            get = getattr(self._transport, "getHost", None)
            self._local = get() if get is not None else None
        return self._local

    @property
    def peer(self) -> Any:
        if self._peer is None:
            get = getattr(self._transport, "getPeer", None)
            self._peer = get() if get is not None else None
        return self._peer

    @property
    def peer_certificate(self) -> Any:
        if self.tls and self._certificate is None:
            get = getattr(self._transport, "getPeerCertificate", None)
            self._certificate = get() if get is not None else None  # None during the handshake
        return self._certificate

    def __repr__(self) -> str:
        return f"Connection(peer={self.peer!r}, tls={self.tls})"


CONNECTION: Key[Connection] = Key("connection")
REQUEST_DTAB_ADDRESSES: Key[bool] = Key("requestDtabAddresses")
ROUTER: Key[str] = Key("router")
DST: Key[Path] = Key("dst")
REQUEST_DTAB: Key[bool] = Key("requestDtab")
CLASSIFIER: Key[ResponseClassifier] = Key("classifier")
DEADLINE: Key[float] = Key("deadline")
ERROR: Key[BaseException] = Key("error")
TRACE: Key[Any] = Key("trace")  # io.l5d.tracelog's Span; the tracing issue will type it
