"""namerd's HTTP interface, ``io.l5d.httpController`` (port 4180).

==============================================  ==============================================
``GET /api/1/dtabs``                            the namespaces, a JSON list (``?watch=true``)
``GET /api/1/dtabs/<ns>``                       the dtab; ``ETag``: its version (``?watch=true``)
``HEAD /api/1/dtabs/<ns>``                      the version only
``POST /api/1/dtabs/<ns>``                      create: 204, 409 if it exists
``PUT /api/1/dtabs/<ns>``                       write; with ``If-Match``: only at that version
                                                (412 otherwise, nothing changed); 404 if
                                                ``If-Match`` names a missing namespace
``DELETE /api/1/dtabs/<ns>``                    204, 404 if missing
``GET /api/1/bind/<ns>?path=&dtab=``            the bound tree (``?watch=true``)
``GET /api/1/addr/<ns>?path=``                  the addresses of a bound id (``?watch=true``)
``GET /api/1/resolve/<ns>?path=&dtab=``         bind, pick a leaf by weight, its addresses
``GET /api/1/delegate/<ns>?path=&dtab=``        the delegation tree (linkerd's delegator JSON)
==============================================  ==============================================

Bodies are JSON (``application/json``: ``[{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]``) or
dtab text (``application/dtab``), as ``Content-Type`` says; ``GET`` answers in the first
type of ``Accept`` it serves (JSON by default).  As namerd: the writes answer 204 without a
body, a malformed dtab or path 400 with a message, an unknown ``Content-Type`` 400.  Unlike
namerd, writes also return the new version in ``ETag`` (so a client can chain updates), a
namespace must look like a name (:func:`~.store.namespace_problem`, 400), and bind, addr
and resolve wait a bounded time (``bind_timeout_s``) for namers rather than for ever, then
answer with what they know (``pending`` included).

A namespace without a dtab binds with an empty dtab (as namerd): bind answers ``neg``.

Bounds: a request body over :data:`~.codec.MAX_DTAB_BYTES` is refused with 413 before it is
read whole; at most ``max_watches`` streams at once (503 past that); a client's ``dtab``
parameter and path are bounded by the request line limit (16 KiB) and binding by
``naming.limits`` (a dtab that expands too much is a 400 naming the limit).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.server import Request as _TwistedRequest

from l5d_twisted.namerd import codec, render
from l5d_twisted.namerd.store import (
    DtabStore,
    NamespaceExists,
    NamespaceNotFound,
    StoreFull,
    VersionedDtab,
    VersionMismatch,
    namespace_problem,
    read_version,
)
from l5d_twisted.namerd.stream import WatchStream
from l5d_twisted.naming.activity import Const
from l5d_twisted.naming.addr import ADDR_NEG, ADDR_PENDING, Addr, AddrPending
from l5d_twisted.naming.dtab import Dtab, DtabError
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.limits import DelegationError
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.naming.var import Failed, Ok, Pending, State, Var

log = Logger()

# twisted.web's Request is untyped: handlers take it as Any.
WebRequest = Any

API_PREFIX = "/api/1/"
# Streams open at once.  A watch costs ~8 KB (900 bind watches over 300 names: +7.4 MB RSS),
# so 10,000 (every name of 50 meshes routing 100 names each, bind and addr) is ~80 MB.
MAX_WATCHES = 10_000
_TRUE = ("true", "1", "t", "yes")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NamerdApi:
    """The handlers of the HTTP interface over one store and one interpreter."""

    def __init__(
        self,
        store: DtabStore,
        interpreter: Interpreter,
        reactor: Any,
        *,
        bind_timeout_s: float = 5.0,
        max_watches: int = MAX_WATCHES,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.interpreter = interpreter
        self.reactor = reactor
        self.bind_timeout_s = bind_timeout_s
        self.max_watches = max_watches
        self.watches = 0
        self.rng = rng or random.Random()
        self._streams: set[WatchStream] = set()
        # what /admin/metrics.json shows (server.py): counts by outcome, never by name
        self.counts: Counter[str] = Counter()

    def site(self) -> Site:
        site = Site(_ApiResource(self))  # type: ignore[no-untyped-call]
        site.protocol = _ApiChannel  # type: ignore[assignment]
        site.requestFactory = _BoundedRequest
        site.displayTracebacks = False
        site.log = lambda request: None  # type: ignore[method-assign]
        return site

    def close(self) -> None:
        """End every watch (the server stops)."""
        for stream in list(self._streams):
            stream.end()

    # --- dispatch ----------------------------------------------------------------------
    def metrics(self) -> dict[str, int]:
        """Flat counters and gauges, as linkerd's metrics.json names them."""
        out = {f"namerd/{k}": v for k, v in sorted(self.counts.items())}
        out["namerd/namespaces"] = len(self.store.list().sample())
        out["namerd/watches"] = self.watches
        return out

    def handle(self, request: WebRequest) -> bytes | int:
        self.counts["requests"] += 1
        raw = (request.path or b"").decode("latin-1")
        if not raw.startswith(API_PREFIX):
            raise ApiError(404, f"no such endpoint {raw[:100]}; the API is under {API_PREFIX}")
        rest = raw[len(API_PREFIX) :]
        family, _, ns_raw = rest.partition("/")
        ns = unquote(ns_raw) if ns_raw else None
        method = (request.method or b"").decode("latin-1")
        if family == "dtabs":
            if ns is None:
                if method not in ("GET", "HEAD"):
                    raise ApiError(405, "only GET lists the dtabs")
                return self.list_dtabs(request)
            self._check_ns(ns)
            handler = {
                "GET": self.get_dtab,
                "HEAD": self.head_dtab,
                "PUT": self.put_dtab,
                "POST": self.post_dtab,
                "DELETE": self.delete_dtab,
            }.get(method)
            if handler is None:
                raise ApiError(405, f"{method} is not a dtab method (GET, PUT, POST, DELETE)")
            return handler(request, ns)
        names: dict[str, Callable[[WebRequest, str], bytes | int]] = {
            "bind": self.bind,
            "addr": self.addr,
            "resolve": self.resolve,
            "delegate": self.delegate,
        }
        name_handler = names.get(family)
        if name_handler is None or ns is None:
            raise ApiError(404, f"no such endpoint {raw[:100]}")
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"only GET reads /api/1/{family}")
        self._check_ns(ns)
        return name_handler(request, ns)

    @staticmethod
    def _check_ns(ns: str) -> None:
        problem = namespace_problem(ns)
        if problem is not None:
            raise ApiError(400, problem)

    # --- dtabs -------------------------------------------------------------------------
    def list_dtabs(self, request: WebRequest) -> bytes | int:
        request.setHeader(b"content-type", codec.JSON.encode())
        names = self.store.list()
        if _watching(request):
            return self._watch(request, names.map(lambda ns: render.json_line(sorted(ns))))
        return render.json_line(sorted(names.sample()))

    def get_dtab(self, request: WebRequest, ns: str) -> bytes | int:
        chosen = codec.for_accept(_header(request, b"accept"))
        if _watching(request):
            request.setHeader(b"content-type", chosen.media_type.encode())

            def line(versioned: VersionedDtab | None) -> bytes | None:
                return chosen.write(versioned.dtab) if versioned is not None else None

            return self._watch(request, self.store.observe(ns).map(line))
        versioned = self.store.get(ns)
        if versioned is None:
            raise ApiError(404, f"the dtab namespace {ns} does not exist")
        request.setHeader(b"content-type", chosen.media_type.encode())
        request.setHeader(b"etag", versioned.version_text.encode())
        return chosen.write(versioned.dtab)

    def head_dtab(self, request: WebRequest, ns: str) -> bytes:
        versioned = self.store.get(ns)
        if versioned is None:
            raise ApiError(404, f"the dtab namespace {ns} does not exist")
        request.setHeader(b"etag", versioned.version_text.encode())
        return b""

    def _read_dtab(self, request: WebRequest) -> Dtab:
        content_type = _header(request, b"content-type")
        chosen = codec.by_media_type(content_type)
        if chosen is None:
            raise ApiError(
                400,
                f'Invalid Content-Type "{(content_type or "")[:100]}": '
                "send application/json or application/dtab",
            )
        body = request.content.read() if request.content is not None else b""
        try:
            return chosen.read(body)
        except codec.BodyError as e:
            raise ApiError(400, str(e)) from None

    def put_dtab(self, request: WebRequest, ns: str) -> int:
        dtab = self._read_dtab(request)
        if_match = _header(request, b"if-match")
        if if_match is None:
            written = self.store.put(ns, dtab)
        else:
            version = read_version(if_match)
            if version is None:
                self.counts["dtab/conflicts"] += 1
                raise ApiError(412, "If-Match is not a version this server gave (base64)")
            written = self.store.update(ns, dtab, version)
        return self._written(request, written, f"updated {ns}")

    def post_dtab(self, request: WebRequest, ns: str) -> int:
        return self._written(
            request, self.store.create(ns, self._read_dtab(request)), f"created {ns}"
        )

    def delete_dtab(self, request: WebRequest, ns: str) -> int:
        return self._written(request, self.store.delete(ns), f"deleted {ns}")

    def _written(self, request: WebRequest, written: Deferred[Any], what: str) -> int:
        def done(result: Any) -> None:
            if isinstance(result, VersionedDtab):
                request.setHeader(b"etag", result.version_text.encode())
            log.info("dtab store: {what}", what=what)
            self.counts["dtab/writes"] += 1
            _finish(request, 204, b"")

        def refused(failure: Failure) -> None:
            error = failure.value
            status = {
                NamespaceExists: 409,
                NamespaceNotFound: 404,
                VersionMismatch: 412,
                StoreFull: 507,
            }.get(type(error))
            if status is None:
                log.failure("a dtab write failed", failure)
                status = 500
            self.counts["dtab/conflicts" if status == 412 else "dtab/refused"] += 1
            _finish(request, status, f"{error}\n".encode())

        written.addCallbacks(done, refused)
        return NOT_DONE_YET

    # --- names -------------------------------------------------------------------------
    def _name_args(self, request: WebRequest, with_dtab: bool = True) -> tuple[Path, Dtab]:
        text = _arg(request, "path")
        if text is None or not text.strip():
            raise ApiError(400, "give the name: ?path=/svc/<name>")
        try:
            path = Path.read(text.strip())
        except PathError as e:
            raise ApiError(400, f"Invalid path: {text[:100]} / {e}") from None
        extra = Dtab.empty()
        dtab_text = _arg(request, "dtab") if with_dtab else None
        if dtab_text and dtab_text.strip():
            try:
                extra = Dtab.read(dtab_text)
            except DtabError as e:
                raise ApiError(400, f"invalid dtab: {e}") from None
        return path, extra

    def bound(self, ns: str, path: Path, extra: Dtab) -> Var[State]:
        """The live bind of ``path`` with the namespace's dtab (empty while it has none)
        followed by ``extra``."""
        interpreter = self.interpreter

        def bind(versioned: VersionedDtab | None) -> Var[State]:
            base = versioned.dtab if versioned is not None else Dtab.empty()
            return interpreter.bind(base + extra, path, remember=not extra)

        return self.store.observe(ns).flat_map(bind)

    def bind(self, request: WebRequest, ns: str) -> bytes | int:
        path, extra = self._name_args(request)
        request.setHeader(b"content-type", codec.JSON.encode())
        view = _with_addrs(self.bound(ns, path, extra))
        return self._answer(request, view, _bind_ready, _render_bind)

    def addr(self, request: WebRequest, ns: str) -> bytes | int:
        path, _ = self._name_args(request, with_dtab=False)
        request.setHeader(b"content-type", codec.JSON.encode())
        view = self._addr_of(ns, _strip_transformers(path))
        return self._answer(request, view, _addr_ready, _render_addr)

    def _addr_of(self, ns: str, path: Path) -> Var[Addr]:
        """The addresses of a bound id (``/#/io.l5d.fs/hello``): what binding it finds."""

        def pick(state: State) -> Var[Addr]:
            if isinstance(state, Ok):
                leaf = render.pick(state.value, self.rng)
                return leaf.addr if leaf is not None else Const(ADDR_NEG)
            if isinstance(state, Pending):
                return Const(ADDR_PENDING)
            return Const(ADDR_NEG)

        return self.bound(ns, path, Dtab.empty()).flat_map(pick)

    def resolve(self, request: WebRequest, ns: str) -> bytes | int:
        path, extra = self._name_args(request)
        request.setHeader(b"content-type", codec.JSON.encode())
        rng = self.rng

        def pick(state: State) -> Var[Addr]:
            if isinstance(state, Ok):
                leaf = render.pick(state.value, rng)
                return leaf.addr if leaf is not None else Const(ADDR_NEG)
            if isinstance(state, Pending):
                return Const(ADDR_PENDING)
            return Const(ADDR_NEG)

        view = self.bound(ns, path, extra).flat_map(pick)
        return self._answer(request, view, _addr_ready, _render_addr)

    def delegate(self, request: WebRequest, ns: str) -> bytes | int:
        path, extra = self._name_args(request)
        request.setHeader(b"content-type", codec.JSON.encode())
        if _watching(request):
            raise ApiError(400, "delegate does not watch; ask again for a new tree")
        versioned = self.store.get(ns)
        dtab = (versioned.dtab if versioned is not None else Dtab.empty()) + extra
        explaining = self.interpreter.explain_settled(dtab, path, self.bind_timeout_s)

        def done(explanation: Any) -> None:
            _finish(request, 200, render.json_line(explanation.to_json()))

        def failed(failure: Failure) -> None:
            log.failure("delegating {path} failed", failure, path=path.show())
            _finish(request, 500, f"delegating {path.show()} failed\n".encode())

        explaining.addCallbacks(done, failed)
        return NOT_DONE_YET

    # --- one-shot and watched answers ---------------------------------------------------
    def _answer(
        self,
        request: WebRequest,
        view: Var[Any],
        ready: Callable[[Any], bool],
        show: Callable[[Any], tuple[int, bytes]],
    ) -> bytes | int:
        """Watch ``view`` (``?watch=true``: one line per change), or answer once it is
        ``ready`` (or after ``bind_timeout_s``)."""
        if _watching(request):

            def line(value: Any) -> bytes:
                # runs inside whatever changed the value (a dtab write): never raise there
                try:
                    return show(value)[1]
                except Exception as e:
                    log.failure("rendering a watched binding failed")
                    return render.json_line({"type": "exception", "message": str(e)})

            return self._watch(request, view.map(line))
        self._settle(request, view, ready, show)
        return NOT_DONE_YET

    def _settle(
        self,
        request: WebRequest,
        view: Var[Any],
        ready: Callable[[Any], bool],
        show: Callable[[Any], tuple[int, bytes]],
    ) -> None:
        """Observe until ``ready`` (or the timeout), answer with the value then, stop."""
        handle: list[Any] = []
        answered = [False]

        def answer() -> None:
            if answered[0]:
                return
            answered[0] = True
            if timer.active():
                timer.cancel()
            try:
                status, body = show(view.sample())  # sampled while still observed
            except Exception:
                log.failure("rendering a binding failed")
                status, body = 500, b"internal error\n"
            for h in handle:
                h.close()
            _finish(request, status, body)

        def on_value(value: Any) -> None:
            if ready(value):
                self.reactor.callLater(0, answer)  # let the current update finish first

        timer = self.reactor.callLater(self.bind_timeout_s, answer)
        try:
            handle.append(view.observe(on_value))
        except Exception:
            log.failure("binding failed")
            answer()
        request.notifyFinish().addErrback(lambda _: answer())

    def _watch(self, request: WebRequest, lines: Var[bytes | None]) -> int:
        if self.watches >= self.max_watches:
            raise ApiError(503, f"already {self.max_watches} watches open; try again later")
        self.watches += 1
        self.counts["watches/opened"] += 1
        streams = self._streams
        holder: list[WatchStream] = []

        def ended() -> None:
            self.watches -= 1
            for s in holder:
                streams.discard(s)

        stream = WatchStream(request, lines, ended)
        holder.append(stream)
        streams.add(stream)
        return NOT_DONE_YET


# --- what the name endpoints render ---------------------------------------------------


def _with_addrs(bound: Var[State]) -> Var[Any]:
    """``(state, {leaf: addr})``, following the leaves' addresses too."""

    def follow(state: State) -> Var[Any]:
        if not isinstance(state, Ok):
            return Const((state, {}))
        leaves = list(dict.fromkeys(render.leaves(state.value)))
        return Var.collect([b.addr for b in leaves]).map(
            lambda addrs: (state, dict(zip(leaves, addrs)))
        )

    return bound.flat_map(follow)


def _bind_ready(value: Any) -> bool:
    state, addrs = value
    if isinstance(state, Pending):
        return False
    return not any(isinstance(a, AddrPending) for a in addrs.values())


def _addr_ready(addr: Any) -> bool:
    return not isinstance(addr, AddrPending)


def _render_bind(value: Any) -> tuple[int, bytes]:
    state, addrs = value
    if isinstance(state, Ok):
        return 200, render.json_line(render.tree_json(state.value, addrs))
    if isinstance(state, Failed):
        error = state.error
        status = 400 if isinstance(error, DelegationError) else 502
        return status, render.json_line({"type": "exception", "message": str(error)})
    return 200, render.json_line({"type": "pending"})


def _render_addr(addr: Addr) -> tuple[int, bytes]:
    return 200, render.json_line(render.addr_json(addr))


# --- request helpers ------------------------------------------------------------------


def _strip_transformers(path: Path) -> Path:
    """``/%/<transformer>/.../#/namer/name`` -> ``/#/namer/name`` (as namerd's addr)."""
    elems = list(path)
    if elems[:1] == ["%"]:
        for i, e in enumerate(elems):
            if e in ("#", "$"):
                return Path.of(*elems[i:])
    return path


def _header(request: WebRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _arg(request: WebRequest, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    if not values:
        return None
    return str(values[0].decode("utf-8", "replace"))


def _watching(request: WebRequest) -> bool:
    value = _arg(request, "watch")
    return value is not None and value.strip().lower() in _TRUE


def _finish(request: WebRequest, status: int, body: bytes) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.setResponseCode(status)
    if body and status >= 400 and not request.responseHeaders.hasHeader(b"content-type"):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    if body and request.method != b"HEAD":
        request.write(body)
    request.finish()


class _ApiResource(Resource):
    isLeaf = True

    def __init__(self, api: NamerdApi) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.api = api

    def render(self, request: WebRequest) -> bytes | int:
        try:
            result = self.api.handle(request)
        except ApiError as e:
            request.setResponseCode(e.status)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{e.message}\n".encode()
        except Exception:
            log.failure("namerd: a request failed")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"internal error\n"
        return result


class _ApiChannel(HTTPChannel):
    """twisted.web's channel, answering an over-long request line (a huge ``dtab`` or
    ``path`` parameter) with a 414 that says so, where twisted.web hangs up silently."""

    def lineLengthExceeded(self, line: bytes) -> None:
        _refuse(
            self.transport,
            414,
            "URI Too Long",
            f"request line or header longer than {self.MAX_LENGTH} bytes",
        )


class _BoundedRequest(_TwistedRequest):
    """A request whose body may not exceed :data:`~.codec.MAX_DTAB_BYTES`: a larger
    Content-Length, or a chunked body that grows past it, gets a 413 and the connection is
    closed, before the body is read whole (and the request is never handled)."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        super().gotLength(length)  # type: ignore[no-untyped-call]
        if length is not None and length > codec.MAX_DTAB_BYTES:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > codec.MAX_DTAB_BYTES:
            self._refuse()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def process(self) -> None:
        if self._refused:
            return
        super().process()  # type: ignore[no-untyped-call]

    def _refuse(self) -> None:
        self._refused = True
        channel: Any = self.channel
        if channel is None:
            return
        limit = codec.MAX_DTAB_BYTES
        _refuse(
            channel.transport,
            413,
            "Payload Too Large",
            f"the body is larger than {limit} bytes, the limit of a dtab",
        )
        channel.dataReceived = lambda data: None


def _refuse(transport: Any, status: int, reason: str, message: str) -> None:
    """Answer and hang up, below twisted.web (which has not finished reading the request)."""
    if transport is None:
        return
    body = f"{message}\n".encode()
    transport.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    transport.loseConnection()
