"""KubernetesApi against a raw loopback server that misbehaves in ways twisted.web will not."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import ApiError, ApiTimeout, KubernetesApi


class StalledAnswer(Protocol):
    """Answers ``head`` and the start of a body that never finishes, then keeps the
    connection open."""

    def __init__(self, closed: Deferred[None], head: bytes) -> None:
        self.closed = closed
        self.head = head

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if b"\r\n\r\n" in data:
            self.transport.write(
                self.head + b'\r\nContent-Length: 1000\r\n\r\n{"message": "etcd is'
            )  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        self.closed.callback(None)


async def closed_soon(closed: Deferred[None]) -> bool:
    deadline = deferLater(reactor, 5.0, lambda: None)
    _, first = await DeferredList([closed, deadline], fireOnOneCallback=True, consumeErrors=True)
    deadline.cancel()
    return bool(first == 0)


@pytest_twisted.ensureDeferred
async def test_list_with_a_stalled_body_times_out_and_closes() -> None:
    closed: Deferred[None] = Deferred()
    port = reactor.listenTCP(
        0,
        Factory.forProtocol(lambda: StalledAnswer(closed, b"HTTP/1.1 200 OK")),
        interface="127.0.0.1",
    )  # type: ignore[attr-defined]
    try:
        api = KubernetesApi(
            reactor, ApiAccess(f"http://127.0.0.1:{port.getHost().port}"), request_timeout_s=0.3
        )
        with pytest.raises(ApiTimeout):
            await api.get_json("/api/v1/namespaces/default/endpoints")
        assert await closed_soon(closed), "the connection was still open 5 s after the timeout"
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_watch_error_answer_with_a_stalled_body_is_given_up_and_closed() -> None:
    closed: Deferred[None] = Deferred()
    port = reactor.listenTCP(
        0,
        Factory.forProtocol(lambda: StalledAnswer(closed, b"HTTP/1.1 500 Internal Server Error")),
        interface="127.0.0.1",
    )  # type: ignore[attr-defined]
    try:
        api = KubernetesApi(
            reactor, ApiAccess(f"http://127.0.0.1:{port.getHost().port}"), request_timeout_s=0.3
        )
        handle = api.watch(
            "/api/v1/namespaces/default/endpoints",
            {"watch": "true"},
            lambda _line: None,
            idle_timeout_s=60.0,
        )
        with pytest.raises(ApiError) as raised:
            await handle.done
        assert raised.value.status == 500
        # The half-read error answer must not keep the connection (it did until the server closed it).
        assert await closed_soon(closed), "the connection was still open 5 s after giving up"
    finally:
        await port.stopListening()
