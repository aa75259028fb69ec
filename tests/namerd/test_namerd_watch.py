"""``?watch=true``: a real namerd streams dtab, list and bind changes; a watch keeps only
the latest line for a slow reader, ends with its client, and their number is bounded."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from namerd_helpers import NamerdProcess
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from l5d_twisted.namerd.api import NamerdApi
from l5d_twisted.namerd.store import InMemoryDtabStore
from l5d_twisted.namerd.stream import WatchStream
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.var import Var

DTAB = {"Content-Type": "application/dtab"}


class Watch:
    """A streaming GET read line by line, each read with a deadline."""

    def __init__(self, namerd: NamerdProcess, path: str, headers: dict[str, str] | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", namerd.port, timeout=15)
        self.conn.request("GET", path, headers=headers or {})
        self.rsp = self.conn.getresponse()
        assert self.rsp.status == 200
        assert self.rsp.getheader("transfer-encoding") == "chunked"

    def line(self) -> bytes:
        line = self.rsp.readline()  # the socket timeout (15 s) is the deadline
        assert line.endswith(b"\n"), line
        return line

    def close(self) -> None:
        self.conn.close()


def replace_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def test_a_dtab_watch_delivers_each_update(namerd: NamerdProcess) -> None:
    watch = Watch(namerd, "/api/1/dtabs/default?watch=true", {"Accept": "application/dtab"})
    try:
        assert watch.line() == b"/svc => /#/io.l5d.fs\n"
        for i in range(3):
            started = time.monotonic()
            dtab = f"/svc => /#/io.l5d.fs/v{i}"
            assert namerd.call("PUT", "/api/1/dtabs/default", dtab, DTAB).status == 204
            assert watch.line() == f"{dtab}\n".encode()
            assert time.monotonic() - started < 10
    finally:
        watch.close()


def test_a_list_watch_sees_namespaces_come_and_go(namerd: NamerdProcess) -> None:
    watch = Watch(namerd, "/api/1/dtabs?watch=1")
    try:
        assert json.loads(watch.line()) == ["default"]
        assert namerd.call("POST", "/api/1/dtabs/canary", "/a => /b", DTAB).status == 204
        assert json.loads(watch.line()) == ["canary", "default"]
        assert namerd.call("DELETE", "/api/1/dtabs/canary").status == 204
        assert json.loads(watch.line()) == ["default"]
    finally:
        watch.close()


def test_a_bind_watch_follows_dtab_and_namer_changes(namerd: NamerdProcess) -> None:
    (namerd.disco / "v2").write_text("127.0.0.1 9002\n")
    watch = Watch(namerd, "/api/1/bind/default?path=/svc/hello&watch=true")
    try:
        first = json.loads(watch.line())
        assert first["bound"]["id"] == "/#/io.l5d.fs/hello"
        assert first["bound"]["addr"]["addrs"][0]["port"] == 8081
        # the dtab moves the name
        dtab = "/svc => /#/io.l5d.fs; /svc/hello => /#/io.l5d.fs/v2"
        assert namerd.call("PUT", "/api/1/dtabs/default", dtab, DTAB).status == 204
        moved = json.loads(watch.line())
        while moved["bound"]["addr"]["type"] == "pending":
            moved = json.loads(watch.line())
        assert moved["bound"]["id"] == "/#/io.l5d.fs/v2"
        assert moved["bound"]["addr"]["addrs"][0]["port"] == 9002
        # the namer's answer changes (io.l5d.fs watches its directory)
        # written whole (temp file + rename), as a config tool would: an in-place write can
        # be read half-done (an empty file) and streamed as an intermediate update
        replace_atomically(namerd.disco / "v2", "127.0.0.1 9003\n")
        changed = json.loads(watch.line())
        assert changed["bound"]["addr"]["addrs"][0]["port"] == 9003
    finally:
        watch.close()


# --- the stream itself, on fakes --------------------------------------------------------


class FakeRequest:
    def __init__(self, path: bytes = b"/", args: dict[bytes, list[bytes]] | None = None):
        self.path = path
        self.method = b"GET"
        self.args = args or {}
        self.written: list[bytes] = []
        self.producer: Any = None
        self.finished = False
        self.code = 200
        self.headers: dict[bytes, bytes] = {}
        self._finish: Deferred[None] = Deferred()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def notifyFinish(self) -> Deferred[None]:
        return self._finish

    def getHeader(self, name: bytes) -> None:
        return None

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def client_went_away(self) -> None:
        self._finish.errback(ConnectionError("gone"))


def test_a_paused_watch_keeps_only_the_latest_line() -> None:
    source: Var[bytes | None] = Var(b"a\n")
    request = FakeRequest()
    WatchStream(request, source)
    request.producer.pauseProducing()  # the client stopped reading
    for i in range(1000):
        source.update(f"v{i}\n".encode())
    assert request.written == [b"", b"a\n"]
    request.producer.resumeProducing()
    assert request.written == [b"", b"a\n", b"v999\n"]


def test_a_watch_stops_observing_when_its_client_goes_away() -> None:
    source: Var[bytes | None] = Var(b"a\n")
    request = FakeRequest()
    ended: list[bool] = []
    WatchStream(request, source, lambda: ended.append(True))
    assert source.observed
    request.client_went_away()
    assert not source.observed and ended == [True]
    source.update(b"b\n")
    assert request.written == [b"", b"a\n"]


def test_the_number_of_watches_is_bounded() -> None:
    store = InMemoryDtabStore({"default": Dtab.read("/a => /b")})
    clock = Clock()
    api = NamerdApi(store, Interpreter({}, (), clock), clock, max_watches=2)
    requests = [FakeRequest(b"/api/1/dtabs/default", {b"watch": [b"true"]}) for _ in range(3)]
    api.handle(requests[0])
    api.handle(requests[1])
    with pytest.raises(Exception) as refused:
        api.handle(requests[2])
    assert getattr(refused.value, "status", None) == 503
    requests[0].client_went_away()
    assert api.watches == 1
    api.handle(requests[2])  # a place came free
    assert api.watches == 2
    assert store.observe("default").observed
    api.close()
    assert api.watches == 0 and not store.observe("default").observed


def test_a_broken_watch_never_fails_the_write_that_changed_the_dtab() -> None:
    store = InMemoryDtabStore({"default": Dtab.read("/a => /b")})
    clock = Clock()
    api = NamerdApi(store, Interpreter({}, (), clock), clock)
    request = FakeRequest(b"/api/1/dtabs/default", {b"watch": [b"true"]})
    api.handle(request)
    assert request.written[-1] == b'[{"prefix": "/a", "dst": "/b"}]\n'

    def broken(data: bytes) -> None:
        raise RuntimeError("Request.write called on a request after Request.finish was called.")

    request.write = broken  # type: ignore[method-assign]
    written: list[Any] = []
    store.put("default", Dtab.read("/a => /c")).addBoth(written.append)
    assert written[0].dtab == Dtab.read("/a => /c")  # the write succeeded
    assert api.watches == 0 and not store.observe("default").observed  # the watch ended
