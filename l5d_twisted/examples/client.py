"""A small keep-alive HTTP/1.1 client that can talk through an ``http_proxy``.

``hello`` calls ``world`` through the mesh the way any app would with
``http_proxy=$NODE:4140``: an absolute-form request (``GET http://world/ HTTP/1.1``) sent
to the proxy.  The demo's traffic generator and the benchmark's rate generator use it too.

One request per connection at a time; idle connections are pooled per destination (the
proxy, or the origin when there is no proxy).  A request that fails on a *reused*
connection before any byte of the answer arrived is retried once on a fresh one: the
server may have closed it while idle, and only idempotent GET/HEADs are sent this way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class ClientError(Exception):
    """The call failed before a complete response arrived."""


@dataclass
class ClientResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass(frozen=True)
class Target:
    """Where a URL's request goes: its host header, request target and TCP destination."""

    host: bytes
    request_target: bytes  # absolute form through a proxy, origin form otherwise
    dest_host: str
    dest_port: int


def parse_proxy(value: str | None) -> tuple[str, int] | None:
    """``host:port`` or ``http://host:port[/]`` -> (host, port); empty/None -> None."""
    if not value:
        return None
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"unsupported proxy {value!r}: expected host:port or http://host:port")
    return parts.hostname, parts.port or 80


def proxy_from_env(env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    env = os.environ if env is None else env
    return parse_proxy(env.get("http_proxy") or env.get("HTTP_PROXY"))


def resolve_target(url: str, proxy: tuple[str, int] | None) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}: expected http://host[:port]/path")
    authority = parts.netloc.encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if proxy is not None:
        return Target(authority, b"http://%s%s" % (authority, path.encode()), proxy[0], proxy[1])
    return Target(authority, path.encode(), parts.hostname, parts.port or 80)


class _Connection(Protocol):
    """One upstream connection carrying one request at a time."""

    def __init__(self, client: HttpClient, key: tuple[str, int]) -> None:
        self.client = client
        self.key = key
        self.reused = False
        self._waiting: Deferred[ClientResponse] | None = None
        self._received_any = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._headers_done = False
        self._framed = False  # has Content-Length or chunked: EOF does not end the body
        self._keep_alive = False
        self._lost = False

    # -- sending ------------------------------------------------------------------------
    def send(self, data: bytes) -> Deferred[ClientResponse]:
        self._waiting = Deferred(self._cancelled)
        self._received_any = False
        self._headers = []
        self._body = []
        self._body_bytes = 0
        self._headers_done = False
        self._framed = False
        transport: Any = self.transport
        transport.write(data)
        return self._waiting

    def _cancelled(self, _d: Deferred[ClientResponse]) -> None:
        # The answer is no longer wanted; the connection is mid-exchange, so drop it.
        self._waiting = None
        if self.transport is not None:
            self._transport().abortConnection()

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        for k, v in self._headers:
            lk = k.lower()
            if lk == b"content-length" or (lk == b"transfer-encoding" and b"chunked" in v.lower()):
                self._framed = True
        self._keep_alive = bool(self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_RESPONSE_BYTES:
            raise ValueError("response body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete(self._keep_alive)

    def _complete(self, reusable: bool) -> None:
        waiting, self._waiting = self._waiting, None
        response = ClientResponse(
            int(self._parser.get_status_code()), self._headers, b"".join(self._body)
        )
        if reusable and not self._lost:
            self.client._release(self)
        elif self.transport is not None and not self._lost:
            self._transport().loseConnection()
        if waiting is not None:
            waiting.callback(response)

    # -- transport events ---------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self._received_any = True
        if self._waiting is None:
            # Bytes nobody asked for (e.g. a stray answer on an idle connection): not reusable.
            self.client._forget(self)
            if self.transport is not None:
                self._transport().loseConnection()
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, ValueError) as e:
            self._fail(ClientError(f"bad response: {e}"))
            if self.transport is not None:
                self._transport().abortConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._lost = True
        self.client._forget(self)
        if self._waiting is None:
            return
        if self._headers_done and not self._framed:
            self._complete(reusable=False)  # body delimited by end of connection
            return
        self._fail(
            ClientError(
                f"connection closed before a complete response ({reason.getErrorMessage()})"
            )
        )

    def _fail(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(error)

    def _transport(self) -> Any:
        return self.transport

    @property
    def failed_unanswered_reused(self) -> bool:
        return self.reused and not self._received_any


class HttpClient:
    """GETs over pooled keep-alive connections, through ``proxy`` when given.

    ``timeout_s`` bounds each call (connect, send and complete answer), waiting included.
    At most ``max_connections_per_dest`` connections are open to one destination; calls
    beyond that wait (first come, first served) for a connection to come free, so an
    overloaded upstream is not also flooded with new connections.
    """

    def __init__(
        self,
        reactor: Any,
        proxy: tuple[str, int] | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 2.0,
        max_idle_per_dest: int = 128,
        max_connections_per_dest: int = 1024,
    ) -> None:
        self.reactor = reactor
        self.proxy = proxy
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle_per_dest = max_idle_per_dest
        self.max_connections_per_dest = max_connections_per_dest
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._open: dict[tuple[str, int], int] = {}  # connected or connecting, per destination
        # calls waiting for a connection: handed a free connection, or None when a slot frees
        self._waiters: dict[tuple[str, int], list[Deferred[_Connection | None]]] = {}

    def get(
        self, url: str, headers: list[tuple[bytes, bytes]] | tuple[()] = ()
    ) -> Deferred[ClientResponse]:
        target = resolve_target(url, self.proxy)
        return self.request(b"GET", target, list(headers))

    def request(
        self, method: bytes, target: Target, headers: list[tuple[bytes, bytes]]
    ) -> Deferred[ClientResponse]:
        lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target.request_target, target.host)]
        for name, value in headers:
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        data = b"".join(lines)
        key = (target.dest_host, target.dest_port)
        d = Deferred.fromCoroutine(self._exchange(key, data))
        d.addTimeout(self.timeout_s, self.reactor, onTimeoutCancel=self._timed_out)
        return d

    def _timed_out(self, result: Any, timeout: float) -> Any:
        if isinstance(result, Failure) and result.check(CancelledError):
            raise ClientError(f"no complete response within {timeout:g}s")
        return result

    async def _exchange(self, key: tuple[str, int], data: bytes) -> ClientResponse:
        conn = await self._connection(key)
        try:
            return await conn.send(data)
        except ClientError:
            if not conn.failed_unanswered_reused:
                raise
        conn = await self._connection(key, fresh=True)
        return await conn.send(data)

    async def _connection(self, key: tuple[str, int], fresh: bool = False) -> _Connection:
        idle = self._idle.get(key)
        if idle and not fresh:
            conn = idle.pop()
            conn.reused = True
            return conn
        if self._open.get(key, 0) >= self.max_connections_per_dest:
            handed = await self._wait_for_connection(key)
            if handed is not None:
                handed.reused = True
                return handed
        self._open[key] = self._open.get(key, 0) + 1
        endpoint = TCP4ClientEndpoint(self.reactor, key[0], key[1], timeout=self.connect_timeout_s)
        conn = _Connection(self, key)
        try:
            await endpoint.connect(_SingleProtocolFactory(conn))  # type: ignore[arg-type]
        except BaseException as e:
            self._slot_freed(key)
            if isinstance(e, CancelledError):
                raise
            raise ClientError(f"cannot connect to {key[0]}:{key[1]}: {e}") from e
        conn._transport().setTcpNoDelay(True)
        self._all.add(conn)
        return conn

    def _wait_for_connection(self, key: tuple[str, int]) -> Deferred[_Connection | None]:
        waiters = self._waiters.setdefault(key, [])

        def cancel(d: Deferred[_Connection | None]) -> None:
            if d in waiters:
                waiters.remove(d)

        d: Deferred[_Connection | None] = Deferred(cancel)
        waiters.append(d)
        return d

    def _next_waiter(self, key: tuple[str, int]) -> Deferred[_Connection | None] | None:
        waiters = self._waiters.get(key)
        return waiters.pop(0) if waiters else None

    def _slot_freed(self, key: tuple[str, int]) -> None:
        self._open[key] = self._open.get(key, 1) - 1
        waiter = self._next_waiter(key)
        if waiter is not None:
            waiter.callback(None)  # it opens a connection of its own

    def _release(self, conn: _Connection) -> None:
        waiter = self._next_waiter(conn.key)
        if waiter is not None:
            waiter.callback(conn)
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.max_idle_per_dest:
            self._forget(conn)
            if conn.transport is not None:
                conn._transport().loseConnection()
            return
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        if conn in self._all:
            self._all.discard(conn)
            self._slot_freed(conn.key)

    def close(self) -> None:
        """Close every connection (in-flight calls fail)."""
        for conn in list(self._all):
            if conn.transport is not None:
                conn._transport().loseConnection()
        self._idle.clear()
        self._all.clear()
        self._open.clear()
        waiters = [d for ds in self._waiters.values() for d in ds]
        self._waiters.clear()
        for d in waiters:
            d.errback(ClientError("client closed"))


class _SingleProtocolFactory:
    """An ``IProtocolFactory`` handing out one prepared protocol."""

    def __init__(self, protocol: _Connection) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> _Connection:
        return self._protocol

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass
