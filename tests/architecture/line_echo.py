"""A test-only protocol, ``test.lineEcho``: one line in, one line out, routed by the mesh.

What a protocol module is (compare ``l5d_twisted/protocols/http.py``), and nothing in
``router/`` or ``mesh.py`` knows it: a client sends ``<service> <text>\\n``; the server
turns it into a ``Request`` with ``Host: <service>`` and the text as its body, so the
default identifier names it ``/svc/<service>``; the endpoint sends the body as one line on
a pooled connection (``http.pool.ConnectionPool`` meets the ``SessionPool`` seam with any
session) and answers with the line that comes back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from l5d_twisted.config.model import RouterConfig, ServerConfig
from l5d_twisted.config.params import ClientParams
from l5d_twisted.errors import ConnectionFailed
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.http.pool import ConnectionPool, PoolSettings
from l5d_twisted.naming.addr import Address
from l5d_twisted.protocols.base import Listening, NoConfig, RouterProtocol
from l5d_twisted.request_context import CONNECTION, Connection
from l5d_twisted.router.stacks import DEFAULT_STACKS
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver

KIND = "test.lineEcho"


# -- serving -----------------------------------------------------------------------------


class LineServer(LineReceiver):
    delimiter = b"\n"

    def __init__(self, service: Service[Request, Response]) -> None:
        self.service = service

    def connectionMade(self) -> None:
        self.connection = Connection(self.transport)

    def lineReceived(self, line: bytes) -> None:
        name, _, text = line.partition(b" ")
        request = Request(b"LINE", b"/", Headers([(b"host", name)]), BufferedBody(text))
        request.ctx[CONNECTION] = self.connection
        self.service(request).addCallbacks(self._answer, self._failed)

    def _answer(self, response: Response) -> None:
        self.sendLine(response.body.data)

    def _failed(self, failure: Failure) -> None:
        self.sendLine(b"error: " + str(failure.value).split("\n")[0].encode())


def serve(
    reactor: Any,
    router: RouterConfig,
    server: ServerConfig,
    service: Service[Request, Response],
    stats: StatsReceiver,
) -> Listening:
    factory = Factory.forProtocol(lambda: LineServer(service))
    port: Listening = reactor.listenTCP(server.port, factory, interface=server.ip)
    return port


# -- reaching endpoints ------------------------------------------------------------------


class LineSession(LineReceiver):
    """One connection to a backend; carries one exchange at a time (a Session)."""

    delimiter = b"\n"

    def __init__(self, endpoint: LineEndpoint) -> None:
        self.endpoint = endpoint
        self.reusable = True
        self.idle_since = 0.0
        self._waiting: Deferred[Any] | None = None

    def send(self, request: Any, may_resend: bool = True) -> Deferred[Any]:
        self.reusable = False
        self._waiting = Deferred()
        self.sendLine(request.body.data)
        return self._waiting

    def lineReceived(self, line: bytes) -> None:
        waiting, self._waiting = self._waiting, None
        self.reusable = True
        self.endpoint.pool.release(self)
        if waiting is not None:
            waiting.callback(Response(200, body=BufferedBody(line)))

    def close_idle(self) -> None:
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.reusable = False
        self.endpoint.pool.lost(self)
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(ConnectionFailed("the backend closed the connection"))


class LineEndpoint(Service[Request, Response]):
    def __init__(
        self,
        reactor: Any,
        address: Address,
        settings: PoolSettings,
        stats: StatsReceiver,
        *,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> None:
        self.pool: ConnectionPool[LineSession] = ConnectionPool(
            reactor, address, settings, lambda: LineSession(self), stats, connect_timeout_s
        )

    def __call__(self, request: Request) -> Deferred[Response]:
        session = self.pool.take_idle()
        if session is not None:
            return session.send(request)
        try:
            return self.pool.acquire().addCallback(lambda s: s.send(request))
        except Exception as e:
            return fail(e)

    def close(self) -> Deferred[None]:
        return self.pool.close()


def client_settings(router: RouterConfig, client: ClientParams) -> PoolSettings:
    pool = client.host_connection_pool
    return PoolSettings(
        min_size=pool.min_size, max_size=pool.max_size, idle_time_s=pool.idle_time_ms / 1000.0
    )


LINE_ECHO = RouterProtocol(
    name=KIND,
    serve=serve,
    endpoint_factory=LineEndpoint,
    client_settings=client_settings,
    stacks=DEFAULT_STACKS,
    default_port=4199,
    default_identifier="io.l5d.header.token",
    default_classifier="io.l5d.http.nonRetryable5XX",
)


def line_echo_protocol(config: NoConfig) -> RouterProtocol:
    return LINE_ECHO


# -- a backend ---------------------------------------------------------------------------


class EchoBackend(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(b"echo: " + line)
