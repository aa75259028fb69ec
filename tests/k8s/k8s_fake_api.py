"""A small fake Kubernetes API (twisted.web, 127.0.0.1) for the watch fault tests.

It serves list and watch of EndpointSlices and v1 Endpoints for any namespace, with a real
resourceVersion history, and the faults kmock cannot produce: 410 Gone (as an HTTP status
or as an ERROR event), bookmarks, injected 5xx answers, slow answers, 404 for
EndpointSlices, malformed lines, and a restart on the same port mid-watch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from twisted.internet import reactor as global_reactor
from twisted.web import server
from twisted.web.resource import Resource

SLICES = "endpointslices"
ENDPOINTS = "endpoints"
SERVICES = "services"


@dataclass
class Event:
    rv: int
    type: str
    resource: str
    namespace: str
    obj: dict[str, Any]


@dataclass
class Faults:
    fail_statuses: list[int] = field(default_factory=list)  # next requests answer these
    delay_s: float = 0.0  # answers (list and watch headers) are this late
    slices_served: bool = True
    gone_as_event: bool = False  # 410 as an ERROR event rather than an HTTP status
    watch_gone_next: bool = False  # the next watch is answered 410 whatever its version


class FakeApi(Resource):
    isLeaf = True

    def __init__(self, reactor: Any = global_reactor) -> None:
        super().__init__()
        self.reactor = reactor
        self.rv = 100
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[Event] = []
        self.oldest_rv = 0  # watches from below this answer 410 (etcd compaction)
        self.faults = Faults()
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.watchers: list[tuple[server.Request, str, str]] = []
        self.port: Any = None
        self.port_number = 0
        self.required_token: str | None = None
        self.forbidden: set[str] = set()  # resources answered 403 (RBAC)

    # --- lifecycle -------------------------------------------------------------------

    def listen(self, port: int = 0, tls: Any = None) -> int:
        """Serve on 127.0.0.1 (over TLS when given twisted CertificateOptions)."""
        if tls is not None:
            self.port = self.reactor.listenSSL(port, server.Site(self), tls, interface="127.0.0.1")
        else:
            self.port = self.reactor.listenTCP(port, server.Site(self), interface="127.0.0.1")
        self.port_number = self.port.getHost().port
        return self.port_number

    def drop_watches(self) -> None:
        for request, _, _ in list(self.watchers):
            request.channel.transport.abortConnection()
        self.watchers.clear()

    def stop(self) -> Any:
        self.drop_watches()
        return self.port.stopListening()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port_number}"

    # --- state changes ----------------------------------------------------------------

    def _bump(self, resource: str, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        event = Event(self.rv, kind, resource, namespace, obj)
        self.events.append(event)
        for request, res, ns in list(self.watchers):
            if res == resource and ns == namespace:
                self._send(request, event.type, event.obj)

    def put(self, resource: str, namespace: str, obj: dict[str, Any]) -> None:
        key = (resource, namespace, obj["metadata"]["name"])
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self._bump(resource, namespace, kind, obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((resource, namespace, name))
        self._bump(resource, namespace, "DELETED", obj)

    def set_service(
        self,
        namespace: str,
        service: str,
        endpoints: list[dict[str, Any]],
        port: tuple[str, int] = ("http", 8080),
    ) -> None:
        """Both representations of one service: one EndpointSlice and one Endpoints."""
        self.put(SLICES, namespace, slice_obj(service, endpoints, port))
        self.put(ENDPOINTS, namespace, endpoints_obj(service, endpoints, port))

    def compact(self) -> None:
        """Forget history: any watch from an older version now gets 410 Gone."""
        self.oldest_rv = self.rv + 1
        self.events.clear()

    def bookmark(self, namespace: str, resource: str = SLICES) -> int:
        self.rv += 1
        for request, res, ns in list(self.watchers):
            if res == resource and ns == namespace:
                self._send(
                    request,
                    "BOOKMARK",
                    {"kind": "EndpointSlice", "metadata": {"resourceVersion": str(self.rv)}},
                )
        return self.rv

    def send_raw(self, line: bytes) -> None:
        for request, _, _ in list(self.watchers):
            request.write(line + b"\n")

    def watch_count(self, resource: str | None = None) -> int:
        return sum(
            1
            for path, q in self.requests
            if q.get("watch") == ["true"] and (resource is None or path.endswith(resource))
        )

    # --- HTTP ----------------------------------------------------------------------------

    def render_GET(self, request: server.Request) -> Any:  # noqa: N802
        url = urlparse(request.uri.decode())
        query = parse_qs(url.query)
        self.requests.append((url.path, query))
        if (
            self.required_token is not None
            and request.getHeader(b"authorization") != f"Bearer {self.required_token}".encode()
        ):
            self._status(request, 401, "Unauthorized")
            return server.NOT_DONE_YET
        if self.faults.delay_s:
            self.reactor.callLater(self.faults.delay_s, self._answer, request, url.path, query)
        else:
            self._answer(request, url.path, query)
        return server.NOT_DONE_YET

    def _answer(self, request: server.Request, path: str, query: dict[str, list[str]]) -> None:
        if request.finished or request.channel is None:
            return
        parts = path.strip("/").split("/")
        # /api/v1/namespaces/NS/endpoints or /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices
        if self.faults.fail_statuses:
            return self._status(request, self.faults.fail_statuses.pop(0), "injected failure")
        if (
            len(parts) < 5
            or parts[-3] != "namespaces"
            or parts[-1] not in (SLICES, ENDPOINTS, SERVICES)
        ):
            return self._status(request, 404, "not found")
        if parts[-1] in self.forbidden:
            return self._status(
                request, 403, f"{parts[-1]} is forbidden: User cannot list resource"
            )
        resource, namespace = parts[-1], parts[-2]
        if resource == SLICES and not self.faults.slices_served:
            return self._status(request, 404, "the server could not find the requested resource")
        if query.get("watch") == ["true"]:
            return self._watch(request, resource, namespace, query)
        items = [
            o for (r, ns, _), o in sorted(self.objects.items()) if r == resource and ns == namespace
        ]
        for item in items:
            item.setdefault("metadata", {}).setdefault("resourceVersion", str(self.rv))
        body = {"kind": "List", "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        request.setHeader(b"content-type", b"application/json")
        request.write(json.dumps(body).encode())
        request.finish()

    def _watch(
        self, request: server.Request, resource: str, namespace: str, query: dict[str, list[str]]
    ) -> None:
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        gone = self.faults.watch_gone_next or since < self.oldest_rv - 1
        self.faults.watch_gone_next = False
        if gone and not self.faults.gone_as_event:
            return self._status(request, 410, "too old resource version")
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")  # headers now: the stream is open
        if gone:
            self._send(
                request,
                "ERROR",
                {
                    "kind": "Status",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old resource version",
                },
            )
            request.finish()
            return
        self.watchers.append((request, resource, namespace))
        request.notifyFinish().addBoth(lambda _: self._forget(request))
        for event in self.events:
            if event.rv > since and event.resource == resource and event.namespace == namespace:
                self._send(request, event.type, event.obj)

    def _forget(self, request: server.Request) -> None:
        self.watchers = [w for w in self.watchers if w[0] is not request]

    def _send(self, request: server.Request, kind: str, obj: dict[str, Any]) -> None:
        request.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    def _status(self, request: server.Request, code: int, message: str) -> None:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.write(json.dumps({"kind": "Status", "code": code, "message": message}).encode())
        request.finish()


def service_obj(service: str, ports: list[tuple[str, int, int]]) -> dict[str, Any]:
    """A Service with (port name, service port, target port) entries."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service},
        "spec": {
            "ports": [
                {"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports
            ]
        },
    }


def endpoint(
    ip: str, node: str | None = None, ready: bool = True, pod: str | None = None
) -> dict[str, Any]:
    return {"ip": ip, "node": node, "ready": ready, "pod": pod}


def slice_obj(
    service: str,
    endpoints: list[dict[str, Any]],
    port: tuple[str, int],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-abcde",
            "labels": {"kubernetes.io/service-name": service, **(labels or {})},
        },
        "addressType": "IPv4",
        "ports": [{"name": port[0], "port": port[1], "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [e["ip"]],
                "conditions": {"ready": e["ready"]},
                **({"nodeName": e["node"]} if e["node"] else {}),
                **({"targetRef": {"kind": "Pod", "name": e["pod"]}} if e["pod"] else {}),
            }
            for e in endpoints
        ],
    }


def endpoints_obj(
    service: str,
    endpoints: list[dict[str, Any]],
    port: tuple[str, int],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    def addr(e: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"ip": e["ip"]}
        if e["node"]:
            out["nodeName"] = e["node"]
        if e["pod"]:
            out["targetRef"] = {"kind": "Pod", "name": e["pod"]}
        return out

    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service, "labels": dict(labels or {})},
        "subsets": [
            {
                "addresses": [addr(e) for e in endpoints if e["ready"]],
                "notReadyAddresses": [addr(e) for e in endpoints if not e["ready"]],
                "ports": [{"name": port[0], "port": port[1], "protocol": "TCP"}],
            }
        ],
    }
