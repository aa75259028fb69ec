"""The few Kubernetes API calls discovery needs, on the reactor (treq), never blocking.

* :meth:`KubernetesApi.get_json` - a list request, answering the decoded JSON object.
* :meth:`KubernetesApi.watch` - a watch request whose body is streamed line by line
  (one JSON event per line) to a callback as bytes arrive; an idle timer aborts a stream
  that goes silent (a half-open connection would otherwise keep stale endpoints forever).

A non-200 answer raises :class:`ApiError` with the HTTP status (410 Gone and 404 matter to
the watcher); a body that is not a JSON object raises :class:`MalformedResponse`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlencode

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from l5d_twisted.k8s.access import ApiAccess

log = Logger()

# An API object (EndpointSlice lists included) fits easily; a stream line that grows past
# this is not a watch event and would only eat memory.
MAX_LINE_BYTES = 16 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class MalformedResponse(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class ApiTimeout(Exception):
    """The API did not answer (or finish answering) in time."""


class StreamIdle(ApiTimeout):
    """A watch stream sent nothing for longer than its idle timeout."""


def _error_message(body: bytes) -> str:
    """The ``message`` of a Kubernetes Status body, else the start of the body."""
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
            return str(decoded["message"])
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace") or "(empty body)"


def _tls_policy(access: ApiAccess) -> BrowserLikePolicyForHTTPS:
    if access.ca_file is None:
        return BrowserLikePolicyForHTTPS()
    from twisted.internet.ssl import Certificate

    with open(access.ca_file, "rb") as f:
        return BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(f.read()))


class _LineStream(Protocol):
    """Receives a streamed body, hands each complete line to ``on_line``."""

    def __init__(self, on_line: Callable[[bytes], None], done: Deferred[None]) -> None:
        self._on_line = on_line
        self._done = done
        # The start of an unfinished line, as received: a large object (an EndpointSlice
        # of 1,000 endpoints is ~130 kB) arrives in many pieces, and appending each to one
        # bytes and searching it all for a newline again cost O(pieces x line).
        self._pieces: list[bytes] = []
        self._pending = 0
        self.on_data: Callable[[], None] = lambda: None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self.on_data()
        if b"\n" not in data:
            self._pieces.append(data)
            self._pending += len(data)
            if self._pending > MAX_LINE_BYTES:
                self._pieces, self._pending = [], 0
                self.abort(MalformedResponse("watch stream line too long"))
            return
        if self._pieces:
            self._pieces.append(data)
            data = b"".join(self._pieces)
        *lines, rest = data.split(b"\n")
        self._pieces, self._pending = ([rest], len(rest)) if rest else ([], 0)
        for line in lines:
            if self._done.called:
                return  # aborted by an earlier line (an ERROR event): ignore the rest
            if line.strip():
                self._on_line(line)

    def abort(self, reason: Exception) -> None:
        if not self._done.called:
            self._done.errback(Failure(reason))
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # noqa: N802
        if self._done.called:
            return
        rest = b"".join(self._pieces)
        self._pieces, self._pending = [], 0
        if rest.strip():
            self._on_line(rest)
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(None)
        else:
            self._done.errback(reason)


class _BodyReader(Protocol):
    """Collects a whole body; cancelling ``done`` closes the connection (treq's does not)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred(
            lambda _d: self.transport.stopProducing() if self.transport else None
        )

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # noqa: N802
        if self.done.called:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(reason)


def _read_body(response: IResponse) -> Deferred[bytes]:
    reader = _BodyReader()
    cast(Any, response).deliverBody(reader)  # IResponse is a zope interface
    return reader.done


def _discard(response: IResponse) -> None:
    finished: Deferred[None] = Deferred()
    finished.addErrback(lambda _failure: None)
    stream = _LineStream(lambda _line: None, finished)
    cast(Any, response).deliverBody(stream)
    stream.abort(ConnectionAbortedError("not wanted any more"))


class WatchHandle:
    """A running watch: ``done`` fires when the stream ends; ``abort()`` ends it now."""

    def __init__(self, done: Deferred[None]) -> None:
        self.done = done
        self._stream: _LineStream | None = None
        self._request: Deferred[Any] | None = None

    def abort(self, reason: Exception | None = None) -> None:
        reason = reason or ConnectionAbortedError("watch aborted")
        if self._stream is not None:
            self._stream.abort(reason)
        # Fail ``done`` with the reason before cancelling a pending request, whose own
        # CancelledError would otherwise be reported instead.
        if not self.done.called:
            self.done.errback(Failure(reason))
        if self._stream is None and self._request is not None and not self._request.called:
            self._request.cancel()


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


class KubernetesApi:
    """HTTP(S) calls to the API described by an :class:`ApiAccess`."""

    def __init__(self, reactor: Any, access: ApiAccess, request_timeout_s: float = 10.0) -> None:
        self.reactor = reactor
        self.access = access
        self.request_timeout_s = request_timeout_s
        # No persistent connections: a watch holds its connection for minutes, and a list
        # after an outage must not reuse a socket the outage broke.
        pool = HTTPConnectionPool(reactor, persistent=False)
        pool._factory = _QuietClientFactory  # one connection per call: do not log each
        agent = Agent(
            reactor, contextFactory=_tls_policy(access), pool=pool, connectTimeout=request_timeout_s
        )
        self._http = HTTPClient(cast(IAgent, agent))

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = ("?" + urlencode(dict(params))) if params else ""
        return self.access.base_url.rstrip("/") + path + query

    def _headers(self) -> Headers:
        headers = Headers({b"Accept": [b"application/json"], b"User-Agent": [b"l5d-twisted"]})
        token = self.access.bearer_token()
        if token:
            headers.setRawHeaders(b"Authorization", [b"Bearer " + token.encode()])
        return headers

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path``; the JSON object answered, or ApiError/MalformedResponse."""
        return await self.request_json("GET", path, params)

    async def request_json(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> dict[str, Any]:
        """``method`` on ``path`` with ``json_body`` (JSON) if given; the JSON object answered
        (any 2xx), or ApiError/MalformedResponse (namerd's k8s dtab storage writes with it)."""
        headers = self._headers()
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setRawHeaders(b"Content-Type", [b"application/json"])
        d = self._http.request(method, self.url(path, params), headers=headers, data=data)
        timed_out: list[bool] = []

        def expire() -> None:
            timed_out.append(True)
            current.cancel()

        current: Deferred[Any] = d
        timer = self.reactor.callLater(self.request_timeout_s, expire)
        try:
            response: IResponse = await d
            current = _read_body(response)
            timer.reset(self.request_timeout_s)  # a slow body is bounded too
            body: bytes = await current
        except CancelledError:
            if timed_out:
                raise ApiTimeout(
                    f"no answer from {self.access.base_url} within {self.request_timeout_s:g}s"
                ) from None
            raise
        finally:
            if timer.active():
                timer.cancel()
        if not 200 <= response.code < 300 or (method == "GET" and response.code != 200):
            raise ApiError(response.code, _error_message(body))
        try:
            decoded = json.loads(body)
        except ValueError as e:
            raise MalformedResponse(f"response is not JSON: {e}") from None
        if not isinstance(decoded, dict):
            raise MalformedResponse(f"response is a JSON {type(decoded).__name__}, not an object")
        return decoded

    def watch(
        self,
        path: str,
        params: Mapping[str, str],
        on_line: Callable[[bytes], None],
        idle_timeout_s: float,
    ) -> WatchHandle:
        """Start a watch; each body line goes to ``on_line`` as it arrives.

        ``handle.done`` fires with None when the server ends the stream, or fails with
        ApiError (non-200 answer), StreamIdle, or the connection error.
        """
        done: Deferred[None] = Deferred()
        handle = WatchHandle(done)
        # unbuffered: treq's default response keeps every piece of the body for a later
        # content() call, i.e. the whole watch stream (every changed object, 130 kB for a
        # slice of 1,000 endpoints) until the watch ends, minutes later
        request = self._http.get(self.url(path, params), headers=self._headers(), unbuffered=True)
        handle._request = request

        def on_idle() -> None:
            if handle._stream is None:
                handle.abort(StreamIdle(f"no answer to watch within {self.request_timeout_s:g}s"))
            else:
                handle.abort(StreamIdle(f"watch stream silent for {idle_timeout_s:g}s"))

        idle = self.reactor.callLater(self.request_timeout_s, on_idle)

        def on_response(response: IResponse) -> Deferred[None] | None:
            if done.called:
                _discard(response)  # aborted meanwhile: close the connection
                return None
            if response.code != 200:
                # The error body is read under the same timer, and through a stream that
                # abort() closes: a server that stalls mid-answer must not keep the socket.
                lines: list[bytes] = []
                body_read: Deferred[None] = Deferred()
                handle._stream = _LineStream(lines.append, body_read)

                def fail(_: object) -> None:
                    if not done.called:
                        done.errback(
                            Failure(ApiError(response.code, _error_message(b"\n".join(lines))))
                        )

                body_read.addBoth(fail)
                cast(Any, response).deliverBody(handle._stream)
                return None
            stream = _LineStream(on_line, done)

            def touched() -> None:
                if idle.active():
                    idle.reset(idle_timeout_s)

            stream.on_data = touched
            idle.reset(idle_timeout_s)
            handle._stream = stream
            cast(Any, response).deliverBody(stream)  # IResponse is a zope interface
            return None

        def on_request_error(failure: Failure) -> None:
            if not done.called:
                done.errback(failure)

        request.addCallbacks(on_response, on_request_error)

        def cleanup(result: Any) -> Any:
            if idle.active():
                idle.cancel()
            return result

        done.addBoth(cleanup)
        return handle
