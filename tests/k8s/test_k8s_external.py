"""io.l5d.k8s.external: LoadBalancer Services' external addresses, from kmock's Kubernetes
emulator running as a real process (Services changed through its API, as controllers do)."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path as FsPath
from typing import Any

import pytest_twisted
import treq
from l5d_testing import free_port, wait_for_port
from twisted.internet import reactor
from twisted.internet.task import deferLater

from l5d_twisted.config.loader import load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.external import (
    K8sExternalConfig,
    K8sExternalNamer,
    external_addresses,
    parse_load_balancer_service,
)
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.addr import AddrBound
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Ok
from l5d_twisted.registry import NAMERS

HERE = FsPath(__file__).resolve().parent
SERVICES_PATH = "/api/v1/namespaces/{ns}/services"


def service(
    name: str,
    ingress: list[dict[str, str]] | None,
    ports: list[tuple[str, int]] = (("http", 80),),  # type: ignore[assignment]
    ns: str = "prod",
    labels: dict[str, str] | None = None,
    type_: str = "LoadBalancer",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "type": type_,
            "ports": [
                {"name": n, "port": p, "targetPort": 8080, "protocol": "TCP"} for n, p in ports
            ],
        },
    }
    if ingress is not None:
        obj["status"] = {"loadBalancer": {"ingress": ingress}}
    return obj


# -- parsing and resolving, without an API -------------------------------------------------


def test_ingress_ip_and_hostname_at_the_service_port() -> None:
    shard = parse_load_balancer_service(
        service(
            "web",
            [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com", "ip": "203.0.113.8"}],
            ports=[("http", 80), ("admin", 9990)],
        )
    )
    shown = sorted(a.show() for a in external_addresses(shard, "http") or ())
    # hostname first, else ip (linkerd 1's choice); every entry (linkerd 1 kept the last)
    assert shown == ["203.0.113.7:80", "lb.example.com:80"]
    assert sorted(a.show() for a in external_addresses(shard, "9990") or ()) == [
        "203.0.113.7:9990",
        "lb.example.com:9990",
    ]
    assert external_addresses(shard, "grpc") is None  # no such port
    assert external_addresses(shard, "8080") is None  # a target port is not a service port


def test_no_load_balancer_ingress_is_negative() -> None:
    for obj in (
        service("web", None, type_="ClusterIP"),
        service("web", [], type_="LoadBalancer"),  # not assigned yet
        service("web", [{"ip": "not an address!"}]),
    ):
        assert external_addresses(parse_load_balancer_service(obj), "http") is None


# -- against the emulated API ----------------------------------------------------------------


def start_kmock(processes: Any, tmp_path: FsPath, objects: list[dict[str, Any]]) -> str:
    port = free_port()
    objects_file = tmp_path / "services.json"
    objects_file.write_text(json.dumps(objects))
    processes.start(
        sys.executable,
        str(HERE / "k8s_kmock_services_server.py"),
        "--port",
        str(port),
        "--objects",
        str(objects_file),
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


async def eventually(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_namer(base_url: str, label_selector: str | None = None) -> K8sExternalNamer:
    api = KubernetesApi(reactor, ApiAccess(base_url), request_timeout_s=2.0)
    settings = WatchSettings(
        watch_timeout_s=60, idle_timeout_s=30.0, resync_s=0, backoff_base_s=0.05, backoff_max_s=0.5
    )
    return K8sExternalNamer(
        api,
        Path.read("/io.l5d.k8s.external"),
        reactor,
        PluginContext(reactor),
        label_selector=label_selector,
        settings=settings,
    )


class Seen:
    def __init__(self, namer: K8sExternalNamer, path: str) -> None:
        self.states: list[Any] = []
        self.observer = namer.lookup(Path.read(path)).observe(self.states.append)

    def addresses(self) -> list[str] | None:
        if not self.states or not isinstance(self.states[-1], Ok):
            return None
        tree = self.states[-1].value
        if not isinstance(tree, Leaf):
            return None
        addr = tree.value.addr.sample()
        return sorted(a.show() for a in addr.addresses) if isinstance(addr, AddrBound) else None

    def negative(self) -> bool:
        return bool(self.states) and self.states[-1] == Ok(NEG)


@pytest_twisted.ensureDeferred
async def test_names_follow_the_services_through_the_watch(
    processes: Any, tmp_path: FsPath
) -> None:
    base = start_kmock(
        processes,
        tmp_path,
        [
            service("web", [{"ip": "203.0.113.7"}], ports=[("http", 80), ("https", 443)]),
            service("internal", None, type_="ClusterIP"),
        ],
    )
    namer = make_namer(base)
    web = Seen(namer, "/prod/http/web")
    web_by_number = Seen(namer, "/prod/443/web")
    upper = Seen(namer, "/PROD/HTTP/Web")  # lower-cased, as linkerd 1
    internal = Seen(namer, "/prod/http/internal")
    later = Seen(namer, "/prod/http/later")
    rest = Seen(namer, "/prod/http/web/api/v1")
    try:
        await eventually(lambda: web.addresses() == ["203.0.113.7:80"], what="first list")
        assert web_by_number.addresses() == ["203.0.113.7:443"]
        assert upper.addresses() == ["203.0.113.7:80"]
        assert internal.negative() and later.negative()
        # what follows the name is kept as the residual, on the same addresses
        assert rest.addresses() == ["203.0.113.7:80"]
        assert rest.states[-1].value.value.residual == Path.read("/api/v1")
        leaf = web.states[-1].value
        assert leaf.value.id.show() == "/#/io.l5d.k8s.external/prod/http/web"
        url = base + SERVICES_PATH.format(ns="prod")
        # the load balancer gets a second address, by hostname
        await api_call(
            "PATCH",
            url + "/web",
            {
                "status": {
                    "loadBalancer": {
                        "ingress": [{"ip": "203.0.113.7"}, {"hostname": "web.lb.example.com"}]
                    }
                }
            },
        )
        await eventually(
            lambda: web.addresses() == ["203.0.113.7:80", "web.lb.example.com:80"],
            what="the hostname ingress",
        )
        # the same bound name is updated in place (clients are not rebuilt)
        assert web.states[-1].value.value is leaf.value
        # a new LoadBalancer Service appears, pending its address, then gets one
        await api_call("POST", url, service("later", []))
        await api_call(
            "PATCH",
            url + "/later",
            {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}},
        )
        await eventually(lambda: later.addresses() == ["198.51.100.1:80"], what="a new service")
        # the port is renamed: the old name goes negative
        await api_call("PATCH", url + "/web", {"spec": {"ports": [{"name": "web", "port": 80}]}})
        await eventually(web.negative, what="the renamed port")
        # deleted: negative
        await api_call("DELETE", url + "/later")
        await eventually(later.negative, what="the deleted service")
        state = namer.state()
        assert state["namespaces"]["prod"]["resource"] == "services"
    finally:
        for seen in (web, web_by_number, upper, internal, later, rest):
            seen.observer.close()
        namer.close()


@pytest_twisted.ensureDeferred
async def test_label_selector_takes_a_fourth_segment(processes: Any, tmp_path: FsPath) -> None:
    base = start_kmock(
        processes,
        tmp_path,
        [service("web", [{"ip": "203.0.113.9"}], labels={"version": "v2"})],
    )
    namer = make_namer(base, label_selector="version")
    v2 = Seen(namer, "/prod/http/web/v2")
    v1 = Seen(namer, "/prod/http/web/v1")
    short = Seen(namer, "/prod/http/web")  # the label value is required
    try:
        await eventually(lambda: v2.addresses() == ["203.0.113.9:80"], what="first list")
        assert v1.negative() and short.negative()
        assert v2.states[-1].value.value.id.show() == "/#/io.l5d.k8s.external/prod/http/web/v2"
    finally:
        for seen in (v2, v1, short):
            seen.observer.close()
        namer.close()


def test_pending_until_the_first_list_and_bad_names_negative() -> None:
    from twisted.internet.testing import MemoryReactorClock

    clock = MemoryReactorClock()  # the list call is never answered
    api = KubernetesApi(clock, ApiAccess("http://127.0.0.1:1"), request_timeout_s=1.0)
    namer = K8sExternalNamer(api, Path.read("/ext"), clock, PluginContext(clock))
    try:
        assert namer.lookup(Path.read("/prod/http/web/extra")).sample() == PENDING
        assert namer.lookup(Path.read("/prod/http")).sample() == Ok(NEG)  # too short
        assert namer.lookup(Path.of("bad_ns!", "http", "web")).sample() == Ok(NEG)
    finally:
        namer.close()


def test_config_keys_and_defaults() -> None:
    text = textwrap.dedent(
        """\
        routers:
        - protocol: http
          dtab: /svc => /#/io.l5d.k8s.external/prod/http
        namers:
        - kind: io.l5d.k8s.external
          experimental: true
          host: 127.0.0.1
          port: 8002
          labelSelector: version
        """
    )
    (spec,) = load_config(text).namers
    assert spec.prefix == Path.read("/io.l5d.k8s.external")  # linkerd 1's default prefix
    assert (spec.config.host, spec.config.port, spec.config.label_selector) == (
        "127.0.0.1",
        8002,
        "version",
    )
    default = K8sExternalConfig()
    assert (default.host, default.port, default.label_selector) == (None, None, None)
    plugin = NAMERS.get("io.l5d.k8s.external")
    namer = plugin.factory(spec.config, spec.prefix, PluginContext(reactor, env={}))
    try:
        assert namer.state()["api"] == "http://127.0.0.1:8002"
    finally:
        namer.close()
    # no host: a kubectl proxy on localhost:8001, as io.l5d.k8s (outside a cluster)
    namer = plugin.factory(default, spec.prefix, PluginContext(reactor, env={}))
    try:
        assert namer.state()["api"] == "http://localhost:8001"
    finally:
        namer.close()
