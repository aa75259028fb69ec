"""A small, faithful fake of the Kubernetes API for one custom resource: DTab objects
(group l5d.io, version v1alpha1, plural dtabs), for namerd's ``io.l5d.k8s`` storage tests.

Why a fake and not kmock's ``KubernetesEmulator``: the emulator serves the built-in kinds
the namer needs, but answers PUT with 404 and lists without ``kind``, and has no
resourceVersion conflict on update, which is the very thing the storage's compare-and-set
rests on.  This fake implements only what the storage uses, with the API server's semantics:

* every write bumps one cluster-wide ``resourceVersion`` counter (a decimal string);
* POST of an existing name: 409 AlreadyExists; PUT or DELETE of a missing name: 404;
* PUT whose ``metadata.resourceVersion`` is not the object's current one: 409 Conflict;
  a PUT without one is 422 Invalid, as the API server answers for custom resources (their
  strategy allows no unconditional update);
* ``GET ...?watch=true&resourceVersion=N`` streams the events after N, one JSON line each,
  then waits for more until ``timeoutSeconds``; an N older than the kept history is 410 Gone.

It listens on 127.0.0.1 only; ``stop()`` closes the listener and every open watch (an API
outage), ``start()`` again on the same port brings it back with the same objects.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/l5d.io/v1alpha1/namespaces/"


class FakeDtabApi:
    def __init__(self, port: int, history: int = 1000) -> None:
        self.port = port
        self.history = history
        self.cond = threading.Condition()
        self.rv = 100
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # rv, k8s ns, type, obj
        self.requests: list[tuple[str, str]] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.generation = 0

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            api = fake

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.server = server
        with self.cond:
            self.generation += 1
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        server, self.server = self.server, None
        with self.cond:
            self.generation += 1  # ends every open watch
            self.cond.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()
        if self.thread is not None:
            self.thread.join(10)

    # --- the store, also used directly by tests (a change made with kubectl) -------------
    def write(
        self, ns: str, method: str, name: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        with self.cond:
            key = (ns, name)
            current = self.objects.get(key)
            if method == "DELETE":
                if current is None:
                    return 404, _status(404, "NotFound", f'dtabs.l5d.io "{name}" not found')
                del self.objects[key]
                self._event(ns, "DELETED", current)
                return 200, current
            assert body is not None
            meta = body.get("metadata") or {}
            if method == "POST":
                if current is not None:
                    return 409, _status(
                        409, "AlreadyExists", f'dtabs.l5d.io "{name}" already exists'
                    )
            else:
                if current is None:
                    return 404, _status(404, "NotFound", f'dtabs.l5d.io "{name}" not found')
                wanted = meta.get("resourceVersion")
                if wanted is None:
                    return 422, _status(
                        422,
                        "Invalid",
                        f'DTab.l5d.io "{name}" is invalid: metadata.resourceVersion: Invalid '
                        "value: 0x0: must be specified for an update",
                    )
                if wanted != current["metadata"]["resourceVersion"]:
                    return 409, _status(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on dtabs.l5d.io "{name}": the object '
                        "has been modified; please apply your changes to the latest version",
                    )
            self.rv += 1
            obj = {
                "apiVersion": "l5d.io/v1alpha1",
                "kind": "DTab",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": str(self.rv)},
                "dentries": copy.deepcopy(body.get("dentries") or []),
            }
            self.objects[key] = obj
            self._event(ns, "ADDED" if current is None else "MODIFIED", obj)
            return (201 if method == "POST" else 200), obj

    def _event(self, ns: str, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, ns, kind, copy.deepcopy(obj)))
        del self.events[: -self.history]
        self.cond.notify_all()

    def compact(self) -> None:
        """Forget the event history (etcd compaction): older watches get 410 Gone."""
        with self.cond:
            self.events.clear()
            self.rv += 1

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        with self.cond:
            obj = self.objects.get((ns, name))
            return copy.deepcopy(obj) if obj else None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    api: FakeDtabApi
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _route(self) -> tuple[str, str | None, dict[str, list[str]]] | None:
        url = urlsplit(self.path)
        if not url.path.startswith(PREFIX):
            return None
        parts = url.path[len(PREFIX) :].split("/")
        if len(parts) == 2 and parts[1] == "dtabs":
            return parts[0], None, parse_qs(url.query)
        if len(parts) == 3 and parts[1] == "dtabs" and parts[2]:
            return parts[0], parts[2], parse_qs(url.query)
        return None

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def do_GET(self) -> None:  # noqa: N802
        route = self._route()
        self.api.requests.append(("GET", self.path))
        if route is None:
            return self._send(404, _status(404, "NotFound", "the server could not find it"))
        ns, name, query = route
        if name is not None:
            obj = self.api.get(ns, name)
            if obj is None:
                return self._send(404, _status(404, "NotFound", f'dtabs.l5d.io "{name}" not found'))
            return self._send(200, obj)
        if query.get("watch", [""])[0] in ("true", "1"):
            return self._watch(ns, query)
        with self.api.cond:
            items = [copy.deepcopy(o) for (n, _), o in sorted(self.api.objects.items()) if n == ns]
            rv = str(self.api.rv)
        self._send(
            200,
            {
                "apiVersion": "l5d.io/v1alpha1",
                "kind": "DTabList",
                "metadata": {"resourceVersion": rv},
                "items": items,
            },
        )

    def _watch(self, ns: str, query: dict[str, list[str]]) -> None:
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        timeout = float(query.get("timeoutSeconds", ["300"])[0])
        api = self.api
        with api.cond:
            oldest = api.events[0][0] if api.events else api.rv + 1
            gone = bool(since and since + 1 < oldest and since < api.rv)
            generation = api.generation
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if gone:
            line = {"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}
            self.wfile.write(json.dumps(line).encode() + b"\n")
            return
        deadline = time.monotonic() + timeout
        sent = since
        try:
            while True:
                with api.cond:
                    pending = [e for e in api.events if e[0] > sent and e[1] == ns]
                    if not pending:
                        left = deadline - time.monotonic()
                        if left <= 0 or api.generation != generation:
                            return
                        api.cond.wait(min(left, 1.0))
                        if api.generation != generation:
                            return
                        continue
                for rv, _, kind, obj in pending:
                    self.wfile.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                    sent = rv
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def do_POST(self) -> None:  # noqa: N802
        self._write("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._write("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._write("DELETE")

    def _write(self, method: str) -> None:
        route = self._route()
        self.api.requests.append((method, self.path))
        if route is None:
            return self._send(404, _status(404, "NotFound", "the server could not find it"))
        ns, name, _ = route
        body = self._body() if method != "DELETE" else None
        if method == "POST":
            meta = (body or {}).get("metadata") or {}
            if name is not None or not isinstance(meta.get("name"), str):
                return self._send(400, _status(400, "BadRequest", "POST needs metadata.name"))
            name = meta["name"]
        elif name is None:
            return self._send(405, _status(405, "MethodNotAllowed", "name the object"))
        if method != "DELETE" and body is None:
            return self._send(400, _status(400, "BadRequest", "body is not a JSON object"))
        assert name is not None
        if method == "PUT" and (body or {}).get("metadata", {}).get("name") != name:
            return self._send(400, _status(400, "BadRequest", "metadata.name differs from URL"))
        code, answer = self.api.write(ns, method, name, body)
        self._send(code, answer)
