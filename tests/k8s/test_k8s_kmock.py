"""The io.l5d.k8s namer against kmock's Kubernetes emulator running as a real process.

Objects are changed through the emulated API itself (POST, PATCH, DELETE), the way the
Kubernetes controllers change them, and the namer must follow through its watch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path as FsPath
from typing import Any

import pytest
import pytest_twisted
import treq
from l5d_testing import free_port, wait_for_port
from twisted.internet import reactor
from twisted.internet.task import deferLater

from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.addr import AddrBound
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok

HERE = FsPath(__file__).resolve().parent
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
ENDPOINTS_PATH = "/api/v1/namespaces/{ns}/endpoints"


def slice_obj(
    name: str, service: str, ips: list[tuple[str, bool]], ns: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 7778, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "node1"}
            for ip, ready in ips
        ],
    }


def endpoints_obj(service: str, ips: list[str], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service, "namespace": ns},
        "subsets": [
            {
                "addresses": [{"ip": ip, "nodeName": "node2"} for ip in ips],
                "ports": [{"name": "http", "port": 7778}],
            }
        ],
    }


async def eventually(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def addresses(namer: K8sNamer, path: str, seen: list[Any]) -> Any:
    def on_tree(state: Any) -> None:
        seen.append(state)

    return namer.lookup(Path.read(path)).observe(on_tree)


def current(seen: list[Any]) -> list[str] | None:
    if not seen or not isinstance(seen[-1], Ok) or not isinstance(seen[-1].value, Leaf):
        return None
    addr = seen[-1].value.value.addr.sample()
    return sorted(a.show() for a in addr.addresses) if isinstance(addr, AddrBound) else None


def start_kmock(
    processes: Any, tmp_path: FsPath, objects: list[dict[str, Any]], *flags: str
) -> str:
    port = free_port()
    objects_file = tmp_path / "objects.json"
    objects_file.write_text(json.dumps(objects))
    processes.start(
        sys.executable,
        str(HERE / "k8s_kmock_server.py"),
        "--port",
        str(port),
        "--objects",
        str(objects_file),
        *flags,
        name="kmock",
    )
    wait_for_port("127.0.0.1", port)
    return f"http://127.0.0.1:{port}"


async def api_call(method: str, url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    content_type = b"application/merge-patch+json" if method == "PATCH" else b"application/json"
    response = await treq.request(method, url, data=data, headers={b"Content-Type": [content_type]})
    await treq.content(response)
    assert response.code in (200, 201), f"{method} {url} -> {response.code}"


def make_namer(base_url: str) -> K8sNamer:
    api = KubernetesApi(reactor, ApiAccess(base_url), request_timeout_s=2.0)
    settings = WatchSettings(
        watch_timeout_s=60, idle_timeout_s=30.0, resync_s=0, backoff_base_s=0.05, backoff_max_s=0.5
    )
    return K8sNamer(
        api, Path.read("/io.l5d.k8s"), reactor, PluginContext(reactor), settings=settings
    )


@pytest_twisted.ensureDeferred
async def test_slices_added_scaled_not_ready_and_removed(processes: Any, tmp_path: FsPath) -> None:
    base = start_kmock(
        processes,
        tmp_path,
        [slice_obj("world-v1-a", "world-v1", [("127.0.2.1", True), ("127.0.2.2", False)])],
    )
    namer = make_namer(base)
    world: list[Any] = []
    hello: list[Any] = []
    observers = [
        addresses(namer, "/default/http/world-v1", world),
        addresses(namer, "/default/http/hello", hello),
    ]
    try:
        await eventually(lambda: current(world) == ["127.0.2.1:7778"], what="first list")
        assert hello[-1] == Ok(NEG)
        url = base + SLICES_PATH.format(ns="default")
        # a second slice for the same service (scale-up) and a new service
        await api_call("POST", url, slice_obj("world-v1-b", "world-v1", [("127.0.2.3", True)]))
        await api_call("POST", url, slice_obj("hello-a", "hello", [("127.0.1.1", True)]))
        await eventually(
            lambda: (
                current(world) == ["127.0.2.1:7778", "127.0.2.3:7778"]
                and current(hello) == ["127.0.1.1:7778"]
            )
        )
        # the not-ready pod becomes ready
        await api_call(
            "PATCH",
            url + "/world-v1-a",
            {
                "endpoints": [
                    {"addresses": ["127.0.2.1"], "conditions": {"ready": True}},
                    {"addresses": ["127.0.2.2"], "conditions": {"ready": True}},
                ]
            },
        )
        await eventually(
            lambda: current(world) == ["127.0.2.1:7778", "127.0.2.2:7778", "127.0.2.3:7778"]
        )
        # scale down: a removed endpoint is gone within 1 s of the API reporting it
        started = time.monotonic()
        await api_call("DELETE", url + "/world-v1-b")
        await eventually(
            lambda: current(world) == ["127.0.2.1:7778", "127.0.2.2:7778"],
            timeout=1.0,
            what="removal within 1 s",
        )
        assert time.monotonic() - started < 1.0
        assert namer.state()["namespaces"]["default"]["resource"] == "endpointslices"
    finally:
        for o in observers:
            o.close()
        namer.close()


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_v1_endpoints_when_the_cluster_has_no_slices(
    processes: Any, tmp_path: FsPath
) -> None:
    base = start_kmock(
        processes, tmp_path, [endpoints_obj("world-v1", ["127.0.2.1"])], "--no-slices"
    )
    namer = make_namer(base)
    world: list[Any] = []
    observer = addresses(namer, "/default/http/world-v1", world)
    try:
        await eventually(lambda: current(world) == ["127.0.2.1:7778"], what="fallback list")
        assert namer.state()["namespaces"]["default"]["resource"] == "endpoints"
        await api_call(
            "PATCH",
            base + ENDPOINTS_PATH.format(ns="default") + "/world-v1",
            {
                "subsets": [
                    {
                        "addresses": [{"ip": "127.0.2.5", "nodeName": "node2"}],
                        "ports": [{"name": "http", "port": 7778}],
                    }
                ]
            },
        )
        await eventually(lambda: current(world) == ["127.0.2.5:7778"])
        (addr,) = world[-1].value.value.addr.sample().addresses
        assert addr.node_name == "node2"
    finally:
        observer.close()
        namer.close()
