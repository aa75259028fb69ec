"""The lean epoll reactor (``l5d_twisted.eventloop``): Twisted's poll loop without the
legacy per-event log context, installed by ``l5d-twisted run``."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from l5d_twisted.eventloop import install, lean_do_poll

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakePoller:
    def __init__(self, events: list[tuple[int, int]] | OSError) -> None:
        self.events = events
        self.asked: list[tuple[float, int]] = []

    def poll(self, timeout: float, max_events: int) -> list[tuple[int, int]]:
        self.asked.append((timeout, max_events))
        if isinstance(self.events, OSError):
            raise self.events
        return self.events


class FakeReactor:
    def __init__(self, events: list[tuple[int, int]] | OSError) -> None:
        self._poller = FakePoller(events)
        self._selectables: dict[int, Any] = {3: "three", 5: "five"}
        self.dispatched: list[tuple[Any, int, int]] = []

    def _doReadOrWrite(self, selectable: Any, fd: int, event: int) -> None:
        self.dispatched.append((selectable, fd, event))
        self._selectables.pop(5, None)  # a read may close another descriptor


def test_every_ready_descriptor_still_tracked_is_dispatched_in_order() -> None:
    reactor = FakeReactor([(3, 1), (4, 1), (5, 4)])
    lean_do_poll(reactor, 0.5)
    # 4 is unknown; 5 was closed by 3's read before its turn, as Twisted skips it too
    assert reactor.dispatched == [("three", 3, 1)]
    assert reactor._poller.asked == [(0.5, 2)]


def test_no_timeout_waits_indefinitely_and_eintr_is_a_quiet_return() -> None:
    reactor = FakeReactor(OSError(errno.EINTR, "interrupted"))
    lean_do_poll(reactor, None)
    assert reactor._poller.asked == [(-1, 2)] and reactor.dispatched == []
    reactor = FakeReactor(OSError(errno.EBADF, "bad"))
    with pytest.raises(OSError):
        lean_do_poll(reactor, 1)


def test_not_installed_over_a_reactor_already_running() -> None:
    # this test process has a reactor (pytest-twisted installed it): left alone
    from twisted.internet import reactor

    assert not install()
    from twisted.internet import reactor as still

    assert still is reactor


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": REPO, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


SERVE_ONE_REQUEST = """
    from l5d_twisted.eventloop import install
    installed = install()
    from twisted.internet import reactor, protocol
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data.upper())

    class Client(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"ping")
        def dataReceived(self, data):
            print("got", data.decode(), flush=True)
            reactor.stop()

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    connectProtocol(endpoint, Client())
    reactor.callLater(20, reactor.stop)
    reactor.run()
    print(installed, type(reactor).__name__, reactor.doIteration.func.__name__
          if hasattr(reactor.doIteration, "func") else "twisted's")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux's")
def test_installed_it_serves_real_connections() -> None:
    result = run_python(SERVE_ONE_REQUEST)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["got PING", "True EPollReactor lean_do_poll"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux's")
def test_l5d_reactor_twisted_keeps_twisted_s_own() -> None:
    result = run_python(SERVE_ONE_REQUEST, L5D_REACTOR="twisted")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "got PING"
    assert result.stdout.splitlines()[1].startswith("False ")
    assert result.stdout.splitlines()[1].endswith("twisted's")
