"""Talking to namerd's HTTP interface: where it is, one-shot GETs, and watches that reconnect.

* :class:`NamerdLocation`: the addresses of the interpreter's ``dst`` (a path bound as
  any client's name, e.g. ``/$/inet/namerd/4180``), followed live; each connection goes
  to one of them, chosen at random.
* :class:`NamerdHttp`: ``get`` (a whole, bounded body within a timeout) and ``stream``
  (a ``?watch=true`` body handed over line by line, each line bounded).
* :class:`WatchVar`: a ``Var`` fed by one watch.  It connects when first observed and
  disconnects when the last observer goes (as every var here is lazy).  When the stream
  fails (namerd gone, a non-200 answer, a line that is not namerd's format or too long)
  it keeps its value, the last good one, and reconnects after a jittered exponential
  backoff (linkerd 1's ``retry``: ``baseSeconds`` doubling up to ``maxSeconds``); a
  stream that delivered a good update and then ended reconnects at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote, urlencode

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

from l5d_twisted.interpreters.namerd_json import FormatError, decode
from l5d_twisted.k8s.backoff import JitteredBackoff
from l5d_twisted.naming.addr import AddrBound, AddrPending
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.nametree import Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Closable, Ok, State, Var

log = Logger()

T = TypeVar("T")

# One line of a watch (a bound tree, an address set) and one whole answer: a line past
# this is no namerd document, and would only eat memory.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
# At most one warning per interpreter this often: every watch fails at once in an outage.
WARN_EVERY_S = 10.0


class NamerdUnavailable(Exception):
    """namerd could not be reached, or answered with an error."""


class NoNamerdAddress(NamerdUnavailable):
    pass


class NamerdRefused(NamerdUnavailable):
    """namerd answered 400: it will not bind this name with this dtab (bad or too costly)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- where namerd is ---------------------------------------------------------------------


class NamerdLocation:
    """The live addresses of ``dst``, bound by ``interpreter`` (the default interpreter
    with this mesh's namers); observed from the first :meth:`pick` until :meth:`close`."""

    def __init__(self, interpreter: Any, dst: Path, rng: random.Random) -> None:
        self._interpreter = interpreter
        self.dst = dst
        self._rng = rng
        self._addresses: list[tuple[str, int]] = []
        self._state = "pending"
        self._tree_watch: Closable | None = None
        self._leaf_watches: list[Closable] = []
        self._leaves: list[Any] = []
        # called once when addresses appear: watches that found none (DNS not answered yet
        # at start-up) connect then, rather than after a whole backoff
        self._waiters: list[Callable[[], None]] = []

    @property
    def resolving(self) -> bool:
        """No answer for ``dst`` yet (as at start-up, while DNS is asked)."""
        if self._addresses:
            return False
        return self._state == "pending" or any(
            isinstance(bound.addr.sample(), AddrPending) for bound in self._leaves
        )

    def when_found(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once ``dst`` has addresses (at once if it has)."""
        if self._addresses:
            callback()
        else:
            self._waiters.append(callback)

    def pick(self) -> tuple[str, int]:
        if self._tree_watch is None:
            self._tree_watch = self._interpreter.bind(Dtab.empty(), self.dst).observe(self._on_tree)
        if not self._addresses:
            raise NoNamerdAddress(
                f"namerd's dst {self.dst.show()} has no addresses ({self._state})"
            )
        return self._rng.choice(self._addresses)

    def _on_tree(self, state: State) -> None:
        for c in self._leaf_watches:
            c.close()
        self._leaf_watches = []
        self._leaves = []
        if not isinstance(state, Ok):
            self._state = type(state).__name__.lower()
            self._refresh()
            return
        try:
            result = evaluate(state.value)
        except Exception as e:
            self._state = f"cannot evaluate: {e}"
            self._refresh()
            return
        leaves: list[Any] = []
        _leaves_of(result, leaves)
        self._leaves = leaves
        for bound in leaves:
            self._leaf_watches.append(bound.addr.observe(lambda _a: self._refresh()))
        self._state = "bound" if leaves else "neg"
        self._refresh()

    def _refresh(self) -> None:
        found: dict[tuple[str, int], None] = {}
        for bound in self._leaves:
            addr = bound.addr.sample()
            if isinstance(addr, AddrBound):
                for a in addr.addresses:
                    found[(a.host, a.port)] = None
        self._addresses = sorted(found)
        if self._addresses and self._waiters:
            waiters, self._waiters = self._waiters, []
            for callback in waiters:
                callback()

    def close(self) -> None:
        for c in self._leaf_watches:
            c.close()
        self._leaf_watches = []
        if self._tree_watch is not None:
            self._tree_watch.close()
            self._tree_watch = None


def _leaves_of(tree: NameTree[Any], out: list[Any]) -> None:
    if isinstance(tree, Leaf):
        out.append(tree.value)
    elif isinstance(tree, Union):
        for b in tree.branches:
            _leaves_of(b.tree, out)
    elif isinstance(tree, Alt):
        for t in tree.trees:
            _leaves_of(t, out)


# --- HTTP ----------------------------------------------------------------------------------


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


class _Lines(Protocol):
    """A body handed over line by line (``on_line``), or whole (``on_line`` None); at most
    ``limit`` bytes of an unfinished line (or of the body) are held."""

    def __init__(self, on_line: Callable[[bytes], None] | None, limit: int) -> None:
        self._on_line = on_line
        self._limit = limit
        self._pieces: list[bytes] = []
        self._held = 0
        self.done: Deferred[bytes] = Deferred(lambda _d: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def abort(self, reason: Exception) -> None:
        if not self.done.called:
            self.done.errback(reason)
        self._stop()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.done.called:
            return
        if self._on_line is None or b"\n" not in data:
            self._pieces.append(data)
            self._held += len(data)
            if self._held > self._limit:
                self._pieces, self._held = [], 0
                what = "a line" if self._on_line is not None else "an answer"
                self.abort(FormatError(f"{what} longer than {self._limit} bytes"))
            return
        if self._pieces:
            self._pieces.append(data)
            data = b"".join(self._pieces)
        *lines, rest = data.split(b"\n")
        self._pieces, self._held = ([rest], len(rest)) if rest else ([], 0)
        for line in lines:
            if self.done.called:
                return  # a line before failed: the rest is not read
            if line.strip():
                self._on_line(line)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # noqa: N802
        if self.done.called:
            return
        rest = b"".join(self._pieces)
        self._pieces, self._held = [], 0
        if reason is None or isinstance(reason.value, ResponseDone | PotentialDataLoss):
            if self._on_line is None:
                self.done.callback(rest)
                return
            if rest.strip():
                self._on_line(rest)
            if not self.done.called:
                self.done.callback(b"")
        else:
            self.done.errback(reason)


@implementer(IPolicyForHTTPS)
class _OnePolicy:
    """The same TLS settings whatever address of namerd is connected to: the name checked
    is the tls block's commonName, not the address."""

    def __init__(self, creator: Any) -> None:
        self._creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 (Twisted's)
        return self._creator


class StreamHandle:
    """A running request: ``done`` fires when its body ends (or fails); ``abort()`` ends it."""

    def __init__(self, request: Deferred[Any]) -> None:
        self._request = request
        self._body: _Lines | None = None
        self.done: Deferred[bytes] = Deferred()

    def abort(self, reason: Exception | None = None) -> None:
        reason = reason or ConnectionAbortedError("closed")
        if not self.done.called:
            self.done.errback(reason)
        if self._body is not None:
            self._body.abort(reason)
        elif not self._request.called:
            self._request.cancel()


class NamerdHttp:
    """GETs to namerd: at ``location``, under ``/api/1/``, for ``namespace``."""

    def __init__(
        self,
        reactor: Any,
        location: NamerdLocation,
        namespace: str,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 10.0,
        tls: Any = None,
    ) -> None:
        self.reactor = reactor
        # ``tls``: the connection creator of the interpreter's tls block (http.tls.client_tls)
        self.scheme = "https" if tls is not None else "http"
        self.location = location
        self.namespace = namespace
        self.request_timeout_s = request_timeout_s
        # One connection per request: a watch holds its connection for as long as it
        # runs, and a request after an outage must not reuse a socket the outage broke.
        pool = cast(Any, HTTPConnectionPool)(reactor, persistent=False)  # untyped in Twisted
        pool._factory = _QuietClientFactory
        agent_options: dict[str, Any] = {"pool": pool, "connectTimeout": connect_timeout_s}
        if tls is not None:
            agent_options["contextFactory"] = _OnePolicy(tls)
        self._agent = cast(Any, Agent)(reactor, **agent_options)

    def url(self, family: str, params: dict[str, str]) -> bytes:
        host, port = self.location.pick()
        shown = f"[{host}]" if ":" in host else host
        ns = quote(self.namespace, safe="")
        query = "?" + urlencode(params) if params else ""
        return f"{self.scheme}://{shown}:{port}/api/1/{family}/{ns}{query}".encode()

    def _start(
        self,
        family: str,
        params: dict[str, str],
        on_line: Callable[[bytes], None] | None,
        accept: bytes,
    ) -> StreamHandle:
        url = self.url(family, params)  # NoNamerdAddress before any request
        headers = Headers({b"Accept": [accept], b"User-Agent": [b"l5d-twisted"]})
        request = self._agent.request(b"GET", url, headers)
        handle = StreamHandle(request)

        def on_response(response: IResponse) -> None:
            if handle.done.called:
                cast(Any, response).deliverBody(_Lines(None, 0))  # aborted meanwhile
                return
            ok = response.code == 200
            body = _Lines(on_line if ok else None, MAX_LINE_BYTES if ok else 4096)
            handle._body = body

            def finished(data: bytes) -> None:
                if handle.done.called:
                    return
                if ok:
                    handle.done.callback(data)
                else:
                    text = data[:300].decode("utf-8", "replace").strip()
                    error = NamerdRefused if response.code == 400 else NamerdUnavailable
                    handle.done.errback(error(f"namerd answered {response.code}: {text}"))

            def body_failed(failure: Failure) -> None:
                if not handle.done.called:
                    if not ok and isinstance(failure.value, FormatError):
                        handle.done.errback(NamerdUnavailable(f"namerd answered {response.code}"))
                    else:
                        handle.done.errback(failure)

            body.done.addCallbacks(finished, body_failed)
            cast(Any, response).deliverBody(body)

        def on_error(failure: Failure) -> None:
            if not handle.done.called:
                if isinstance(failure.value, CancelledError):
                    return
                handle.done.errback(failure)

        request.addCallbacks(on_response, on_error)
        return handle

    def stream(
        self, family: str, params: dict[str, str], on_line: Callable[[bytes], None]
    ) -> StreamHandle:
        """A watch: every line of the body to ``on_line``; ``done`` fires when it ends."""
        return self._start(family, {**params, "watch": "true"}, on_line, b"application/json")

    def get(
        self, family: str, params: dict[str, str], timeout_s: float | None = None
    ) -> Deferred[bytes]:
        """A one-shot GET's body (200 only), within ``timeout_s`` (``request_timeout_s``)."""
        try:
            handle = self._start(family, params, None, b"application/json")
        except NamerdUnavailable as e:
            return fail(e)
        limit = self.request_timeout_s if timeout_s is None else timeout_s
        timer = self.reactor.callLater(
            limit,
            lambda: handle.abort(NamerdUnavailable(f"no answer from namerd within {limit:g}s")),
        )

        def cleanup(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return handle.done.addBoth(cleanup)


# --- watches ---------------------------------------------------------------------------


class WatchStats:
    """Counters shared by every watch of one interpreter (``rt/<router>/interpreter/...``)."""

    def __init__(self, stats: Any) -> None:
        self.connects = stats.counter("connects")
        self.failures = stats.counter("failures")
        self.malformed = stats.counter("malformed")
        self.updates = {
            "bind": stats.counter("bind", "updates"),
            "addr": stats.counter("addr", "updates"),
        }
        self.open = 0
        self._gauge = stats.gauge("open_streams", fn=lambda: float(self.open))
        self.last_warning = float("-inf")
        self.quiet = 0  # failures not logged since the last warning


class WatchVar(Var[T], Generic[T]):
    """The value of one namerd watch (see the module doc).

    ``parse(document)`` turns a line's JSON into a value, None to ignore it (``pending``),
    or raises :class:`FormatError`: the stream is then dropped and reconnected, the value
    kept.  ``seed`` sets a value while nothing came from the watch itself.
    """

    def __init__(
        self,
        http: NamerdHttp,
        family: str,
        params: dict[str, str],
        parse: Callable[[Any], T | None],
        initial: T,
        backoff: JitteredBackoff,
        stats: WatchStats,
        name: str,
        on_refused: Callable[[str], T] | None = None,
    ) -> None:
        super().__init__(initial)
        self._on_refused = on_refused
        self._http = http
        self._family = family
        self._params = params
        self._parse = parse
        self._backoff = backoff
        self._stats = stats
        self._name = name
        self._handle: StreamHandle | None = None
        self._timer: Any = None
        self._active = False
        self._updated = False  # a good line since this connection started
        self.received = False  # a good line from the watch ever (else seeds may apply)
        self._waiting = False  # for namerd's address (NamerdLocation.when_found)
        self.connected = False

    def seed(self, value: T) -> None:
        if not self.received:
            self.update(value)

    # -- lifecycle (lazy: only while observed) --------------------------------------------
    def _on_first_observer(self) -> None:
        self._active = True
        self._connect()

    def _on_last_observer_gone(self) -> None:
        self._active = False
        self._cancel_timer()
        handle, self._handle = self._handle, None
        if handle is not None:
            self._closed_stream()
            handle.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _connect(self) -> None:
        self._timer = None
        if not self._active or self._handle is not None:
            return
        self._updated = False
        try:
            handle = self._http.stream(self._family, self._params, self._on_line)
        except NoNamerdAddress as e:  # dst not resolved (yet): connect as soon as it is
            if self._http.location.resolving:  # the first answer (DNS) is not in yet
                self._schedule(self._backoff.next_delay())
            else:
                self._retry(e)
            if not self._waiting:
                self._waiting = True
                self._http.location.when_found(self._found)
            return
        except Exception as e:
            self._retry(e)
            return
        self._handle = handle
        self.connected = True
        self._stats.connects.incr()
        self._stats.open += 1
        handle.done.addCallbacks(
            lambda _body: self._ended(handle), lambda f: self._failed(handle, f)
        )

    def _found(self) -> None:
        self._waiting = False
        if self._active and self._handle is None:
            self._cancel_timer()
            self._connect()

    def _on_line(self, line: bytes) -> None:
        handle = self._handle
        if handle is None:
            return
        try:
            value = self._parse(decode(line))
        except (FormatError, ValueError, TypeError, RecursionError) as e:
            self._stats.malformed.incr()
            handle.abort(FormatError(f"a bad update from namerd: {str(e)[:300]}"))
            return
        self._updated = True
        self._backoff.reset()
        if value is None:
            return
        self.received = True
        self._stats.updates[self._family].incr()
        self.update(value)

    def _closed_stream(self) -> None:
        self.connected = False
        self._stats.open -= 1

    def _ended(self, handle: StreamHandle) -> None:
        if handle is not self._handle:
            return
        self._handle = None
        self._closed_stream()
        if self._updated:  # namerd ended a stream that worked: ask again at once
            self._schedule(0.0)
        else:
            self._retry(NamerdUnavailable("namerd ended the watch without an update"))

    def _failed(self, handle: StreamHandle, failure: Failure) -> None:
        if handle is not self._handle:
            return  # stopped by us
        self._handle = None
        self._closed_stream()
        error = failure.value
        if isinstance(error, NamerdRefused) and self._on_refused is not None:
            # namerd's own answer, not an outage: it replaces the last value (and is
            # asked again after the backoff, in case the namespace's dtab changes)
            self.received = True
            self.update(self._on_refused(error.message))
        self._retry(error or NamerdUnavailable("the watch failed"))

    def _retry(self, error: BaseException) -> None:
        stats = self._stats
        stats.failures.incr()
        delay = self._backoff.next_delay()
        now = self._http.reactor.seconds()
        if now - stats.last_warning >= WARN_EVERY_S:  # an outage fails every watch at once
            log.warn(
                "namerd watch of {name} failed ({error}); keeping the last known answer, "
                "retrying in {delay:.1f}s ({quiet} other failures since the last warning)",
                name=self._name,
                error=str(error)[:300] or type(error).__name__,
                delay=delay,
                quiet=stats.quiet,
            )
            stats.last_warning, stats.quiet = now, 0
        else:
            stats.quiet += 1
        self._schedule(delay)

    def _schedule(self, delay: float) -> None:
        if not self._active:
            return
        self._cancel_timer()
        self._timer = self._http.reactor.callLater(delay, self._connect)
