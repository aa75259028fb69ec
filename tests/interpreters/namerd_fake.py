"""A small fake namerd for the interpreter's tests: twisted.web on 127.0.0.1, speaking the
HTTP interface's wire format (newline-delimited JSON on ``?watch=true``), scripted by the
test: what each watch says, when connections drop, and what was asked."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


class FakeNamerd(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, args) of every GET
        self.current: dict[str, bytes] = {}  # "bind" / "addr:<id>" -> the line sent first
        self.open: list[tuple[str, Any]] = []  # (key, request) of the watches open
        self.status = 200
        self.hang = False  # one-shot requests never answered
        self.port: Any = None
        self.number = 0

    # -- what the test scripts ------------------------------------------------------------
    def set(self, key: str, doc: Any) -> None:
        """The document of ``key`` (``bind`` or ``addr:<id>``), sent to its open watches."""
        line = doc if isinstance(doc, bytes) else json.dumps(doc).encode() + b"\n"
        self.current[key] = line
        for k, request in list(self.open):
            if k == key and not request.finished:
                request.write(line)

    def drop(self) -> None:
        """Cut every open watch (namerd gone)."""
        for _, request in list(self.open):
            transport = request.channel.transport if request.channel is not None else None
            if transport is not None:
                transport.abortConnection()
        self.open.clear()

    def listen(self, number: int = 0) -> int:
        self.port = reactor.listenTCP(number, Site(self), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.number = self.port.getHost().port
        return self.number

    def listen_tls(self, options: Any) -> int:
        self.port = reactor.listenSSL(0, Site(self), options, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.number = self.port.getHost().port
        return self.number

    async def stop(self) -> None:
        self.drop()
        if self.port is not None:
            await self.port.stopListening()
            self.port = None

    def asked(self, family: str) -> list[dict[str, str]]:
        return [args for path, args in self.requests if path.startswith(f"/api/1/{family}/")]

    # -- twisted.web -------------------------------------------------------------------------
    def render_GET(self, request: Any) -> bytes | int:  # noqa: N802
        path = request.path.decode()
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append((path, args))
        if self.status != 200:
            request.setResponseCode(self.status)
            return b"no\n"
        family = path.split("/")[3]
        key = "bind" if family == "bind" else f"{family}:{args.get('path', '')}"
        if args.get("watch") != "true":
            if self.hang:
                return NOT_DONE_YET  # a namerd that accepts and never answers
            return self.current.get(key, b'{"type": "neg"}\n')
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")
        self.open.append((key, request))
        request.notifyFinish().addBoth(lambda _: self._gone(key, request))
        if key in self.current:
            request.write(self.current[key])
        return NOT_DONE_YET

    def _gone(self, key: str, request: Any) -> None:
        if (key, request) in self.open:
            self.open.remove((key, request))
